"""Channel halves cut at a size read from the tensor (``x[:, :C // 2]``, ``x[:, C // 2:]``):
pruned like ``chunk(2)``, position by position, so the exported model cuts between the same
channels; any other cut of a channel dim stays frozen."""
import pytest
import torch
from torch import nn

from mmdms.apis import prune_check
from mmdms.models import DMSMutator


def discover(model, x):
    model.eval()
    mutator = DMSMutator()
    mutator.prepare_from_supernet(model, lambda: model(x))
    sizes = {g.name: g.num_elements for g in mutator.graph.groups}
    reasons = {f['group']: f['reason'] for f in mutator.graph.frozen_report()}
    return sizes, reasons


def check_exact(model, x, seeds=(0, 1, 2)):
    for seed in seeds:
        result = prune_check(model, x, keep_ratio=0.5, seed=seed)
        assert result['max_abs_diff'] <= 1e-5 * max(1.0, result['output_scale']), result
        assert result['flops_ratio'] < 1.0
    return result


def conv_bn(cin, cout, k=3):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


def half_point(channels, rule):
    """Split points found in model code."""
    return {'floor': lambda c: c // 2,
            'shufflenet': lambda c: c // 2 + c % 2,  # mmpretrain ShuffleNet-V2
            'rest': lambda c: c - c // 2,
            'quarter_twice': lambda c: c // 4 * 2,  # C/2 only when C is a multiple of 4
            'constant': lambda c: 4}[rule](channels)


class HalfSplit(nn.Module):
    """CSP-style: one half passes through, the other goes through a conv, then concat."""

    def __init__(self, channels=8, rule='floor', first_only=False):
        super().__init__()
        self.rule, self.first_only = rule, first_only
        self.a = conv_bn(3, channels)
        cut = half_point(channels, rule)
        self.b = conv_bn(channels - cut, channels - cut)
        self.fuse = nn.Conv2d(cut if first_only else channels, 4, 1)

    def forward(self, x):
        x = self.a(x)
        c = half_point(x.shape[1], self.rule)
        if self.first_only:
            return self.fuse(x[:, :c])
        x1, x2 = x[:, :c], x[:, c:]
        return self.fuse(torch.cat([x1, self.b(x2)], 1))


def kept_positions(result, name='a.0.weight'):
    return result['structure']['slots'][name]['0']['kept']


@pytest.mark.parametrize('rule', ['floor', 'shufflenet', 'rest'])
def test_halves_cut_at_half_the_width_are_tied_like_chunk(rule):
    x = torch.randn(2, 3, 8, 8)
    sizes, _ = discover(HalfSplit(rule=rule), x)
    assert sizes == {'a.0': 4, 'b.0': 4}  # 8 channels tied pairwise into 4 elements
    result = check_exact(HalfSplit(rule=rule), x)
    kept = kept_positions(result)
    assert [k - 4 for k in kept if k >= 4] == [k for k in kept if k < 4]


def test_first_half_alone_keeps_the_tie():
    """Only ``x[:, :c]`` is used, but the exported model still reads ``c`` from the whole
    pruned ``x``: both halves must keep equally many channels."""
    x = torch.randn(2, 3, 8, 8)
    sizes, _ = discover(HalfSplit(first_only=True), x)
    assert sizes == {'a.0': 4}
    kept = kept_positions(check_exact(HalfSplit(first_only=True), x))
    assert [k - 4 for k in kept if k >= 4] == [k for k in kept if k < 4]


class WholeSlice(nn.Module):

    def __init__(self):
        super().__init__()
        self.a, self.b = conv_bn(3, 8), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.a(x)
        return self.b(x[:, :x.shape[1]])


def test_slice_up_to_the_width_selects_nothing():
    sizes, _ = discover(WholeSlice(), torch.randn(2, 3, 8, 8))
    assert sizes == {'a.0': 8}


def test_odd_width_is_frozen_with_reason():
    """``C // 2 + C % 2`` with ``C = 7`` cuts 4 + 3: not halves."""
    x = torch.randn(2, 3, 8, 8)
    sizes, reasons = discover(HalfSplit(7, 'shufflenet'), x)
    assert sizes == {'b.0': 3}
    assert reasons['a.0'].startswith('__getitem__ cuts a channel dim of 7 at a size read from '
                                     'a tensor (4)')
    check_exact(HalfSplit(7, 'shufflenet'), x)


def test_slice_by_a_constant_stays_frozen():
    x = torch.randn(2, 3, 8, 8)
    sizes, reasons = discover(HalfSplit(rule='constant'), x)
    assert sizes == {'b.0': 4}
    assert reasons['a.0'].startswith('__getitem__ selects a subset of channels by position')
    check_exact(HalfSplit(rule='constant'), x)


def test_split_point_that_is_not_half_of_every_pruned_width_is_frozen():
    """``C // 4 * 2`` is ``C / 2`` for ``C = 8``, but 2 for a pruned ``C = 6``."""
    x = torch.randn(2, 3, 8, 8)
    sizes, reasons = discover(HalfSplit(rule='quarter_twice'), x)
    assert sizes == {'b.0': 4}
    assert 'would keep different numbers of channels once pruned' in reasons['a.0']
    check_exact(HalfSplit(rule='quarter_twice'), x)


class OtherWidth(nn.Module):
    """The cut is half of another tensor's width: it would not follow ``x``'s pruning."""

    def __init__(self):
        super().__init__()
        self.a, self.y = conv_bn(3, 8), conv_bn(3, 8)
        self.b = conv_bn(4, 4)
        self.fuse, self.fuse_y = nn.Conv2d(8, 4, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = self.y(x)
        x = self.a(x)
        c = y.shape[1] // 2
        return self.fuse(torch.cat([x[:, :c], self.b(x[:, c:])], 1)) + self.fuse_y(y)


def test_half_of_another_tensors_width_is_frozen():
    x = torch.randn(2, 3, 8, 8)
    sizes, reasons = discover(OtherWidth(), x)
    assert 'a.0' not in sizes and 'b.0' in sizes
    assert 'size read from a tensor' in reasons['a.0']
    check_exact(OtherWidth(), x)


class TokenHalves(nn.Module):
    """Channels last, ``x[..., :c]``: the index is mapped past the Ellipsis."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 8)
        self.b = nn.Linear(4, 4)
        self.fuse = nn.Linear(8, 3)

    def forward(self, x):
        x = self.a(x).relu()
        c = x.size(-1) // 2
        return self.fuse(torch.cat([self.b(x[..., c:]), x[..., :c]], -1))


def test_channels_last_halves_are_tied():
    x = torch.randn(2, 5, 6)
    sizes, _ = discover(TokenHalves(), x)
    assert sizes == {'a': 4, 'b': 4}
    check_exact(TokenHalves(), x)


def test_real_shufflenet_v2_exports_exactly():
    """mmpretrain's ShuffleNet-V2 splits with ``c = C // 2 + C % 2`` and shuffles with
    ``view(B, 2, C // 2, H, W)``: nothing is frozen for slicing, and the export is exact."""
    from mmpretrain.models.backbones import ShuffleNetV2
    torch.manual_seed(0)
    model = ShuffleNetV2(widen_factor=0.5)
    model.eval()
    result = check_exact(model, torch.randn(1, 3, 32, 32), seeds=(0, ))
    assert not any('__getitem__' in r or 'splits a channel dim' in r for r in result['frozen'])
    assert result['num_channel_units'] >= 13  # one per branch2 per block, and more
    assert result['flops_ratio'] < 0.6


def test_real_csp_stage_exports_exactly():
    """mmpretrain's CSPStage: ``split = x.shape[1] // 2; x[:, :split], x[:, split:]``."""
    from mmpretrain.models.backbones.cspnet import CSPStage, DarknetBottleneck
    torch.manual_seed(0)
    model = CSPStage(DarknetBottleneck, 8, 16, num_blocks=2, expand_ratio=1)
    model.eval()
    x = torch.randn(1, 8, 16, 16)
    sizes, reasons = discover(model, x)
    assert sizes == {'downsample_conv.conv': 8, 'expand_conv.conv': 4,  # 8 tied pairwise
                     'blocks.0.conv1.conv': 2, 'blocks.1.conv1.conv': 2,
                     'atfer_blocks_conv.conv': 4}
    assert reasons == {'final_conv.conv': 'reaches a model output'}
    check_exact(CSPStage(DarknetBottleneck, 8, 16, num_blocks=2, expand_ratio=1).eval(), x)
