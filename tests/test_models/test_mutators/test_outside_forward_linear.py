"""A weight applied by its parent's forward (``F.linear(x, self.qkv.weight, bias)`` in BEiT and
SwinV2 attention) is a maskable consumer: the mutator swaps in ``W * m`` while that forward runs,
which equals masking the input, and the export still equals the hard-masked supernet."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmdms.apis import prune_check
from mmdms.models.mutators import DMSMutator
from mmdms.models.mutators.dms_mutator import SAVED_WEIGHTS_ATTR, WEIGHTS_ATTR
from mmdms.models.tracing import trace_channels

OUTSIDE = 'applied outside a standard'


class Attn(nn.Module):
    """Applies its child's weight itself, with its own bias, as BEiT/SwinV2 attention do."""

    def __init__(self, c=8, hidden=12):
        super().__init__()
        self.fc = nn.Linear(c, hidden, bias=False)
        self.bias = nn.Parameter(torch.randn(hidden))

    def forward(self, x):
        return F.linear(x, self.fc.weight, self.bias)


class Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(4, 8)
        self.attn = Attn()
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        return self.head(F.relu(self.attn(F.relu(self.stem(x)))))


class ConvNet(nn.Module):
    """The conv version: ``F.conv2d(x, self.conv.weight, ...)`` in the parent's forward."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv = nn.Conv2d(8, 6, 3, padding=1)
        self.head = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = F.relu(F.conv2d(x, self.conv.weight, self.conv.bias, padding=1))
        return self.head(x)


def supernet(seed=0):
    torch.manual_seed(seed)
    model = Net()
    x = torch.randn(5, 4)
    mutator = DMSMutator()
    mutator.prepare_from_supernet(model, lambda: model(x))
    g = torch.Generator().manual_seed(seed)
    for unit in mutator.units:  # ranked importances and a ratio: soft masks, not ones
        unit.keep(max(1, unit.num_elements // 2),
                  torch.rand(unit.num_elements, generator=g))
    return model, mutator, x


def test_traced_as_consumer_of_the_parent_forward():
    model = Net()
    x = torch.randn(5, 4)
    trace = trace_channels(model, lambda: model(x))
    sites = [s for s in trace.consumers if s.module == 'attn.fc']
    assert [(s.applied_in, s.param, s.kind) for s in sites] == [('attn', 'weight', 'linear')]
    assert not any(OUTSIDE in r.reason for r in trace.frozen), [r.reason for r in trace.frozen]
    result = prune_check(model, x, keep_ratio=0.5)
    assert result['num_channel_units'] == 2  # the stem width (read by attn.fc) and the hidden
    assert result['max_abs_diff'] <= 1e-5
    assert result['unpruned_diff'] > 1e-3
    assert result['flops_ratio'] < 0.5


def test_conv_weight_applied_by_the_parent():
    torch.manual_seed(0)
    model = ConvNet()
    x = torch.randn(2, 3, 8, 8)
    result = prune_check(model, x, keep_ratio=0.5)
    assert not any(OUTSIDE in r for r in result['frozen']), result['frozen']
    assert result['num_channel_units'] == 2
    assert result['max_abs_diff'] <= 1e-5 and result['unpruned_diff'] > 1e-3


def test_gradients_equal_input_masking():
    """``W * m`` gives ``W``, ``m`` (and so the ratio) the gradients of ``x * m``."""
    model, mutator, x = supernet()
    weight = model.attn.fc.weight
    model(x).square().sum().backward()
    assert model.attn.fc._parameters['weight'] is weight  # the Parameter is back
    unit = next(i for i, u in enumerate(mutator.channel_units) if u.num_elements == 8)
    mask = mutator._cache['channel'][unit]
    assert mask.grad is not None and mask.grad.abs().sum() > 0
    assert mutator.channel_units[unit].ratio.grad is not None
    assert mutator.channel_units[unit].ratio.grad.abs() > 0
    m = mask.detach().clone().requires_grad_()
    w = weight.detach().clone().requires_grad_()
    hidden = F.relu(F.linear(F.relu(model.stem(x)) * m, w, model.attn.bias))
    other = mutator._cache['channel'][1 - unit].detach()
    F.linear(hidden * other, model.head.weight, model.head.bias).square().sum().backward()
    torch.testing.assert_close(weight.grad, w.grad)
    torch.testing.assert_close(mask.grad, m.grad)


class RootApplies(nn.Module):
    """The top-level forward applies the weight: masks must come from this step's cache."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(4, 8)
        self.fc = nn.Linear(8, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = F.relu(F.linear(F.relu(self.stem(x)), self.fc.weight, self.fc.bias))
        return self.head(x)


def test_root_forward_applies_the_weight():
    torch.manual_seed(0)
    model = RootApplies()
    x = torch.randn(5, 4)
    trace = trace_channels(model, lambda: model(x))
    assert [(s.module, s.applied_in) for s in trace.consumers if s.module == 'fc'] == \
        [('fc', '')]
    mutator = DMSMutator()
    mutator.prepare_from_supernet(model, lambda: model(x))
    for unit in mutator.units:
        unit.keep(unit.num_elements // 2, torch.rand(unit.num_elements))
    for _ in range(2):  # a stale mask from the last step would fail the second backward
        model(x).sum().backward()
        unit = next(i for i, u in enumerate(mutator.channel_units) if u.num_elements == 8)
        assert mutator._cache['channel'][unit].grad.abs().sum() > 0
        mutator.update_importance()
    assert prune_check(RootApplies(), x, keep_ratio=0.5)['max_abs_diff'] <= 1e-5


def test_weight_restored_when_forward_raises():
    model, _, _ = supernet()
    weight = model.attn.fc.weight
    with pytest.raises(RuntimeError):
        model.attn(torch.randn(2, 5))  # wrong width: F.linear raises inside the forward
    assert model.attn.fc._parameters['weight'] is weight
    assert model.attn.__dict__[SAVED_WEIGHTS_ATTR] == []


def test_deepcopy_gives_an_independent_supernet():
    model, mutator, x = supernet()
    mutator.set_mode('hard')
    with torch.no_grad():
        same = model(x)
    # one deepcopy of both, as of an algorithm holding the architecture and the mutator
    both = copy.deepcopy(nn.ModuleDict(dict(model=model, mutator=mutator)))
    clone, clone_mutator = both['model'], both['mutator']
    with torch.no_grad():
        torch.testing.assert_close(clone(x), same)
        for unit in clone_mutator.channel_units:
            unit.keep(unit.num_elements)  # the copy keeps everything
        clone_mutator.set_mode('hard')
        assert not torch.allclose(clone(x), same)
        torch.testing.assert_close(model(x), same)  # the original is unchanged
    assert clone.attn.fc.weight is not model.attn.fc.weight
    assert isinstance(clone.attn.fc.weight, nn.Parameter)


def test_remove_hooks_restores_the_original_forward():
    torch.manual_seed(0)
    model = Net()
    x = torch.randn(5, 4)
    with torch.no_grad():
        original = model(x)
    model, mutator, x = supernet(seed=0)
    mutator.set_mode('hard')
    with torch.no_grad():
        assert not torch.allclose(model(x), original)
    mutator.remove_hooks()
    with torch.no_grad():
        torch.testing.assert_close(model(x), original)
    attn = model.attn
    assert WEIGHTS_ATTR not in attn.__dict__ and SAVED_WEIGHTS_ATTR not in attn.__dict__
    assert not attn._forward_pre_hooks and not attn._forward_hooks
    assert not attn._forward_hooks_always_called


class Sibling(nn.Module):

    def forward(self, x, weight):
        return F.linear(x, weight)


class Unsafe(nn.Module):
    """Weights that cannot be masked where they are applied."""

    def __init__(self, case):
        super().__init__()
        self.case = case
        self.stem = nn.Linear(4, 8)
        self.attn = Attn()
        self.sibling = Sibling()

    def forward(self, x):
        x = F.relu(self.stem(x))
        if self.case == 'not inside':  # the weight belongs to a module outside the caller
            return self.sibling(x, self.attn.fc.weight)
        if self.case == 'two forwards':  # also applied by its own module's forward
            return self.attn(x) + self.attn.fc(x)
        return self.attn(x) + self.attn.fc.weight.sum()  # 'read': also read by another op


@pytest.mark.parametrize('case,reason', [('not inside', 'which does not contain it'),
                                         ('two forwards', 'by several forwards'),
                                         ('read', 'also read by other ops')])
def test_unsafe_uses_stay_frozen(case, reason):
    model = Unsafe(case)
    trace = trace_channels(model, lambda: model(torch.randn(5, 4)))
    assert not [s for s in trace.consumers if s.module == 'attn.fc']
    assert any(OUTSIDE in r.reason and reason in r.reason for r in trace.frozen), \
        [r.reason for r in trace.frozen]


def test_mmpretrain_cross_attention_applies_three_weights():
    """mmpretrain's ``CrossMultiheadAttention`` applies q/k/v weights by ``F.linear``."""
    from mmpretrain.models.utils import CrossMultiheadAttention

    class CrossNet(nn.Module):

        def __init__(self):
            super().__init__()
            self.stem = nn.Linear(6, 16)
            self.attn = CrossMultiheadAttention(16, num_heads=2, qkv_bias=True)
            self.head = nn.Linear(16, 3)

        def forward(self, x):
            x = self.stem(x)
            return self.head(self.attn(x, x, x))

    torch.manual_seed(0)
    model = CrossNet()
    nn.init.normal_(model.attn.q_bias), nn.init.normal_(model.attn.v_bias)
    result = prune_check(model, torch.randn(2, 5, 6), keep_ratio=0.5)
    assert not any(OUTSIDE in r for r in result['frozen']), result['frozen']
    assert result['max_abs_diff'] <= 1e-5 and result['unpruned_diff'] > 1e-3
    assert result['flops_ratio'] < 0.9


def test_beit_attention_is_traced_and_exports_exactly():
    """A small BEiT with a head: qkv is applied by ``BEiTAttention``'s forward with its q/v
    biases. Neither the linear nor ``reshape(B, N, C)`` of the attention output (``C`` read
    from the input; the mutator installs the registered forward rewrite) freezes the
    embedding."""
    from mmpretrain.models import BEiTViT

    class BEiTNet(nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = BEiTViT(arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                              feedforward_channels=64), img_size=32,
                                    patch_size=8, use_abs_pos_emb=False, use_rel_pos_bias=True)
            self.head = nn.Linear(32, 3)

        def forward(self, x):
            return self.head(self.backbone(x)[-1])

    torch.manual_seed(0)
    model = BEiTNet()
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    trace = trace_channels(model, lambda: model(x))
    sites = [s for s in trace.consumers if s.module.endswith('attn.qkv')]
    assert len(sites) == 2 and all(s.applied_in == s.module[:-4] for s in sites)
    result = prune_check(model, x, keep_ratio=0.5)
    assert not any(OUTSIDE in r for r in result['frozen']), result['frozen']
    assert not any('size read from a tensor' in r for r in result['frozen']), result['frozen']
    assert result['max_abs_diff'] <= 1e-4 * max(1.0, result['output_scale'])
    assert result['unpruned_diff'] > 1e-3 and result['flops_ratio'] < 0.5
