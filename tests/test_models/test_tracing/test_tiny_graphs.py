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
    """C2f-like: split into two equal halves."""

    def __init__(self):
        super().__init__()
        self.mid = 6
        self.cv1 = conv_bn(3, 12)
        self.m = conv_bn(6, 6)
        self.cv2 = nn.Conv2d(18, 4, 1)

    def forward(self, x):
        a, b = self.cv1(x).chunk(2, 1)
        return self.cv2(torch.cat([a, b, self.m(b)], 1))


def test_equal_split_ties_the_halves():
    _, groups, sizes = discover(SplitChunk(), torch.randn(1, 3, 8, 8))
    assert sizes == {'cv1.0': 6, 'm.0': 6}  # 12 channels tied pairwise into 6 elements
    check_exact(SplitChunk(), torch.randn(1, 3, 8, 8))


class ConstantSplit(SplitChunk):
    """``split((self.mid, self.mid))``: the exported model would still split 6 + 6."""

    def forward(self, x):
        a, b = self.cv1(x).split((self.mid, self.mid), 1)
        return self.cv2(torch.cat([a, b, self.m(b)], 1))


class AdaptedSplit(ConstantSplit):
    """The same, with an export adapter that keeps ``mid`` in step (like mmyolo's C2f)."""


def test_constant_split_sizes_freeze_unless_an_adapter_updates_them():
    mutator, _, sizes = discover(ConstantSplit(), torch.randn(1, 3, 8, 8))
    assert sizes == {'m.0': 6}
    reasons = {f['group']: f['reason'] for f in mutator.graph.frozen_report()}
    assert 'split gives a channel dim the constant size 6' in reasons['cv1.0']
    assert 'register an adapter for ConstantSplit' in reasons['cv1.0']
    check_exact(ConstantSplit(), torch.randn(1, 3, 8, 8))

    from mmdms.registry import PRUNING_ADAPTERS

    def adapter(module):
        module.mid = module.cv1[0].out_channels // 2

    PRUNING_ADAPTERS.register_module(name='AdaptedSplit', module=adapter, force=True)
    try:
        _, _, sizes = discover(AdaptedSplit(), torch.randn(1, 3, 8, 8))
        assert sizes == {'cv1.0': 6, 'm.0': 6}
        check_exact(AdaptedSplit(), torch.randn(1, 3, 8, 8))
    finally:
        PRUNING_ADAPTERS.module_dict.pop('AdaptedSplit')


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


def test_group_conv_prunes_the_same_positions_in_every_group():
    """Position j of each of the 2 groups is one element: 4 elements in and 4 out."""
    mutator, groups, sizes = discover(GroupConv(), torch.randn(1, 3, 8, 8))
    assert groups == {'a': ['a'], 'g': ['g']}
    assert sizes == {'a': 4, 'g': 4}
    result = check_exact(GroupConv(), torch.randn(1, 3, 8, 8))
    kept = result['structure']['slots']['g.weight']
    assert len(kept['0']['kept']) == 4 and len(kept['1']['kept']) == 2  # 2 of 4 per group
    out_kept = kept['0']['kept']
    assert [k - 4 for k in out_kept if k >= 4] == [k for k in out_kept if k < 4]


class GroupConvMultiplier(nn.Module):
    """One input channel per group, two outputs: pruning per group is not possible."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.g = nn.Conv2d(8, 16, 3, padding=1, groups=8)
        self.b = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        return self.b(self.g(self.a(x)))


def test_group_conv_with_one_input_per_group_is_frozen_with_reason():
    mutator, groups, _ = discover(GroupConvMultiplier(), torch.randn(1, 3, 8, 8))
    assert groups == {}
    reasons = [f['reason'] for f in mutator.graph.frozen_report()]
    assert any('groups=8' in r for r in reasons)


class GroupNormTower(nn.Module):
    """FCOS/ATSS head tower: conv -> GN(4) -> ReLU; GN(1) as in PoolFormer."""

    def __init__(self, gn1_groups=4):
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.gn = nn.GroupNorm(4, 16)
        self.b = nn.Conv2d(16, 8, 3, padding=1)
        self.gn1 = nn.GroupNorm(gn1_groups, 8)
        self.c = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.c(F.relu(self.gn1(self.b(F.relu(self.gn(self.a(x)))))))


def test_group_norm_prunes_whole_groups():
    x = torch.randn(2, 3, 6, 6)
    mutator, groups, sizes = discover(GroupNormTower(), x)
    assert sizes == {'a': 4, 'b': 4}  # one element per group
    result = check_exact(GroupNormTower(), x)
    from mmdms.export import apply_structure
    exported = apply_structure(GroupNormTower(), result['structure'])
    assert (exported.gn.num_groups, exported.gn.num_channels) == (2, 8)


def test_group_norm_with_one_group_masks_its_statistics():
    x = torch.randn(2, 3, 6, 6)
    mutator, groups, sizes = discover(GroupNormTower(gn1_groups=1), x)
    assert sizes == {'a': 4, 'b': 8}  # one group: every channel is its own element
    result = check_exact(GroupNormTower(gn1_groups=1), x)
    from mmdms.export import apply_structure
    exported = apply_structure(GroupNormTower(gn1_groups=1), result['structure'])
    assert exported.gn1.num_groups == 1 and exported.gn1.num_channels == exported.b.out_channels


def test_group_norm_without_affine_is_frozen_with_reason():
    model = GroupNormTower(gn1_groups=1)
    model.gn1 = nn.GroupNorm(1, 8, affine=False)
    mutator, groups, sizes = discover(model, torch.randn(2, 3, 6, 6))
    assert sizes == {'a': 4}
    reasons = {f['group']: f['reason'] for f in mutator.graph.frozen_report()}
    assert 'group_norm (num_groups=1) normalises across all channels' in reasons['b']


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
    torch.manual_seed(0)  # random importances can saturate a small unit's soft mask
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


def test_layer_norm_subclass_with_own_forward_is_masked():
    """A subclass forward that only calls layer_norm (with extra arguments) is masked."""
    mutator, groups, _ = discover(CustomNormNet(), torch.randn(2, 4))
    assert groups == {'fc1': ['fc1']}
    assert [s.dim for s in mutator.graph.trace.consumers if s.module == 'norm'] == [1]
    check_exact(CustomNormNet(), torch.randn(2, 4))


class SizeReadAttention(nn.Module):
    """Swin/Twins/XCiT-style attention: the head size is computed from ``x.shape``."""

    def __init__(self, dim=8, heads=2):
        super().__init__()
        self.num_heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * 0.5).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class SizeReadBlock(nn.Module):

    def __init__(self, dim=8):
        super().__init__()
        self.embed = nn.Linear(5, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SizeReadAttention(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 16), nn.GELU(), nn.Linear(16, dim))
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.embed(x)
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return self.head(x)


def test_size_read_from_a_tensor_freezes_the_channels_it_counts():
    """``C // num_heads`` with ``C = x.shape[-1]``: pruning the embedding would make the
    exported model compute another head size, so the embedding is frozen (with the reason),
    while the MLP's hidden width stays prunable and the export stays exact."""
    x = torch.randn(2, 4, 5)
    mutator, groups, sizes = discover(SizeReadBlock(), x)
    assert sizes == {'mlp.0': 16}
    reasons = {f['group']: f['reason'] for f in mutator.graph.frozen_report()}
    assert reasons['embed'].startswith(
        "reshape sizes a dim by a size read from a tensor (x.shape/size() read in 'attn'), but "
        'the two dims would keep different numbers of channels once pruned')
    check_exact(SizeReadBlock(), x)


class SizeReadIdentity(nn.Module):
    """``B, C, H, W = x.shape`` reshaping ``x`` itself keeps the same channels: prunable."""

    def __init__(self):
        super().__init__()
        self.conv = conv_bn(3, 8)
        self.norm = nn.LayerNorm(8)
        self.out = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.conv(x)
        B, C, H, W = x.shape
        tokens = self.norm(x.view(B, C, H * W).transpose(1, 2))
        y = x.new_zeros(B, C, H, W)
        y[:, :C] = tokens.transpose(1, 2).reshape(B, C, H, W)
        return self.out(y)


def test_size_read_that_sizes_the_same_channels_stays_prunable():
    x = torch.randn(2, 3, 4, 4)
    mutator, groups, sizes = discover(SizeReadIdentity(), x)
    assert sizes == {'conv.0': 8}
    check_exact(SizeReadIdentity(), x)


class SizeReadScale(nn.Module):
    """A scale computed from a channel count (``C ** -0.5``) changes with pruning."""

    def __init__(self):
        super().__init__()
        self.conv = conv_bn(3, 8)
        self.out = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.conv(x)
        return self.out(x * x.shape[1]**-0.5)


def test_size_read_used_as_a_scale_freezes():
    mutator, groups, sizes = discover(SizeReadScale(), torch.randn(1, 3, 4, 4))
    assert sizes == {}
    reasons = {f['group']: f['reason'] for f in mutator.graph.frozen_report()}
    assert reasons['conv.0'].startswith('mul takes a size read from a tensor')


class MixerBlock(nn.Module):
    """MLP-Mixer: a token-mixing MLP over the token dim of ``(B, C, T)``, then a channel MLP."""

    def __init__(self, tokens=6, dim=8):
        super().__init__()
        self.embed = nn.Linear(5, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.token_mix = nn.Sequential(nn.Linear(tokens, 12), nn.GELU(), nn.Linear(12, tokens))
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mix = nn.Sequential(nn.Linear(dim, 16), nn.GELU(), nn.Linear(16, dim))
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.embed(x)
        x = x + self.token_mix(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        x = x + self.channel_mix(self.norm2(x))
        return self.head(x)


def test_token_mixing_linear_passes_channels_through():
    """The token-mixing linear sees channels as positions: it must neither merge them into
    one element nor freeze them; its own width (tokens) is frozen with the reason."""
    x = torch.randn(2, 6, 5)
    mutator, groups, sizes = discover(MixerBlock(), x)
    assert sizes == {'embed': 8, 'channel_mix.0': 16}
    reasons = {f['group']: f['reason'] for f in mutator.graph.frozen_report()}
    assert reasons['token_mix.0'].startswith('linear over token positions (token mixing)')
    result = check_exact(MixerBlock(), x)
    assert result['flops_ratio'] < 0.6


class _InvisibleOp(torch.autograd.Function):
    """Stands in for an mmcv C++ op: fills a ``new_zeros`` buffer outside torch functions
    (global average pooling, optionally with the channel order reversed)."""

    @staticmethod
    def forward(ctx, x, reverse):
        out = x.new_zeros(x.size(0), x.size(1), 1, 1)
        pooled = x.detach().numpy().mean(axis=(2, 3), keepdims=True)
        out.numpy()[...] = pooled[:, ::-1] if reverse else pooled
        return out


class RoIAlign(nn.Module):
    """Same class name as mmcv's RoIAlign: known to act on each channel separately."""
    reverse = False

    def forward(self, x):
        return _InvisibleOp.apply(x, self.reverse)


class OpaqueExtension(RoIAlign):
    reverse = True


class ExtensionNet(nn.Module):
    """``feats -> extension op -> [buffer of out_channels] -> linear``, like mmdet's
    SingleRoIExtractor (its buffer has ``out_channels`` channels when given)."""

    def __init__(self, op, out_channels=None):
        super().__init__()
        self.a = nn.Sequential(conv_bn(3, 6), conv_bn(6, 8))
        self.op = op
        self.out_channels = out_channels
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        feats = self.op(self.a(x))
        if self.out_channels is not None:
            buffer = feats.new_zeros(feats.size(0), self.out_channels, 1, 1)
            buffer[:] = feats
            feats = buffer
        return self.fc(feats.flatten(1))


def test_known_channelwise_extension_op_passes_channels_through():
    x = torch.randn(2, 3, 6, 6)
    _, groups, sizes = discover(ExtensionNet(RoIAlign()), x)
    assert sizes == {'a.0.0': 6, 'a.1.0': 8}
    check_exact(ExtensionNet(RoIAlign()), x)


def test_unknown_extension_op_freezes_its_input_with_reason():
    x = torch.randn(2, 3, 6, 6)
    mutator, groups, sizes = discover(ExtensionNet(OpaqueExtension()), x)
    assert sizes == {'a.0.0': 6}
    reasons = {f['group']: f['reason'] for f in mutator.graph.frozen_report()}
    assert reasons['a.1.0'].startswith('OpaqueExtension computes its output outside torch '
                                     "functions (a C++/CUDA extension the tracer cannot see "
                                     "into) (OpaqueExtension in 'op')")
    check_exact(ExtensionNet(OpaqueExtension()), x)


def test_channels_written_into_a_fixed_size_buffer_are_frozen():
    """mmdet's RoI extractor allocates ``out_channels`` (an attribute) channels and fills
    them with ``__setitem__``: the channels written there cannot be pruned."""
    x = torch.randn(2, 3, 6, 6)
    mutator, groups, sizes = discover(ExtensionNet(RoIAlign(), out_channels=8), x)
    assert sizes == {'a.0.0': 6}
    reasons = {f['group']: f['reason'] for f in mutator.graph.frozen_report()}
    assert 'written by __setitem__ where the target holds no channels' in reasons['a.1.0']
    check_exact(ExtensionNet(RoIAlign(), out_channels=8), x)


def channel_shuffle(x, groups):
    """ShuffleNet's channel shuffle, sizes read from ``x``."""
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous()
    return x.view(b, -1, h, w)


class ChannelShuffle(nn.Module):

    def __init__(self, per_group=None):
        super().__init__()
        self.per_group = per_group
        self.a = conv_bn(3, 8)
        self.b = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.a(x)
        if self.per_group is None:
            return self.b(channel_shuffle(x, 2))
        b, _, h, w = x.shape
        return self.b(x.view(b, 2, self.per_group, h, w).transpose(1, 2).reshape(b, -1, h, w))


def test_channel_shuffle_prunes_the_same_positions_in_every_group():
    """``view(B, g, C // g, H, W)``: position j of both groups is one element, so the
    exported model computes ``C' // g`` consistently."""
    x = torch.randn(2, 3, 4, 4)
    _, groups, sizes = discover(ChannelShuffle(), x)
    assert sizes == {'a.0': 4}
    result = check_exact(ChannelShuffle(), x)
    kept = result['structure']['slots']['a.0.weight']['0']['kept']
    assert [k - 4 for k in kept if k >= 4] == [k for k in kept if k < 4]


def test_channel_shuffle_with_a_constant_group_size_is_frozen():
    x = torch.randn(2, 3, 4, 4)
    mutator, groups, sizes = discover(ChannelShuffle(per_group=4), x)
    assert sizes == {}
    reasons = {f['group']: f['reason'] for f in mutator.graph.frozen_report()}
    assert reasons['a.0'].startswith('view gives a channel dim the constant size 4')


class TransposeProperty(nn.Module):
    """``x.mT`` and ``x.data`` are views: the channels follow."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(5, 8)
        self.b = nn.Linear(8, 3)

    def forward(self, x):
        y = self.a(x).mT.data  # (B, 8, N)
        return self.b(y.mT)


def test_view_properties_keep_channels():
    x = torch.randn(2, 4, 5)
    _, groups, sizes = discover(TransposeProperty(), x)
    assert sizes == {'a': 8}
    check_exact(TransposeProperty(), x)


class HeadAttention(nn.Module):
    """Separate q/k/v linears and ``scaled_dot_product_attention``; the head size is
    ``-1`` (follows the pruned heads) or ``C // num_heads`` from ``x.shape`` (does not)."""

    def __init__(self, size_from_shape, dim=8, heads=4):
        super().__init__()
        self.size_from_shape = size_from_shape
        self.num_heads = heads
        self.embed = nn.Linear(5, dim)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.embed(x)
        B, N, C = x.shape
        head = C // self.num_heads if self.size_from_shape else -1
        q, k, v = (f(x).reshape(B, N, self.num_heads, head).transpose(1, 2)
                   for f in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, -1)
        return self.proj(out)


def test_heads_sized_by_num_heads_stay_prunable():
    x = torch.randn(2, 6, 5)
    mutator, _, sizes = discover(HeadAttention(size_from_shape=False), x)
    assert len(mutator.head_units) == 1 and mutator.head_units[0].num_elements == 4
    check_exact(HeadAttention(size_from_shape=False), x)


def test_head_size_read_from_a_tensor_drops_the_head_unit():
    """``C // num_heads``: removing a head would change ``num_heads`` but not ``C``."""
    x = torch.randn(2, 6, 5)
    mutator, _, sizes = discover(HeadAttention(size_from_shape=True), x)
    assert len(mutator.head_units) == 0
    reasons = [f.reason for f in mutator.graph.trace.frozen]
    assert any(r.startswith("heads of '' are not pruned: a reshape gives their channels")
               for r in reasons), reasons
    result = prune_check(HeadAttention(size_from_shape=True), x)  # nothing left to prune
    assert result['max_abs_diff'] == 0.0 and result['flops_ratio'] == 1.0
