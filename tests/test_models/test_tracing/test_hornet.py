"""HorNet is prunable: unequal ``torch.split`` pieces sized by module attributes are pruned
piece by piece when the module has an export adapter (gnConv's ``dims``), and HorNet's
hand-written LayerNorm takes its statistics over the kept channels."""
import copy
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmdms.apis import prune_check
from mmdms.export import apply_structure
from mmdms.models import DMSMutator
from mmdms.models.mutators.dms_mutator import MASK_ATTR
from mmdms.models.mutators.masked_forwards import masked_hornet_layer_norm
from mmdms.registry import PRUNING_ADAPTERS
from mmdms_testing import build_from_config, hard_flops_after_keeping_half

hornet = pytest.importorskip('mmpretrain.models.backbones.hornet')
HorNetLayerNorm, gnConv = hornet.HorNetLayerNorm, hornet.gnConv


def randomize(module, seed=0):
    """Random 1-d parameters (norm affines, biases, layer scales of 1e-6): every channel and
    branch then shows in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() == 1:
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
    return module


class UnequalSplit(nn.Module):
    """``split`` by a plain-int attribute into pieces of 2 and 6 channels, used apart."""

    def __init__(self):
        super().__init__()
        self.sizes = [2, 6]
        self.conv_in = nn.Conv2d(3, 8, 1)
        self.conv_a = nn.Conv2d(2, 4, 1)
        self.conv_b = nn.Conv2d(6, 4, 1)

    def forward(self, x):
        a, b = torch.split(self.conv_in(x), self.sizes, dim=1)
        return self.conv_a(F.relu(a)) + self.conv_b(b)


class AdaptedUnequalSplit(UnequalSplit):
    pass


@PRUNING_ADAPTERS.register_module(name='AdaptedUnequalSplit', force=True)
def _adapted_unequal_split(module):
    module.sizes = [module.conv_a.in_channels, module.conv_b.in_channels]


def test_unequal_split_without_adapter_is_frozen():
    model = UnequalSplit().eval()
    mutator = DMSMutator()
    mutator.prepare_from_supernet(model, lambda: model(torch.randn(1, 3, 4, 4)))
    assert not mutator.graph.groups
    reasons = [f['reason'] for f in mutator.graph.frozen_report()]
    assert any('split into unequal pieces [2, 6]' in r for r in reasons), reasons


def test_unequal_split_with_adapter_prunes_each_piece():
    torch.manual_seed(0)
    model = randomize(AdaptedUnequalSplit()).eval()
    x = torch.randn(2, 3, 4, 4)
    result = prune_check(model, x, keep_ratio=0.5)
    assert result['frozen'] == ['reaches a model output'], result['frozen']
    # one unit per piece (so neither can lose all its channels), named apart
    table = {row['unit']: row['size'] for row in result['unit_table']}
    assert table == {'conv_in': 2, 'conv_in#1': 6}
    assert result['max_abs_diff'] <= 1e-5 * max(1.0, result['output_scale'])
    assert result['unpruned_diff'] > 1e-2 * result['output_scale']
    pruned = apply_structure(copy.deepcopy(model), result['structure'])
    assert pruned.sizes == [1, 3] and pruned.conv_in.out_channels == 4


class GnConvNet(nn.Module):
    """stem -> HorNet gnConv (order 3: dims 4, 8, 16) -> head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 1)
        self.gnconv = gnConv(16, order=3, dw_cfg=dict(type='DW', kernel_size=3), scale=0.5)
        self.head = nn.Conv2d(16, 5, 1)

    def forward(self, x):
        return self.head(self.gnconv(self.stem(x)))


def test_gnconv_units_and_exact_export():
    torch.manual_seed(0)
    model = randomize(GnConvNet()).eval()
    x = torch.randn(2, 3, 6, 6)
    result = prune_check(model, x, keep_ratio=0.5)
    assert result['frozen'] == ['reaches a model output'], result['frozen']
    # the stem width, dims[0] (tied to the first dwconv piece by ``y * dw_list[0]``), dims[1],
    # dims[2] (projs outputs, tied to the dwconv pieces), the proj_out width
    sizes = sorted(row['size'] for row in result['unit_table'])
    assert sizes == [4, 8, 16, 16, 16]
    assert result['max_abs_diff'] <= 1e-5 * max(1.0, result['output_scale'])
    assert result['unpruned_diff'] > 1e-2 * result['output_scale']
    pruned = apply_structure(copy.deepcopy(model), result['structure']).gnconv
    assert pruned.dims == [2, 4, 8]
    assert pruned.proj_in.out_channels == 2 + 14 and pruned.dwconv.groups == 14
    assert [p.weight.shape[:2] for p in pruned.projs] == [(4, 2), (8, 4)]
    assert pruned.proj_out.weight.shape[:2] == (8, 8)


def test_gnconv_hard_flops_equal_the_exported_count():
    """Each piece's convs scale with its own unit: the resource model's hard FLOPs equal
    mmengine's count of the exported model."""
    torch.manual_seed(0)
    model = randomize(GnConvNet())
    predicted, counted, original, _ = hard_flops_after_keeping_half(model, torch.randn(1, 3, 6, 6))
    assert predicted == counted < 0.5 * original


def test_gnconv_soft_masks_get_gradients():
    model = randomize(GnConvNet())
    mutator = DMSMutator()
    x = torch.randn(1, 3, 6, 6)
    mutator.prepare_from_supernet(model, lambda: model(x))
    mutator.set_mode('soft')
    model(x).sum().backward()
    grads = [m.grad for m in mutator._masks()['channel']]
    assert len(grads) == 5 and all(g is not None and g.abs().sum() > 0 for g in grads)


# ---------------------------------------------------------------------------- HorNetLayerNorm
KEPT = torch.tensor([0, 2, 3, 5])
HARD = torch.tensor([1., 0., 1., 1., 0., 1.])


def masked_norm(data_format, mask, dtype=torch.float32):
    ln = randomize(HorNetLayerNorm(6, eps=1e-6, data_format=data_format)).to(dtype)
    ln.__dict__[MASK_ATTR] = lambda: mask
    ln.forward = types.MethodType(masked_hornet_layer_norm, ln)
    return ln


def pruned_norm(ln, data_format):
    pruned = HorNetLayerNorm(4, eps=ln.eps, data_format=data_format)
    with torch.no_grad():
        pruned.weight.copy_(ln.weight[KEPT])
        pruned.bias.copy_(ln.bias[KEPT])
    return pruned


@pytest.mark.parametrize('data_format', ['channels_first', 'channels_last'])
def test_hornet_layer_norm_hard_mask_equals_the_pruned_norm(data_format):
    ln = masked_norm(data_format, HARD)
    x = torch.randn(2, 6, 3, 4)
    dim = 1
    if data_format == 'channels_last':
        x, dim = x.permute(0, 2, 3, 1), 3
    expected = pruned_norm(ln, data_format)(x.index_select(dim, KEPT))
    full = HorNetLayerNorm.forward(ln, x)
    out = ln(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out.index_select(dim, KEPT), expected)
    assert (out.index_select(dim, torch.tensor([1, 4])) == 0).all()
    # statistics over all channels would give other values: the test can fail
    assert not torch.allclose(full.index_select(dim, KEPT), expected, atol=1e-3)
    ln.__dict__[MASK_ATTR] = lambda: torch.ones(6)
    torch.testing.assert_close(ln(x), full)


def test_hornet_layer_norm_soft_mask_weights_the_statistics():
    x = torch.randn(2, 6, 3, 3, dtype=torch.float64)
    mask = torch.tensor([1.0, 0.2, 0.7, 1.0, 0.5, 0.9], dtype=torch.float64, requires_grad=True)
    ln = masked_norm('channels_first', mask, torch.float64)
    out = ln(x)
    w = (mask / mask.sum()).view(1, -1, 1, 1)
    mean = (x * w).sum(1, keepdim=True)
    var = ((x - mean).pow(2) * w).sum(1, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + ln.eps) * ln.weight.view(1, -1, 1, 1) + \
        ln.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)
    out.sum().backward()
    assert mask.grad is not None and mask.grad.abs().sum() > 0


class NormNet(nn.Module):
    """conv -> HorNetLayerNorm channels_first -> conv -> channels_last norm -> linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.norm1 = HorNetLayerNorm(8, data_format='channels_first')
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.norm2 = HorNetLayerNorm(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.conv2(self.norm1(self.conv(x)))
        return self.head(self.norm2(x.permute(0, 2, 3, 1)))


def test_hornet_layer_norm_is_a_masked_consumer_in_both_layouts():
    """Before: the mean over channels (channels_first) and ``F.layer_norm`` with the module's
    own weight (channels_last) froze both widths."""
    torch.manual_seed(0)
    model = randomize(NormNet()).eval()
    result = prune_check(model, torch.randn(2, 3, 4, 4), keep_ratio=0.5)
    assert result['frozen'] == ['reaches a model output'], result['frozen']
    assert result['num_channel_units'] == 2
    assert result['max_abs_diff'] <= 1e-5 * max(1.0, result['output_scale'])
    pruned = apply_structure(copy.deepcopy(model), result['structure'])
    assert pruned.norm1.weight.shape == pruned.norm2.weight.shape == (4, )
    assert pruned.norm2.normalized_shape == (4, )


# ---------------------------------------------------------------------------- real HorNet
def build_small_hornet():
    """hornet-tiny's config with a narrower, shallower arch (same block code, orders 2..5)."""

    def shrink(model):
        model.backbone.arch = dict(base_dim=16, depths=[1, 1, 2, 1], orders=[2, 3, 4, 5],
                                   dw_cfg=[dict(type='DW', kernel_size=7)] * 4)
        model.head.update(in_channels=128, num_classes=10)
        model.pop('train_cfg', None)

    return build_from_config('mmpretrain::hornet/hornet-tiny_8xb128_in1k.py', edit=shrink)


def test_small_hornet_exports_exactly():
    """Before: every stage width and every gnConv width frozen (only the 5 MLP widths)."""
    torch.manual_seed(0)
    model = randomize(build_small_hornet())
    x = torch.randn(1, 3, 64, 64)
    result = prune_check(model, x, keep_ratio=0.5, call=lambda m, x: m(x, mode='tensor'))
    assert result['frozen'] == ['reaches a model output'], result['frozen']
    # 4 stage widths, 5 MLP widths, one unit per gnConv order: 2 + 3 + 2 * 4 + 5
    assert result['num_channel_units'] == 4 + 5 + 18
    assert result['max_abs_diff'] <= 1e-4 * max(1.0, result['output_scale'])
    assert result['unpruned_diff'] > 1e-2 * result['output_scale']
    assert result['flops_ratio'] < 0.35
    pruned = apply_structure(copy.deepcopy(model), result['structure']).backbone
    for i, stage in enumerate(pruned.stages):
        for block in stage:
            full = [16 * 2**i // 2**k for k in range(block.gnconv.order)][::-1]
            assert block.gnconv.dims == [d // 2 for d in full]
            assert block.norm1.weight.shape == (8 * 2**i, )
            assert block.norm2.normalized_shape == (8 * 2**i, )
