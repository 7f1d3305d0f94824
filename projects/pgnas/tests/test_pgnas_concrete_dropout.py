import math

import pytest
import torch

from projects.pgnas.pgnas.models import ConcreteDropout


@pytest.mark.parametrize('p', [0.1, 0.3, 0.7])
def test_relaxed_mask_mean_is_keep_rate(p):
    unit = ConcreteDropout(8, init_drop_rate=p, temperature=0.2)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        keep = unit.relaxed_keep_mask((400_000, ), generator=gen)
    # tau = 0.2 relaxes the Bernoulli slightly: E[keep] is within 0.006 of 1 - p
    # (numerically, 0.8953 for p = 0.1); the thresholded sample is exactly Bernoulli(1 - p).
    assert abs(keep.mean().item() - (1 - p)) < 0.01
    hard = (keep > 0.5).float().mean().item()
    assert abs(hard - (1 - p)) < 4 * math.sqrt(p * (1 - p) / 400_000)
    # concrete at tau = 0.2 is mostly near 0 or 1 (0.76 of the mass for p = 0.3)
    assert ((keep < 0.05) | (keep > 0.95)).float().mean().item() > 0.7


def test_initial_rate_and_temperature():
    unit = ConcreteDropout(5)
    assert unit.drop_rate.item() == pytest.approx(0.1, abs=1e-6)
    assert unit.temperature == 0.2
    with pytest.raises(ValueError):
        ConcreteDropout(5, init_drop_rate=1.0)


def test_gradient_reaches_p():
    unit = ConcreteDropout(6, init_drop_rate=0.1)
    unit.train()
    torch.manual_seed(0)
    x = torch.ones(64, 6, 4, 4)
    unit(x).sum().backward()
    grad = unit.p_logit.grad
    assert grad is not None and torch.isfinite(grad)
    # more dropout removes more of a positive input: d(sum)/d(p_logit) < 0
    assert grad.item() < 0
    # and the gradient matches d/dp E[sum] = -sum(x) * dE[keep]/dp roughly: |grad| is
    # of the order of 6*16*64 * p(1-p) = 553
    assert 100 < -grad.item() < 2000


def test_masks_are_per_sample_and_channel_in_training():
    unit = ConcreteDropout(4, init_drop_rate=0.5).train()
    torch.manual_seed(1)
    y = unit(torch.ones(32, 4, 3, 3))
    assert torch.allclose(y, y[:, :, :1, :1].expand_as(y))  # constant over space
    assert y[:, 0, 0, 0].std() > 0.1  # differs across samples


def test_fixed_candidate_mask_and_eval_modes():
    x = torch.randn(3, 4, 2, 2)
    unit = ConcreteDropout(4, init_drop_rate=0.25)
    mask = torch.tensor([True, False, True, False])
    unit.set_mask(mask)
    for training in (True, False):
        unit.train(training)
        assert torch.equal(unit(x), x * mask.float().view(1, 4, 1, 1))
    unit.set_mask(None)
    unit.eval()
    assert torch.allclose(unit(x), 0.75 * x)
    identity = ConcreteDropout(4, init_drop_rate=0.25, eval_mode='identity').eval()
    assert torch.equal(identity(x), x)
    with pytest.raises(ValueError):
        unit.set_mask(torch.ones(5, dtype=torch.bool))


def test_sample_mask_reproducible_and_rate():
    unit = ConcreteDropout(10_000, init_drop_rate=0.3)
    a = unit.sample_mask(torch.Generator().manual_seed(7))
    b = unit.sample_mask(torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.dtype == torch.bool
    assert abs(a.float().mean().item() - 0.7) < 0.02
    uniform = unit.sample_mask(torch.Generator().manual_seed(7), drop_rate=0.9)
    assert abs(uniform.float().mean().item() - 0.1) < 0.02


def test_fixed_rate_is_a_buffer():
    unit = ConcreteDropout(4, init_drop_rate=0.2, learnable=False)
    assert len(list(unit.parameters())) == 0
    assert 'p_logit' in unit.state_dict()
