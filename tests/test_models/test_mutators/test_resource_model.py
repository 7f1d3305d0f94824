"""The packed (vectorised) resource model equals the per-term definition, value and gradient;
units' cached ranks follow every change of importance."""
import torch

from mmdms.models.mutators.resource_model import ResourceModel
from mmdms.models.ops import differentiable_topk
from mmdms.models.units import DTopkChannelUnit


def naive(terms, flat, blocks, hard):
    """The definition: coef * prod(straight-through counts) * prod(block masks), term by term."""
    total = torch.zeros((), dtype=torch.float64)
    for coef, indices, refs in terms:
        value = torch.tensor(float(coef), dtype=torch.float64)
        for index in indices:
            g = flat[index]
            count = g.detach().ge(0.5).double().sum()
            value = value * (count if hard else count + (g.sum() - g.sum().detach()).double())
        for unit, element in refs:
            m = blocks[unit][element]
            b = m.detach().ge(0.5).double()
            value = value * (b if hard else b + (m - m.detach()).double())
        total = total + value
    return total


def random_terms(g, num_flat, block_sizes, count):
    terms = []
    for _ in range(count):
        indices = [torch.randint(0, num_flat, (int(torch.randint(1, 9, (), generator=g)), ),
                                 generator=g) for _ in range(int(torch.randint(0, 4, (),
                                                                                generator=g)))]
        refs = [(u, int(torch.randint(0, s, (), generator=g)))
                for u, s in enumerate(block_sizes) if torch.rand((), generator=g) < 0.3]
        terms.append((float(torch.randint(1, 1000, (), generator=g)), indices, refs))
    return terms


def test_packed_terms_equal_the_definition():
    g = torch.Generator().manual_seed(0)
    block_sizes = [3, 5]
    compute = random_terms(g, 40, block_sizes, 60)
    params = random_terms(g, 40, block_sizes, 30)
    model = ResourceModel(compute, params, block_sizes)
    for hard in (False, True):
        flat = torch.rand(41, generator=g).requires_grad_()
        blocks = [torch.rand(s, generator=g).requires_grad_() for s in block_sizes]
        got = model(flat, blocks, hard=hard)
        for key, terms in (('flops', compute), ('params', params)):
            want = naive(terms, flat, blocks, hard)
            assert float(got[key].detach()) == float(want.detach())  # exact: hard counts are integers
            if hard:
                continue
            grads = torch.autograd.grad(got[key], [flat] + blocks, allow_unused=True)
            wants = torch.autograd.grad(want, [flat] + blocks, allow_unused=True)
            for a, b in zip(grads, wants):
                torch.testing.assert_close(a if a is not None else torch.zeros_like(b),
                                           b if b is not None else torch.zeros_like(a),
                                           rtol=1e-5, atol=1e-3)


def test_empty_terms_give_zero():
    model = ResourceModel([], [], [])
    out = model(torch.ones(1), [], hard=False)
    assert float(out['flops']) == 0.0 and float(out['params']) == 0.0


def test_cached_ranks_follow_importance_updates():
    unit = DTopkChannelUnit(16)
    unit.ratio.data.fill_(0.5)
    assert torch.equal(unit.mask(), torch.ones(16))  # cold start: all tied
    g = torch.Generator().manual_seed(0)
    for change in ('update', 'keep', 'load'):
        importance = torch.rand(16, generator=g)
        if change == 'update':
            unit.tracker.update(importance)
            expected_importance = unit.tracker.importance.clone()
        elif change == 'keep':
            unit.keep(5, importance)
            expected_importance = importance
        else:
            state = unit.state_dict()
            state['tracker.importance'] = importance
            unit.load_state_dict(state)
            expected_importance = importance
        want = differentiable_topk(expected_importance, unit.ratio, unit.lambda_scale)
        torch.testing.assert_close(unit.mask(), want)
