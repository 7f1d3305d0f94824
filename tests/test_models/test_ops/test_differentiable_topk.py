import math

import pytest
import torch

from mmdms.models.ops import (differentiable_topk, hard_mask, kept_count, normalize_importance,
                              ratio_for_kept)

SIZES = [1, 2, 3, 7, 64, 1000]


def _distinct_importance(n, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=dtype)


def _near_boundary(n, a, eps=1e-9):
    """(1 - a) N lands on a rounding boundary: floating point decides, so skip those."""
    x = (1 - a) * n + 0.5
    return abs(x - round(x)) < eps


@pytest.mark.parametrize('n', SIZES)
def test_kept_count_is_round_of_keep_ratio_times_n(n):
    importance = _distinct_importance(n)
    checked = 0
    for a in torch.linspace(0, 1, 2001, dtype=torch.float64).tolist():
        if _near_boundary(n, a):
            continue
        mask = differentiable_topk(importance, torch.tensor(a, dtype=torch.float64))
        expected = math.floor((1 - a) * n + 0.5)
        assert int(hard_mask(mask).sum()) == expected, (n, a)
        assert kept_count(n, a) == expected
        checked += 1
    assert checked >= 1000  # at N = 1000 every other grid point is a rounding boundary


@pytest.mark.parametrize('n', SIZES)
def test_kept_elements_are_the_most_important(n):
    importance = _distinct_importance(n, seed=1)
    for k in range(n + 1):
        a = torch.tensor(ratio_for_kept(n, k), dtype=torch.float64)
        kept = hard_mask(differentiable_topk(importance, a)).bool()
        assert int(kept.sum()) == k
        top = set(torch.topk(importance, k).indices.tolist()) if k else set()
        assert set(torch.nonzero(kept).flatten().tolist()) == top


def test_reference_off_by_one_is_not_reproduced():
    # The reference keeps floor(eN) + 1: with e = 0.5 and N = 64 that would be 33.
    importance = _distinct_importance(64)
    mask = differentiable_topk(importance, torch.tensor(0.5, dtype=torch.float64))
    assert int(hard_mask(mask).sum()) == 32


def test_normalized_importance_is_evenly_spaced():
    importance = torch.tensor([3.0, -1.0, 10.0, 0.5])
    normalized = normalize_importance(importance)
    assert torch.allclose(normalized, torch.tensor([2.5, 0.5, 3.5, 1.5]) / 4)


@pytest.mark.parametrize('n,lambda_scale', [(7, 1.0), (64, 1.0), (5, 4.0)])
def test_gradient_wrt_ratio_matches_closed_form(n, lambda_scale):
    importance = _distinct_importance(n, seed=2)
    a = torch.tensor(0.37, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda r: differentiable_topk(importance, r, lambda_scale), (a, ))

    upstream = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    mask = differentiable_topk(importance, a, lambda_scale)
    (grad, ) = torch.autograd.grad(mask, a, upstream)
    m = mask.detach()
    lam = n * lambda_scale
    assert torch.allclose(grad, (upstream * -lam * m * (1 - m)).sum())


def test_importance_gets_no_gradient():
    importance = torch.randn(8, requires_grad=True)
    mask = differentiable_topk(importance, torch.tensor(0.3))
    assert not mask.requires_grad


def test_mask_depends_only_on_ranks():
    importance = _distinct_importance(50, seed=4)
    a = torch.tensor(0.42, dtype=torch.float64)
    base = differentiable_topk(importance, a)
    for transform in (lambda c: 3 * c + 7, torch.exp, lambda c: c.pow(3), torch.sigmoid):
        assert torch.equal(differentiable_topk(transform(importance), a), base)


@pytest.mark.parametrize('n', [2, 3, 7, 64, 1000])
@pytest.mark.parametrize('a', [0.0, 0.3, 0.9, 1.0])
def test_constant_importance_keeps_everything(n, a):
    for value in (0.0, 2.5):
        mask = differentiable_topk(torch.full((n, ), value), torch.tensor(a))
        assert torch.equal(mask, torch.ones(n))


def test_partial_ties_share_the_lowest_rank():
    importance = torch.tensor([1.0, 1.0, 2.0, 0.0])
    assert torch.allclose(normalize_importance(importance), torch.tensor([1.5, 1.5, 3.5, 0.5]) / 4)


def test_lambda_scale_sharpens_the_mask():
    importance = _distinct_importance(10, seed=5)
    a = torch.tensor(0.5, dtype=torch.float64)
    soft = differentiable_topk(importance, a, 1.0)
    sharp = differentiable_topk(importance, a, 4.0)
    assert torch.equal(hard_mask(soft), hard_mask(sharp))
    assert ((sharp - 0.5).abs() >= (soft - 0.5).abs()).all()


def test_batched_units():
    importance = torch.stack([_distinct_importance(16, seed=s) for s in range(3)])
    ratios = torch.tensor([0.0, 0.5, 0.75], dtype=torch.float64)
    mask = differentiable_topk(importance, ratios)
    assert hard_mask(mask).sum(-1).tolist() == [16, 8, 4]


def test_rejects_scalar_importance():
    with pytest.raises(ValueError, match='shape'):
        differentiable_topk(torch.tensor(1.0), torch.tensor(0.5))


def test_compiles_as_one_graph():
    torch._dynamo.reset()
    compiled = torch.compile(differentiable_topk, fullgraph=True, backend='aot_eager')
    importance = _distinct_importance(12, seed=6)
    a = torch.tensor(0.25, dtype=torch.float64)
    assert torch.equal(compiled(importance, a), differentiable_topk(importance, a))
