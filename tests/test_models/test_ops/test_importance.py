import pytest
import torch

from mmdms.models.ops import (ImportanceTracker, differentiable_topk, fisher_score, l1_norm_score,
                              snip_score, taylor_score)


def test_taylor_ema_matches_closed_form():
    # c_k = d^k c_0 + (1 - d) * sum_t d^(k - t) s_t, with c_0 = 0 and s_t = (m_t g_t)^2
    tracker = ImportanceTracker(3, decay=0.99)
    mask = torch.tensor([1.0, 0.5, 0.25])
    grads = [torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0.0, -2.0, 8.0]),
             torch.tensor([3.0, 0.0, -4.0])]
    for g in grads:
        tracker.update_from_mask(mask, g)
    # hand-computed scores: [1,1,1], [0,1,4], [9,0,1]
    expected = torch.tensor([
        0.01 * (0.99**2 * 1 + 0.99 * 0 + 9),
        0.01 * (0.99**2 * 1 + 0.99 * 1 + 0),
        0.01 * (0.99**2 * 1 + 0.99 * 4 + 1),
    ])
    assert torch.allclose(tracker.importance, expected)
    assert int(tracker.num_updates) == 3


def test_alternative_scores():
    mask = torch.tensor([1.0, 0.5])
    grad = torch.tensor([-2.0, 3.0])
    assert torch.equal(taylor_score(mask, grad), torch.tensor([4.0, 2.25]))
    assert torch.equal(snip_score(mask, grad), torch.tensor([2.0, 1.5]))
    assert torch.equal(fisher_score(mask, grad), torch.tensor([4.0, 9.0]))
    weight = torch.tensor([[[[1.0]], [[-2.0]]], [[[0.5]], [[0.5]]]])  # (out=2, in=2, 1, 1)
    assert torch.equal(l1_norm_score(weight, dim=0), torch.tensor([3.0, 1.0]))
    assert torch.equal(l1_norm_score(weight, dim=1), torch.tensor([1.5, 2.5]))


@pytest.mark.parametrize('metric', ['snip', 'fisher'])
def test_tracker_uses_configured_metric(metric):
    tracker = ImportanceTracker(2, decay=0.5, metric=metric)
    mask, grad = torch.tensor([1.0, 0.5]), torch.tensor([-2.0, 3.0])
    tracker.update_from_mask(mask, grad)
    score = snip_score(mask, grad) if metric == 'snip' else fisher_score(mask, grad)
    assert torch.allclose(tracker.importance, 0.5 * score)


def test_tracker_cold_start_keeps_all_then_ranks():
    tracker = ImportanceTracker(4)
    ratio = torch.tensor(0.5)
    assert torch.equal(differentiable_topk(tracker.importance, ratio), torch.ones(4))
    tracker.update(torch.tensor([0.1, 0.4, 0.2, 0.3]))
    kept = differentiable_topk(tracker.importance, ratio) >= 0.5
    assert kept.tolist() == [False, True, False, True]


def test_tracker_state_round_trips_through_state_dict():
    tracker = ImportanceTracker(5)
    tracker.update(torch.arange(5.0))
    clone = ImportanceTracker(5)
    clone.load_state_dict(tracker.state_dict())
    assert torch.equal(clone.importance, tracker.importance)
    assert int(clone.num_updates) == 1


def test_tracker_rejects_bad_input():
    with pytest.raises(ValueError, match='decay'):
        ImportanceTracker(3, decay=1.0)
    with pytest.raises(ValueError, match='metric'):
        ImportanceTracker(3, metric='hessian')
    with pytest.raises(ValueError, match='does not match'):
        ImportanceTracker(3).update(torch.ones(4))
