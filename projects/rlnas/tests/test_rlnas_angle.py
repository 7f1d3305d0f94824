import copy
import math

import numpy as np
import pytest
import torch

from projects.rlnas.rlnas.search import (LayerwiseAngleScorer, angle_between, arch_vector,
                                         candidate_angle)

from _tiny import tiny_model

ARCHS = [(0, 0, 0, 0), (1, 2, 1, 2), (2, 0, 2, 1), (0, 1, 0, 0), (2, 2, 2, 2)]


def _perturbed(model, scale=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = copy.deepcopy(model)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(scale * p.abs().mean() * torch.randn(p.shape, generator=g))
    return out


def test_angle_between_basic_values():
    v = torch.tensor([1.0, 2.0, -3.0])
    assert angle_between(v, v) == 0.0
    assert angle_between(v, 7.5 * v) == pytest.approx(0.0, abs=1e-7)
    assert angle_between(v, -v) == pytest.approx(math.pi)
    assert angle_between(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])) == pytest.approx(
        math.pi / 2)
    with pytest.raises(ValueError):
        angle_between(v, torch.ones(2))
    with pytest.raises(ValueError):
        angle_between(torch.zeros(3), v)


def test_angle_zero_for_identical_weights():
    torch.manual_seed(0)
    model = tiny_model()
    same = copy.deepcopy(model)
    scorer = LayerwiseAngleScorer(model, same)
    all_archs = list(np.ndindex(3, 3, 3, 3))
    np.testing.assert_allclose(scorer.score_many(all_archs), 0.0, atol=1e-6)
    for arch in ARCHS:
        assert candidate_angle(model, same, arch) == pytest.approx(0.0, abs=1e-6)


def test_angle_invariant_to_positive_rescaling():
    torch.manual_seed(0)
    model0 = tiny_model()
    trained = _perturbed(model0)
    scaled, scaled0 = copy.deepcopy(trained), copy.deepcopy(model0)
    with torch.no_grad():
        for p in scaled.parameters():
            p.mul_(3.7)
        for p in scaled0.parameters():
            p.mul_(0.2)
    # every op on these paths is weighted (stride-1 identities are the only weight-free ops)
    for arch in [(1, 2, 1, 2), (2, 1, 0, 1), (0, 2, 2, 1)]:
        base = candidate_angle(model0, trained, arch)
        assert base > 0.05
        # float32 weights: the product rounds at ~1e-7 relative
        assert candidate_angle(model0, scaled, arch) == pytest.approx(base, rel=1e-6)
        assert candidate_angle(scaled0, trained, arch) == pytest.approx(base, rel=1e-6)


def test_layerwise_scorer_matches_definition():
    torch.manual_seed(0)
    model0 = tiny_model(choices=('id', 'mb3k3', 'avg3', 'none'))
    trained = _perturbed(model0, seed=1)
    scorer = LayerwiseAngleScorer(model0, trained)
    archs = [(0, 0, 0, 0), (1, 1, 2, 3), (2, 3, 1, 2), (0, 2, 2, 0), (1, 3, 0, 3)]
    expected = [candidate_angle(model0, trained, a) for a in archs]
    np.testing.assert_allclose(scorer.score_many(archs), expected, rtol=1e-9)
    # ablation: without the shared layers V holds only the searchable layers' tensors
    no_fixed = LayerwiseAngleScorer(model0, trained, include_fixed=False)
    arch = (1, 1, 2, 3)
    v0 = torch.cat([t.detach().reshape(-1).double() for layer, c in enumerate(arch)
                    for t in model0.choice_angle_tensors(layer, c)])
    vt = torch.cat([t.detach().reshape(-1).double() for layer, c in enumerate(arch)
                    for t in trained.choice_angle_tensors(layer, c)])
    assert no_fixed.score(arch) == pytest.approx(angle_between(v0, vt), rel=1e-9)


def test_weight_free_ops_enter_as_fixed_tensors():
    model = tiny_model(choices=('id', 'mb3k3', 'avg3', 'none'))
    identity = model.choice_angle_tensors(1, 0)  # stride-1 identity: I_8 as a 1x1 kernel
    assert len(identity) == 1 and identity[0].shape == (8, 8, 1, 1)
    torch.testing.assert_close(identity[0].view(8, 8), torch.eye(8))
    pool = model.choice_angle_tensors(1, 2)  # 3x3 average pool: 1/9 everywhere
    assert pool[0].shape == (8, 1, 3, 3)
    assert torch.allclose(pool[0], torch.full_like(pool[0], 1 / 9))
    assert model.choice_angle_tensors(1, 3) == []  # 'none' drops the path
    projection = model.choice_angle_tensors(0, 0)  # stride-2 identity is a trained 1x1 conv
    assert len(projection) == 1 and isinstance(projection[0], torch.nn.Parameter)
    # V of a candidate = fixed layers + chosen ops, in that order
    vec = arch_vector(model, (0, 3, 0, 2))
    n_fixed = sum(t.numel() for t in model.fixed_angle_tensors())
    n_path = sum(t.numel() for layer, c in enumerate((0, 3, 0, 2))
                 for t in model.choice_angle_tensors(layer, c))
    assert vec.numel() == n_fixed + n_path
    # dropping weight-free tensors (ablation) changes only candidates that use them
    trained = _perturbed(model)
    drop = LayerwiseAngleScorer(model, trained, weight_free='drop')
    keep = LayerwiseAngleScorer(model, trained)
    assert drop.score((1, 1, 1, 1)) == pytest.approx(keep.score((1, 1, 1, 1)))
    assert drop.score((1, 0, 1, 0)) > keep.score((1, 0, 1, 0))  # I enters at zero angle
