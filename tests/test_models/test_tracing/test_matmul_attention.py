"""Attention written with matmuls (``q @ k^T``, softmax, ``attn @ v``) gets head units like
``scaled_dot_product_attention``, unless something of fixed size spans the heads."""
import torch
from torch import nn

from mmdms.apis import prune_check
from mmdms.export import apply_structure
from mmdms.models import DMSMutator
from mmdms_testing import hard_flops_after_keeping_half


class MatmulAttention(nn.Module):
    """BEiT/EVA-style: fused qkv reshaped by ``num_heads``, optional relative position bias
    gathered from a table, optional RoPE-like table shared by every head."""

    def __init__(self, dim=16, heads=4, tokens=6, rel_bias=False, rope=False):
        super().__init__()
        self.num_heads = heads
        self.embed = nn.Linear(5, dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, 3)
        self.rel_table = nn.Parameter(torch.randn(7, heads)) if rel_bias else None
        if rope:
            self.register_buffer('freqs', torch.randn(tokens, dim // heads))
        else:
            self.freqs = None

    def forward(self, x):
        x = self.embed(x)
        B, N, _ = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1,
                                                                             4).unbind(0)
        if self.freqs is not None:
            q, k = q * self.freqs, k * self.freqs
        attn = (q * 0.5) @ k.transpose(-2, -1)
        if self.rel_table is not None:
            index = torch.arange(N * N) % self.rel_table.shape[0]
            bias = self.rel_table[index].view(N, N, -1).permute(2, 0, 1)
            attn = attn + bias.unsqueeze(0)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, -1))


def mutator_for(model, x):
    model.eval()
    mutator = DMSMutator()
    mutator.prepare_from_supernet(model, lambda: model(x))
    return mutator


def test_matmul_attention_gets_a_head_unit_and_exports_exactly():
    x = torch.randn(2, 6, 5)
    mutator = mutator_for(MatmulAttention(), x)
    assert [u.num_elements for u in mutator.head_units] == [4]
    for seed in (0, 1, 2):
        result = prune_check(MatmulAttention(), x, keep_ratio=0.5, seed=seed)
        assert result['num_head_units'] == 1
        assert result['max_abs_diff'] <= 1e-5 * max(1.0, result['output_scale']), result
        assert result['structure']['heads']['']['num_heads'] == 4
        assert len(result['structure']['heads']['']['kept']) == 2


def test_hard_flops_of_matmul_heads_equal_the_exported_count():
    """The two matmuls scale with the kept heads: the resource model's hard FLOPs equal
    mmengine's count of the exported model."""
    predicted, counted, _, exported = hard_flops_after_keeping_half(MatmulAttention(),
                                                                    torch.randn(1, 6, 5))
    assert exported.num_heads == 2
    assert predicted == counted


def test_relative_position_bias_of_fixed_size_keeps_the_heads():
    """A bias table with one column per head, gathered into a plain tensor, would keep all
    heads in the exported model: no head unit, and the reason is reported."""
    x = torch.randn(2, 6, 5)
    mutator = mutator_for(MatmulAttention(rel_bias=True), x)
    assert len(mutator.head_units) == 0
    assert not mutator.graph.trace.unsupported_ops
    reasons = [f.reason for f in mutator.graph.trace.frozen]
    assert any(r.startswith('attention heads whose scores are combined with a tensor of fixed '
                            'size along the heads') for r in reasons), reasons
    result = prune_check(MatmulAttention(rel_bias=True), x)
    assert result['max_abs_diff'] <= 1e-5 * max(1.0, result['output_scale'])


def test_table_shared_by_every_head_stays_whole():
    """A RoPE-like table over the per-head dims is applied alike to every head: heads are
    still pruned, the table is not sliced."""
    x = torch.randn(2, 6, 5)
    mutator = mutator_for(MatmulAttention(rope=True), x)
    assert [u.num_elements for u in mutator.head_units] == [4]
    for seed in (0, 1):
        result = prune_check(MatmulAttention(rope=True), x, seed=seed)
        assert result['max_abs_diff'] <= 1e-5 * max(1.0, result['output_scale']), result
        exported = apply_structure(MatmulAttention(rope=True).eval(), result['structure'])
        assert exported.freqs.shape == (6, 4) and exported.num_heads == 2


class GroupScaled(nn.Module):
    """A per-position scale applied to every group of a channel grid ``(g, C / g)``: its
    rows follow the positions kept in every group."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.scale = nn.Parameter(torch.randn(4, 1, 1))
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        y = self.conv(x)
        B, C, H, W = y.shape
        y = (y.view(B, 2, C // 2, H, W) * self.scale).view(B, C, H, W)
        return self.head(y)


def test_parameter_shared_by_the_groups_of_a_grid_is_sliced_per_position():
    x = torch.randn(2, 3, 4, 4)
    mutator = mutator_for(GroupScaled(), x)
    assert [u.num_elements for u in mutator.channel_units] == [4]  # 8 channels, tied in pairs
    result = prune_check(GroupScaled(), x)
    assert result['max_abs_diff'] <= 1e-5 * max(1.0, result['output_scale']), result
    exported = apply_structure(GroupScaled().eval(), result['structure'])
    assert exported.scale.shape == (2, 1, 1) and exported.conv.out_channels == 4
