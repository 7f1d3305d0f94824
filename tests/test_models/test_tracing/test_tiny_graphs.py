"""Unit discovery on small graphs whose correct grouping is known by hand, and exact export."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmdms.apis import prune_check
from mmdms.models import DMSMutator


def discover(model, x):
    model.eval()
    mutator = DMSMutator()
    mutator.prepare_from_supernet(model, lambda: model(x))
    groups = {g.name: sorted(p.rsplit('.', 1)[0] for p in g.producers)
              for g in mutator.graph.groups}
    sizes = {g.name: g.num_elements for g in mutator.graph.groups}
    return mutator, groups, sizes


def check_exact(model, x, keep_ratio=0.5, seeds=(0, 1, 2)):
    for seed in seeds:
        result = prune_check(model, x, keep_ratio=keep_ratio, seed=seed)
        assert result['max_abs_diff'] <= 1e-5 * max(1.0, result['output_scale']), result
        assert result['flops_ratio'] < 1.0
    return result


def conv_bn(cin, cout, k=3, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class Residual(nn.Module):

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 8)
        self.body = nn.Sequential(conv_bn(8, 16), nn.Conv2d(16, 8, 3, padding=1))
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        return self.head(x + self.body(x))


def test_residual_add_couples_producers():
    _, groups, sizes = discover(Residual(), torch.randn(2, 3, 8, 8))
    assert groups == {'stem.0': ['body.1', 'stem.0'], 'body.0.0': ['body.0.0']}
    assert sizes == {'stem.0': 8, 'body.0.0': 16}
    check_exact(Residual(), torch.randn(2, 3, 8, 8))


class Concat(nn.Module):

    def __init__(self):
        super().__init__()
        self.a = conv_bn(3, 6)
        self.b = conv_bn(3, 10)
        self.fuse = nn.Conv2d(16, 5, 1)

    def forward(self, x):
        return self.fuse(torch.cat([self.a(x), self.b(x)], dim=1))


def test_concat_keeps_producers_separate():
    _, groups, sizes = discover(Concat(), torch.randn(1, 3, 8, 8))
    assert sizes == {'a.0': 6, 'b.0': 10}
    check_exact(Concat(), torch.randn(1, 3, 8, 8))


class SplitChunk(nn.Module):
    """C2f-like: split into equal halves whose sizes the code derives from an attribute."""

    def __init__(self):
        super().__init__()
        self.mid = 6
        self.cv1 = conv_bn(3, 12)
        self.m = conv_bn(6, 6)
        self.cv2 = nn.Conv2d(18, 4, 1)

    def forward(self, x):
        a, b = self.cv1(x).split((self.mid, self.mid), 1)
        return self.cv2(torch.cat([a, b, self.m(b)], 1))


def test_equal_split_ties_the_halves():
    _, groups, sizes = discover(SplitChunk(), torch.randn(1, 3, 8, 8))
    assert sizes == {'cv1.0': 6, 'm.0': 6}  # 12 channels tied pairwise into 6 elements


class UnequalSplit(nn.Module):

    def __init__(self):
        super().__init__()
        self.cv1 = nn.Conv2d(3, 10, 1)
        self.cv2 = nn.Conv2d(4, 2, 1)
        self.cv3 = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        a, b = self.cv1(x).split([4, 6], 1)
        return self.cv2(a) + self.cv3(b)


def test_unequal_split_is_frozen_with_reason():
    mutator, groups, _ = discover(UnequalSplit(), torch.randn(1, 3, 4, 4))
    assert 'cv1' not in groups
    reasons = {f['group']: f['reason'] for f in mutator.graph.frozen_report()}
    assert 'unequal pieces' in reasons['cv1'] and 'split' in reasons['cv1']


class Depthwise(nn.Module):

    def __init__(self):
        super().__init__()
        self.pw1 = conv_bn(3, 12, 1)
        self.dw = conv_bn(12, 12, 3, groups=12)
        self.pw2 = nn.Conv2d(12, 5, 1)

    def forward(self, x):
        return self.pw2(self.dw(self.pw1(x)))


def test_depthwise_follows_its_input():
    mutator, groups, sizes = discover(Depthwise(), torch.randn(1, 3, 8, 8))
    assert sizes == {'pw1.0': 12}
    follower = {s.name for s in mutator.graph.trace.slots if s.role == 'follower'}
    assert {'dw.0.weight', 'dw.1.weight', 'dw.1.running_mean'} <= follower
    check_exact(Depthwise(), torch.randn(1, 3, 8, 8))


class GroupConv(nn.Module):

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.g = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.b = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.b(self.g(self.a(x)))


def test_group_conv_is_frozen_with_reason():
    mutator, groups, _ = discover(GroupConv(), torch.randn(1, 3, 8, 8))
    assert groups == {}
    reasons = [f['reason'] for f in mutator.graph.frozen_report()]
    assert any('groups=2' in r for r in reasons)


class SqueezeExcite(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = conv_bn(3, 16)
        self.fc1 = nn.Conv2d(16, 4, 1)
        self.fc2 = nn.Conv2d(4, 16, 1)
        self.out = nn.Conv2d(16, 3, 1)

    def forward(self, x):
        x = self.conv(x)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return self.out(x * s)


def test_squeeze_excite_couples_scale_with_features():
    _, groups, sizes = discover(SqueezeExcite(), torch.randn(2, 3, 8, 8))
    assert groups == {'conv.0': ['conv.0', 'fc2'], 'fc1': ['fc1']}
    assert sizes == {'conv.0': 16, 'fc1': 4}
    check_exact(SqueezeExcite(), torch.randn(2, 3, 8, 8))


class FlattenLinear(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = conv_bn(3, 6)
        self.fc = nn.Linear(6 * 2 * 2, 7)
        self.cls = nn.Linear(7, 3)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.conv(x), 2).flatten(1)
        return self.cls(F.relu(self.fc(x)))


def test_flatten_maps_channels_to_feature_blocks():
    mutator, groups, sizes = discover(FlattenLinear(), torch.randn(2, 3, 8, 8))
    assert sizes == {'conv.0': 6, 'fc': 7}
    result = check_exact(FlattenLinear(), torch.randn(2, 3, 8, 8))
    fc_in = result['structure']['slots']['fc.weight']['1']
    assert fc_in['size'] == 24 and len(fc_in['kept']) == 12  # 3 channels x 4 positions
    kept = fc_in['kept']  # whole channels: 4 consecutive features starting at a multiple of 4
    for i in range(3):
        assert kept[4 * i] % 4 == 0
        assert kept[4 * i:4 * i + 4] == list(range(kept[4 * i], kept[4 * i] + 4))


class TokenMLP(nn.Module):
    """Tokens with LayerNorm, a class token, a pre-norm MLP residual."""

    def __init__(self, dim=8):
        super().__init__()
        self.embed = nn.Linear(5, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 5, dim))
        self.ln = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 16)
        self.fc2 = nn.Linear(16, dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos
        x = x + self.fc2(F.gelu(self.fc1(self.ln(x))))
        return self.head(self.norm(x)[:, 0])


def test_layer_norm_and_tokens_prune_exactly():
    mutator, groups, sizes = discover(TokenMLP(), torch.randn(2, 4, 5))
    assert sizes == {'embed': 8, 'fc1': 16}
    followers = {s.name for s in mutator.graph.trace.slots if s.role == 'follower'}
    assert {'cls_token', 'pos', 'ln.weight', 'norm.bias'} <= followers
    check_exact(TokenMLP(), torch.randn(2, 4, 5))


class Block(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.conv1 = conv_bn(c, c)
        self.conv2 = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))

    def forward(self, x):
        return F.relu(x + self.conv2(self.conv1(x)))


class Stages(nn.Module):

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 8)
        self.stage1 = nn.Sequential(Block(8), Block(8), Block(8))
        self.down = conv_bn(8, 12)
        self.stage2 = nn.Sequential(Block(12), Block(12))
        self.head = nn.Conv2d(12, 2, 1)

    def forward(self, x):
        return self.head(self.stage2(self.down(self.stage1(self.stem(x)))))


def test_nested_residual_stages_give_block_units():
    mutator, groups, sizes = discover(Stages(), torch.randn(1, 3, 8, 8))
    assert [u.blocks for u in mutator.block_units] == [
        ['stage1.0', 'stage1.1', 'stage1.2'], ['stage2.0', 'stage2.1']]
    assert sizes['stem.0'] == 8 and sizes['down.0'] == 12
    assert len(groups) == 2 + 5  # two residual streams + one inner unit per block
    result = check_exact(Stages(), torch.randn(1, 3, 8, 8))
    assert result['num_block_units'] == 2
    assert result['structure']['removed_blocks']  # some blocks really left


class NotNonNegative(nn.Module):
    """relu(x + f(x)) with x that can be negative: dropping f would change relu(x)."""

    def __init__(self):
        super().__init__()
        self.pre = nn.Conv2d(3, 4, 1)
        self.block = Block(4)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.head(self.block(self.pre(x)))


def test_block_after_relu_needs_nonnegative_input():
    mutator, _, _ = discover(NotNonNegative(), torch.randn(1, 3, 4, 4))
    assert len(mutator.block_units) == 0


class ChannelSlice(nn.Module):

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.b = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.b(self.a(x)[:, :4])


def test_channel_slice_by_position_is_frozen():
    mutator, groups, _ = discover(ChannelSlice(), torch.randn(1, 3, 4, 4))
    assert groups == {}
    assert 'selects a subset of channels' in mutator.graph.frozen_report()[0]['reason']


class UnknownOp(nn.Module):

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.b = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.b(torch.fft.fft(self.a(x)).real)


def test_unsupported_op_freezes_and_reports_module_path():
    mutator, groups, _ = discover(UnknownOp(), torch.randn(1, 3, 4, 4))
    assert 'a' not in groups
    report = mutator.graph.frozen_report()
    assert any("unsupported op 'fft_fft'" in f['reason'] and '<top level>' in f['reason']
               for f in report)


@pytest.mark.parametrize('model_cls', [Residual, Concat, SplitChunk, Depthwise, SqueezeExcite,
                                       TokenMLP, Stages])
def test_soft_mask_gradients_reach_every_ratio(model_cls):
    model = model_cls().eval()
    x = torch.randn(2, 3, 8, 8) if model_cls is not TokenMLP else torch.randn(2, 4, 5)
    mutator = DMSMutator()
    mutator.prepare_from_supernet(model, lambda: model(x))
    for unit in mutator.units:  # leave the cold start so the soft mask has a gradient
        unit.tracker.importance.copy_(torch.rand(unit.num_elements))
        unit.ratio.data.fill_(0.3)
    model(x).pow(2).mean().backward()
    for unit in mutator.units:
        assert unit.ratio.grad is not None and unit.ratio.grad.abs() > 0, unit
    mutator.update_importance()
    assert all(int(u.tracker.num_updates) == 1 for u in mutator.units)


class KwargBlock(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))

    def forward(self, x, scale=1.0):
        return x + self.conv(x * scale)


class KwargStages(nn.Module):
    """Blocks in a ModuleList called with an extra keyword (as Conformer does)."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 8)
        self.blocks = nn.ModuleList([KwargBlock(8), KwargBlock(8)])
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x, scale=0.5)
        return self.head(x)


def test_removed_block_accepts_the_callers_arguments():
    result = check_exact(KwargStages(), torch.randn(1, 3, 8, 8), keep_ratio=0.5, seeds=(0, 1))
    assert result['num_block_units'] == 1


class PaddedDepthwise(nn.Module):
    """EfficientNet-style 'same' padding before a depthwise conv."""

    def __init__(self):
        super().__init__()
        self.pw = conv_bn(3, 8, 1)
        self.dw = nn.Conv2d(8, 8, 3, groups=8)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.out(self.dw(F.pad(self.pw(x), (1, 1, 1, 1))))


def test_spatial_padding_keeps_channels_prunable():
    _, groups, sizes = discover(PaddedDepthwise(), torch.randn(1, 3, 8, 8))
    assert sizes == {'pw.0': 8}
    check_exact(PaddedDepthwise(), torch.randn(1, 3, 8, 8))


class SharedHead(nn.Module):

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.b = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.head(self.a(x)), self.head(self.b(x))


def test_module_shared_by_two_sites_masks_once_and_unhooks():
    mutator, groups, sizes = discover(SharedHead(), torch.randn(1, 3, 4, 4))
    assert sizes == {'a': 8}  # the shared weight ties both inputs into one unit
    check_exact(SharedHead(), torch.randn(1, 3, 4, 4))
    mutator.remove_hooks()
    mutator.remove_hooks()  # idempotent


class LayerNormWithFormat(nn.LayerNorm):

    def forward(self, x, data_format='channel_last'):
        return super().forward(x)


class CustomNormNet(nn.Module):

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.norm = LayerNormWithFormat(8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc2(self.norm(self.fc1(x), data_format='channel_last'))


def test_layer_norm_subclass_with_own_forward_is_frozen_not_broken():
    mutator, groups, _ = discover(CustomNormNet(), torch.randn(2, 4))
    assert groups == {}
    assert any('overrides LayerNorm.forward' in f['reason']
               for f in mutator.graph.frozen_report())
