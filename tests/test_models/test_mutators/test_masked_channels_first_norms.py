"""Channels-first LayerNorm (mmpretrain ``LayerNorm2d``) and ConvNeXt-V2's GRN are prunable:
their statistics cover the kept channels only, and the export equals the masked model."""
import copy
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmdms.apis import prune_check
from mmdms.export import apply_structure
from mmdms.models import DMSMutator
from mmdms.models.mutators.dms_mutator import MASK_ATTR, _masked_permuted_layer_norm
from mmdms.models.mutators.masked_forwards import masked_grn
from mmdms_testing import build_from_config

norm = pytest.importorskip('mmpretrain.models.utils.norm')
GRN, LayerNorm2d = norm.GRN, norm.LayerNorm2d


def randomize(module, seed=0):
    """Random affine parameters: GRN starts as the identity (gamma = beta = 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (GRN, LayerNorm2d)):
                for p in m.parameters():
                    p.copy_(torch.rand(p.shape, generator=g) + 0.5)
    return module


def masked(module, forward, mask, dim=None):
    module.__dict__[MASK_ATTR] = lambda: mask
    if dim is not None:
        module.__dict__['_dms_mask_dim'] = dim
    module.forward = types.MethodType(forward, module)
    return module


KEPT = torch.tensor([0, 2, 3, 5])
HARD = torch.tensor([1., 0., 1., 1., 0., 1.])


def test_layer_norm_2d_hard_mask_normalises_the_kept_channels():
    ln = randomize(LayerNorm2d(6, eps=1e-6))
    x = torch.randn(2, 6, 3, 4)
    expected = F.layer_norm(x[:, KEPT].permute(0, 2, 3, 1), (4, ), ln.weight[KEPT],
                            ln.bias[KEPT], ln.eps).permute(0, 3, 1, 2)
    out = masked(ln, _masked_permuted_layer_norm, HARD, dim=1)(x, data_format='channel_first')
    assert out.is_contiguous() and out.shape == x.shape
    torch.testing.assert_close(out[:, KEPT], expected, atol=1e-6, rtol=1e-5)
    assert (out[:, [1, 4]] == 0).all()
    last = x.permute(0, 2, 3, 1)  # the channel_last call of a ConvNeXt block
    ln.__dict__['_dms_mask_dim'] = 3
    torch.testing.assert_close(ln(last, data_format='channel_last'), out.permute(0, 2, 3, 1))
    with pytest.raises(RuntimeError, match='traced normalising dim 3'):
        ln(x)  # a layout the trace did not see


def test_layer_norm_2d_soft_mask_weights_the_statistics():
    x = torch.randn(2, 6, 3, 3, dtype=torch.float64)
    mask = torch.tensor([1.0, 0.2, 0.7, 1.0, 0.5, 0.9], dtype=torch.float64, requires_grad=True)
    ln = masked(randomize(LayerNorm2d(6)).double(), _masked_permuted_layer_norm, mask, dim=1)
    out = ln(x)
    w = (mask / mask.sum()).view(1, -1, 1, 1)
    mean = (x * w).sum(1, keepdim=True)
    var = ((x - mean).pow(2) * w).sum(1, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + ln.eps) * ln.weight.view(1, -1, 1, 1) + \
        ln.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(out, expected, atol=1e-8, rtol=1e-8)
    out.sum().backward()
    assert mask.grad is not None and mask.grad.abs().sum() > 0


@pytest.mark.parametrize('data_format', ['channel_first', 'channel_last'])
def test_grn_hard_mask_equals_the_pruned_grn(data_format):
    grn = randomize(GRN(6))
    x = torch.randn(2, 6, 4, 4)
    dim = 1
    if data_format == 'channel_last':
        x, dim = x.permute(0, 2, 3, 1), 3
    pruned = GRN(4)
    with torch.no_grad():
        pruned.gamma.copy_(grn.gamma[KEPT])
        pruned.beta.copy_(grn.beta[KEPT])
    expected = pruned(x.index_select(dim, KEPT), data_format=data_format)
    full = grn(x, data_format=data_format)
    out = masked(grn, masked_grn, HARD)(x, data_format=data_format)
    torch.testing.assert_close(out.index_select(dim, KEPT), expected)
    assert (out.index_select(dim, torch.tensor([1, 4])) == 0).all()
    # the mean over all channels would give other values: the test can fail
    assert not torch.allclose(full.index_select(dim, KEPT), expected, atol=1e-3)
    grn.__dict__[MASK_ATTR] = lambda: torch.ones(6)
    torch.testing.assert_close(grn(x, data_format=data_format), full)


def test_grn_soft_mask_weights_the_channel_mean():
    grn = randomize(GRN(6)).double()
    x = torch.randn(2, 4, 4, 6, dtype=torch.float64)
    mask = torch.tensor([1.0, 0.2, 0.7, 1.0, 0.5, 0.9], dtype=torch.float64, requires_grad=True)
    out = masked(grn, masked_grn, mask)(x, data_format='channel_last')
    gx = x.pow(2).sum((1, 2), keepdim=True).sqrt()
    nx = gx / ((gx * mask).sum(-1, keepdim=True) / mask.sum() + grn.eps)
    torch.testing.assert_close(out, grn.gamma * (x * nx) + grn.beta + x, atol=1e-10, rtol=1e-10)
    out.sum().backward()
    assert mask.grad is not None and mask.grad.abs().sum() > 0


class TinyConvNeXtV2(nn.Module):
    """Stem + LN2d (channels-first), then a ConvNeXt-V2 block in both layouts: depthwise,
    LN2d channel_last, linear, GRN channel_last, linear; LN2d channel_first, 1x1 conv, GRN
    channel_first, 1x1 conv; then a LN2d on the pooled map and a linear head."""

    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 2, stride=2)
        self.stem_norm = LayerNorm2d(c, eps=1e-6)
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.norm = LayerNorm2d(c, eps=1e-6)
        self.pw1 = nn.Linear(c, 4 * c)
        self.grn = GRN(4 * c)
        self.pw2 = nn.Linear(4 * c, c)
        self.norm2 = LayerNorm2d(c, eps=1e-6)
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.grn2 = GRN(2 * c)
        self.conv2 = nn.Conv2d(2 * c, c, 1)
        self.out_norm = LayerNorm2d(c, eps=1e-6)
        self.head = nn.Linear(c, 10)

    def forward(self, x):
        x = self.stem_norm(self.stem(x))
        y = self.norm(self.dw(x).permute(0, 2, 3, 1), data_format='channel_last')
        y = self.pw2(self.grn(F.gelu(self.pw1(y)), data_format='channel_last'))
        x = x + y.permute(0, 3, 1, 2)
        y = self.grn2(F.gelu(self.conv1(self.norm2(x))), data_format='channel_first')
        x = x + self.conv2(y)
        return self.head(self.out_norm(x.mean((2, 3), keepdim=True)).flatten(1))


def test_tiny_convnext_v2_exports_exactly():
    torch.manual_seed(0)
    model = randomize(TinyConvNeXtV2()).eval()
    x = torch.randn(2, 3, 16, 16)
    result = prune_check(model, x, keep_ratio=0.5)
    assert result['frozen'] == ['reaches a model output'], result['frozen']
    assert result['num_channel_units'] == 3  # the stream, the two hidden widths
    assert result['max_abs_diff'] <= 1e-5 * max(1.0, result['output_scale'])
    assert result['unpruned_diff'] > 1e-2 * result['output_scale']
    pruned = apply_structure(copy.deepcopy(model), result['structure'])
    for ln in (pruned.stem_norm, pruned.norm, pruned.norm2, pruned.out_norm):
        assert ln.weight.shape == ln.bias.shape == (4, )
        assert ln.normalized_shape == (4, ) and ln.num_channels == 4
    assert pruned.grn.gamma.shape == pruned.grn.beta.shape == (16, )
    assert pruned.grn.in_channels == 16
    assert pruned.grn2.gamma.shape == (8, ) and pruned.grn2.in_channels == 8
    assert pruned.pw1.weight.shape == (16, 4) and pruned.conv1.weight.shape == (8, 4, 1, 1)


class AddingNorm2d(LayerNorm2d):
    """Does more than permute around layer_norm: its statistics cannot be masked."""

    def forward(self, x):
        return super().forward(x) + 1


class ScaledInputNorm2d(LayerNorm2d):

    def forward(self, x):
        return super().forward(x * 2)


class WritingNorm2d(LayerNorm2d):
    """Writes into its output: ``__setitem__`` is not an op the counter sees."""

    def forward(self, x):
        y = super().forward(x)
        y[:, 0] = 0
        return y


class SwappedNorm2d(LayerNorm2d):
    """Permutes back to ``(N, C, W, H)``: the shapes match for square maps, the layout not."""

    def forward(self, x):
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return y.permute(0, 3, 2, 1)


class NormNet(nn.Module):

    def __init__(self, norm_cls, twice=False):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.norm = norm_cls(8)
        self.twice = twice
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.norm(self.conv(x))
        if self.twice:  # the same module with the other layout
            x = self.norm(x.permute(0, 2, 3, 1), data_format='channel_last').permute(0, 3, 1, 2)
        return self.head(x)


@pytest.mark.parametrize('norm_cls,twice,reason', [
    (AddingNorm2d, False, 'computes more than a permuted layer_norm'),
    (ScaledInputNorm2d, False, 'normalises a tensor other than a permutation of its input'),
    (SwappedNorm2d, False, 'computes more than a permuted layer_norm'),
    (WritingNorm2d, False, 'computes more than a permuted layer_norm'),
    (LayerNorm2d, True, 'permutes it in several ways'),
])
def test_permuted_norm_that_cannot_be_masked_is_frozen(norm_cls, twice, reason):
    model = NormNet(norm_cls, twice).eval()
    mutator = DMSMutator()
    mutator.prepare_from_supernet(model, lambda: model(torch.randn(1, 3, 4, 4)))
    assert not mutator.graph.groups
    assert any(reason in f['reason'] for f in mutator.graph.frozen_report())


def test_permuted_norm_is_prunable_when_exact():
    model = NormNet(LayerNorm2d).eval()
    result = prune_check(model, torch.randn(2, 3, 4, 4), keep_ratio=0.5)
    assert result['num_channel_units'] == 1 and result['frozen'] == ['reaches a model output']
    assert result['max_abs_diff'] <= 1e-5 * max(1.0, result['output_scale'])


def build_convnext_v2_atto():
    return build_from_config('mmpretrain::convnext_v2/convnext-v2-atto_32xb32_in1k.py')


def test_convnext_v2_atto_stage_and_hidden_widths_are_prunable():
    """Before: every width frozen (0 channel units) by LN2d and GRN's mean over channels."""
    torch.manual_seed(0)
    model = randomize(build_convnext_v2_atto())
    x = torch.randn(1, 3, 64, 64)
    result = prune_check(model, x, keep_ratio=0.5, call=lambda m, x: m(x, mode='tensor'))
    assert result['frozen'] == ['reaches a model output'], result['frozen']
    assert result['num_channel_units'] == 4 + 12  # 4 stage widths, 12 GRN/MLP widths
    assert result['max_abs_diff'] <= 1e-4 * max(1.0, result['output_scale'])
    assert result['unpruned_diff'] > 1e-2 * result['output_scale']
    assert result['flops_ratio'] < 0.3
    pruned = apply_structure(copy.deepcopy(model), result['structure'])
    widths = [40, 80, 160, 320]
    for i, stage in enumerate(pruned.backbone.stages):
        for block in stage:
            assert block.norm.num_channels == block.depthwise_conv.out_channels == widths[i] // 2
            assert block.grn.gamma.shape == block.grn.beta.shape == (2 * widths[i], )
            assert block.grn.in_channels == block.pointwise_conv1.out_features
