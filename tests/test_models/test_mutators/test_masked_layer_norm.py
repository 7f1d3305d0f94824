import types

import torch
import torch.nn.functional as F
from torch import nn

from mmdms.models.mutators.dms_mutator import MASK_ATTR, _masked_layer_norm


def make(mask):
    ln = nn.LayerNorm(6)
    with torch.no_grad():
        ln.weight.copy_(torch.linspace(0.5, 1.5, 6))
        ln.bias.copy_(torch.linspace(-0.2, 0.3, 6))
    ln.__dict__[MASK_ATTR] = lambda: mask
    ln.forward = types.MethodType(_masked_layer_norm, ln)
    return ln


def test_hard_mask_equals_layer_norm_of_kept_channels():
    x = torch.randn(2, 3, 6)
    mask = torch.tensor([1., 0., 1., 1., 0., 1.])
    ln = make(mask)
    kept = torch.tensor([0, 2, 3, 5])
    expected = F.layer_norm(x[..., kept], (4, ), ln.weight[kept], ln.bias[kept], ln.eps)
    out = ln(x)
    assert torch.allclose(out[..., kept], expected, atol=1e-6)
    assert (out[..., [1, 4]] == 0).all()


def test_soft_mask_weights_the_statistics():
    x = torch.randn(4, 6, dtype=torch.float64)
    mask = torch.tensor([1.0, 0.2, 0.7, 1.0, 0.5, 0.9], dtype=torch.float64, requires_grad=True)
    ln = make(mask).double()
    out = ln(x)
    w = mask / mask.sum()
    mean = (x * w).sum(-1, keepdim=True)
    var = ((x - mean).pow(2) * w).sum(-1, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias
    assert torch.allclose(out, expected, atol=1e-8)
    out.sum().backward()
    assert mask.grad is not None and mask.grad.abs().sum() > 0
    ones = make(torch.ones(6, dtype=torch.float64, requires_grad=True)).double()
    native = F.layer_norm(x, (6, ), ones.weight, ones.bias, ones.eps)
    assert torch.allclose(ones(x), native, atol=1e-8)
