"""One-group GroupNorm (PoolFormer's norm over C, H, W) is prunable: masked statistics cover
the kept channels only, and the export equals the masked model."""
import copy
import types

import torch
import torch.nn.functional as F
from torch import nn

from mmdms.apis import prune_check
from mmdms.export import apply_structure
from mmdms.models.mutators.dms_mutator import MASK_ATTR, _masked_group_norm


def make(mask, channels=6):
    gn = nn.GroupNorm(1, channels)
    with torch.no_grad():
        gn.weight.copy_(torch.linspace(0.5, 1.5, channels))
        gn.bias.copy_(torch.linspace(-0.2, 0.3, channels))
    gn.__dict__[MASK_ATTR] = lambda: mask
    gn.forward = types.MethodType(_masked_group_norm, gn)
    return gn


def test_hard_mask_equals_group_norm_of_kept_channels():
    x = torch.randn(2, 6, 5, 5)
    mask = torch.tensor([1., 0., 1., 1., 0., 1.])
    gn = make(mask)
    kept = torch.tensor([0, 2, 3, 5])
    expected = F.group_norm(x[:, kept], 1, gn.weight[kept], gn.bias[kept], gn.eps)
    out = gn(x)
    torch.testing.assert_close(out[:, kept], expected, atol=1e-6, rtol=1e-5)
    assert (out[:, [1, 4]] == 0).all()


def test_soft_mask_weights_the_statistics():
    x = torch.randn(3, 6, 4, 4, dtype=torch.float64)
    mask = torch.tensor([1.0, 0.2, 0.7, 1.0, 0.5, 0.9], dtype=torch.float64, requires_grad=True)
    gn = make(mask).double()
    out = gn(x)
    w = (mask / (mask.sum() * 16)).view(1, -1, 1, 1)
    mean = (x * w).sum((1, 2, 3), keepdim=True)
    var = ((x - mean).pow(2) * w).sum((1, 2, 3), keepdim=True)
    expected = (x - mean) / torch.sqrt(var + gn.eps) * gn.weight.view(1, -1, 1, 1) + \
        gn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(out, expected, atol=1e-8, rtol=1e-8)
    out.sum().backward()
    assert mask.grad is not None and mask.grad.abs().sum() > 0


class PoolFormerLike(nn.Module):
    """conv stem -> x + mix(GN(x)) -> x + mlp(GN(x)) -> head, as in PoolFormer blocks."""

    def __init__(self, c=16):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.norm1 = nn.GroupNorm(1, c)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.norm2 = nn.GroupNorm(1, c)
        self.fc1 = nn.Conv2d(c, 2 * c, 1)
        self.fc2 = nn.Conv2d(2 * c, c, 1)
        self.head = nn.Linear(c, 10)

    def forward(self, x):
        x = self.stem(x)
        y = self.norm1(x)
        x = x + (self.pool(y) - y)
        x = x + self.fc2(F.gelu(self.fc1(self.norm2(x))))
        return self.head(x.mean((2, 3)))


def test_poolformer_like_block_prunes_exactly():
    torch.manual_seed(0)
    model = PoolFormerLike().eval()
    result = prune_check(model, torch.randn(2, 3, 8, 8), keep_ratio=0.5)
    assert not any('group_norm' in reason for reason in result['frozen']), result['frozen']
    assert result['num_channel_units'] >= 2  # the residual stream and the MLP hidden width
    assert result['max_abs_diff'] <= 1e-5
    assert result['flops_ratio'] < 0.6
    pruned = apply_structure(copy.deepcopy(model), result['structure'])
    assert pruned.norm1.num_groups == 1 and pruned.norm1.num_channels < 16
    assert pruned.norm1.num_channels == pruned.stem.out_channels == pruned.norm2.num_channels
