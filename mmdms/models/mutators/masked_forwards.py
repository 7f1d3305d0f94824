"""Masked forwards of modules whose own statistics span channels, by class name.

The tracer accepts a reduction over channels inside such a module (instead of freezing the
channels) and the mutator installs the forward registered here: it computes the statistics
over the kept channels only, so a hard-masked supernet equals the physically pruned model.
Each forward mirrors its class's computation and signature.
"""
import torch
from torch import Tensor

from mmdms.registry import MASKED_FORWARDS
from .dms_mutator import MASK_ATTR, _hard_kept, _masked_layer_norm


def _grn(x: Tensor, gamma: Tensor, beta: Tensor, eps: float, dim: int, mask=None) -> Tensor:
    """mmpretrain's GRN along channel dim ``dim``; a soft ``mask`` weights the channel mean."""
    spatial = (1, 2) if dim == x.dim() - 1 else (2, 3)
    gx = torch.norm(x, p=2, dim=spatial, keepdim=True)
    if mask is None:
        mean = gx.mean(dim=dim, keepdim=True)
    else:
        shape = [1] * x.dim()
        shape[dim] = -1
        mean = (gx * mask.view(shape)).sum(dim, keepdim=True) / mask.sum().clamp_min(1e-6)
    nx = gx / (mean + eps)
    shape = [1] * x.dim()
    shape[dim] = -1
    return gamma.view(shape) * (x * nx) + beta.view(shape) + x


@MASKED_FORWARDS.register_module(name='GRN')
def masked_grn(self, x: Tensor, data_format: str = 'channel_first') -> Tensor:
    """ConvNeXt-V2's Global Response Normalization divides each channel's norm by the mean
    norm over channels: take that mean over the kept channels only.

    Like ``_masked_layer_norm``: hard (0/1) masks run GRN on the kept channels (pruned ones
    output 0); soft masks weight the mean by the mask.
    """
    if data_format not in ('channel_first', 'channel_last'):
        return x  # as GRN.forward does
    dim = x.dim() - 1 if data_format == 'channel_last' else 1
    m = getattr(self, MASK_ATTR)().to(x.dtype)
    kept = _hard_kept(m)
    if kept is None:
        return _grn(x, self.gamma, self.beta, self.eps, dim, m)
    if kept.numel() == m.numel():
        return _grn(x, self.gamma, self.beta, self.eps, dim)
    y = _grn(x.index_select(dim, kept), self.gamma.index_select(0, kept),
             self.beta.index_select(0, kept), self.eps, dim)
    return x.new_zeros(x.shape).index_copy(dim, kept, y)


def _channels_first_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float,
                         mask=None) -> Tensor:
    """HorNet's hand-written channels-first LayerNorm (statistics over dim 1); a soft ``mask``
    weights the mean and variance."""
    if mask is None:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
    else:
        w = (mask / mask.sum().clamp_min(1e-6)).view(1, -1, *([1] * (x.dim() - 2)))
        u = (x * w).sum(1, keepdim=True)
        s = ((x - u).pow(2) * w).sum(1, keepdim=True)
    x = (x - u) / torch.sqrt(s + eps)
    return weight[:, None, None] * x + bias[:, None, None]


@MASKED_FORWARDS.register_module(name='HorNetLayerNorm')
def masked_hornet_layer_norm(self, x: Tensor) -> Tensor:
    """HorNet's LayerNorm over the kept channels only.

    ``channels_last`` calls ``F.layer_norm`` like ``nn.LayerNorm`` (see ``_masked_layer_norm``);
    ``channels_first`` computes the mean and variance over dim 1 by hand, so the same code runs
    on the kept channels (hard masks; pruned channels output 0) or with mask-weighted
    statistics (soft masks).
    """
    if self.data_format == 'channels_last':
        return _masked_layer_norm(self, x)
    m = getattr(self, MASK_ATTR)().to(x.dtype)
    kept = _hard_kept(m)
    if kept is None:
        return _channels_first_norm(x, self.weight, self.bias, self.eps, m)
    if kept.numel() == m.numel():
        return _channels_first_norm(x, self.weight, self.bias, self.eps)
    y = _channels_first_norm(x.index_select(1, kept), self.weight.index_select(0, kept),
                             self.bias.index_select(0, kept), self.eps)
    return x.new_zeros(x.shape).index_copy(1, kept, y)
