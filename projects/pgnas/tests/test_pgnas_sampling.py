import pytest
import torch

from projects.pgnas.pgnas.engine import cost_matched_drop_rate
from projects.pgnas.pgnas.models import (branch_costs, candidate_context, candidate_cost,
                                         candidate_to_structure, dropout_units,
                                         sample_candidate)


def test_sampling_is_reproducible(tiny_model):
    a = sample_candidate(tiny_model, seed=3, index=5)
    b = sample_candidate(tiny_model, seed=3, index=5)
    c = sample_candidate(tiny_model, seed=3, index=6)
    assert list(a) == list(dropout_units(tiny_model))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_posterior_and_uniform_rates(tiny_model):
    units = dropout_units(tiny_model)
    names = list(units)
    with torch.no_grad():  # give two units very different learned rates
        units[names[0]].p_logit.fill_(torch.logit(torch.tensor(0.9)))
        units[names[1]].p_logit.fill_(torch.logit(torch.tensor(0.02)))
    cands = [sample_candidate(tiny_model, 0, i) for i in range(400)]
    keep0 = torch.stack([c[names[0]] for c in cands]).float().mean().item()
    keep1 = torch.stack([c[names[1]] for c in cands]).float().mean().item()
    assert keep0 == pytest.approx(0.1, abs=0.03)
    assert keep1 == pytest.approx(0.98, abs=0.02)
    uni = [sample_candidate(tiny_model, 0, i, drop_rate=0.5) for i in range(400)]
    assert torch.stack([c[names[0]] for c in uni]).float().mean().item() == pytest.approx(
        0.5, abs=0.04)


def test_candidate_context_sets_and_clears(tiny_model):
    cand = sample_candidate(tiny_model, 0, 0, drop_rate=0.5)
    with candidate_context(tiny_model, cand):
        assert all(u.candidate_mask is not None for u in dropout_units(tiny_model).values())
    assert all(u.candidate_mask is None for u in dropout_units(tiny_model).values())
    with pytest.raises(KeyError):
        with candidate_context(tiny_model, dict(list(cand.items())[1:])):
            pass


def test_costs_and_cost_matched_rate(tiny_model):
    costs = branch_costs(tiny_model)
    # layer1 conv1, 3x3 branch: 4 out channels x 32x32 x 9 per kept input channel
    assert costs['backbone.layer1.0.conv1.branches.k3.dropout'] == 4 * 32 * 32 * 9
    assert costs['backbone.layer2.0.conv1.branches.k1.dropout'] == 8 * 16 * 16 * 1
    full = {n: torch.ones(u.num_channels, dtype=torch.bool)
            for n, u in dropout_units(tiny_model).items()}
    total = candidate_cost(full, costs)
    # the same rate everywhere: the cost-matched uniform rate is that rate
    assert cost_matched_drop_rate(tiny_model, costs) == pytest.approx(0.1, abs=1e-6)
    units = dropout_units(tiny_model)
    with torch.no_grad():
        for i, u in enumerate(units.values()):
            u.p_logit.fill_(torch.logit(torch.tensor(0.05 + 0.04 * i)))
    r = cost_matched_drop_rate(tiny_model, costs)
    expected = sum(costs[n] * u.num_channels * (1 - float(u.drop_rate.detach()))
                   for n, u in units.items())
    assert total * (1 - r) == pytest.approx(expected, rel=1e-6)


def test_structure_lists_kept_channels(tiny_model):
    cand = sample_candidate(tiny_model, 0, 0, drop_rate=0.5)
    structure = candidate_to_structure(cand)
    name = 'backbone.layer1.0.conv2.branches.k3.dropout'
    kept = torch.nonzero(cand[name]).flatten().tolist()
    assert structure['slots']['layer1.0.conv2.branches.k3.conv.weight']['1'] == dict(
        size=4, kept=kept)
    assert structure['slots']['layer1.0.conv2.branches.k3.in_index']['0']['kept'] == kept
