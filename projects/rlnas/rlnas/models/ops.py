"""Candidate operations of a single-path search space.

Every op takes ``(in_channels, out_channels, stride)`` plus its own options and answers
``angle_tensors()``: the tensors that stand for it in the angle metric's weight vector
V(a, W). Weighted ops give their conv/linear weights; weight-free ops give the fixed tensor of the
linear map they compute (identity -> identity matrix, average pooling -> constant 1/K^2), and
'none' gives nothing, which drops the path (ABS, Hu et al. 2020; RLNAS, Zhang et al. 2021).
"""
from typing import List

import torch
from torch import nn

from ..registry import MODELS


class ConvBNAct(nn.Sequential):
    """conv (no bias) + BN + optional ReLU: the building brick of MobileNet-style spaces."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 stride: int = 1, groups: int = 1, act: bool = True):
        layers = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_channels)
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def weight_tensors(module: nn.Module) -> List[torch.Tensor]:
    """Weights of every conv and linear layer in ``module`` (module order; BN excluded)."""
    return [m.weight for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


class CandidateOp(nn.Module):
    """Base class: records the shape contract and gives weights to the angle metric."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f'stride must be 1 or 2, got {stride}')
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def angle_tensors(self) -> List[torch.Tensor]:
        return weight_tensors(self)


@MODELS.register_module()
class InvertedResidual(CandidateOp):
    """MobileNetV2 block: 1x1 expand + BN + ReLU, kxk depthwise (stride) + BN + ReLU, 1x1 project +
    BN; shortcut when stride 1 and channels unchanged (NAS-Bench-Macro's definition)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 expand_ratio: int = 6, kernel_size: int = 3):
        super().__init__(in_channels, out_channels, stride)
        mid = in_channels * expand_ratio
        self.use_shortcut = stride == 1 and in_channels == out_channels
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, mid, 1))
        layers += [
            ConvBNAct(mid, mid, kernel_size, stride, groups=mid),
            ConvBNAct(mid, out_channels, 1, act=False)
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        out = self.conv(x)
        return x + out if self.use_shortcut else out


@MODELS.register_module()
class IdentityOp(CandidateOp):
    """Skip the layer. Where the shape changes (stride 2 or new width) it becomes a 1x1 conv + BN
    with that stride, as in NAS-Bench-Macro; that projection is weighted and trains."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__(in_channels, out_channels, stride)
        self.is_identity = stride == 1 and in_channels == out_channels
        self.proj = None if self.is_identity else ConvBNAct(
            in_channels, out_channels, 1, stride, act=False)

    def forward(self, x):
        return x if self.is_identity else self.proj(x)

    def angle_tensors(self) -> List[torch.Tensor]:
        if self.is_identity:  # the identity map as a 1x1 conv kernel: I_C
            eye = torch.eye(self.in_channels)
            return [eye.view(self.in_channels, self.in_channels, 1, 1)]
        return weight_tensors(self)


@MODELS.register_module()
class PoolOp(CandidateOp):
    """kxk average or max pooling; needs in_channels == out_channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 kind: str = 'avg', kernel_size: int = 3):
        super().__init__(in_channels, out_channels, stride)
        if in_channels != out_channels:
            raise ValueError(f'PoolOp cannot change channels ({in_channels} -> {out_channels})')
        if kind not in ('avg', 'max'):
            raise ValueError(f"kind must be 'avg' or 'max', got {kind!r}")
        self.kernel_size = kernel_size
        pool = nn.AvgPool2d if kind == 'avg' else nn.MaxPool2d
        kwargs = dict(count_include_pad=False) if kind == 'avg' else {}
        self.pool = pool(kernel_size, stride, kernel_size // 2, **kwargs)

    def forward(self, x):
        return self.pool(x)

    def angle_tensors(self) -> List[torch.Tensor]:
        k = self.kernel_size  # per-channel constant kernel 1/K^2 (ABS's convention, max pool too)
        return [torch.full((self.in_channels, 1, k, k), 1.0 / k**2)]


@MODELS.register_module()
class ZeroOp(CandidateOp):
    """'none': outputs zeros of the right shape; contributes nothing to V (the path is dropped)."""

    def forward(self, x):
        out = x[:, :1, ::self.stride, ::self.stride] * 0.
        return out.expand(-1, self.out_channels, -1, -1).contiguous()

    def angle_tensors(self) -> List[torch.Tensor]:
        return []
