"""Parallel kernel-size branches whose outputs are summed: the searchable op of SupNet-R."""
from typing import Optional, Sequence

import torch
from mmcv.cnn import build_activation_layer, build_conv_layer, build_norm_layer
from torch import nn

from .concrete_dropout import ConcreteDropout

# 1x1, 3x3 and a 5x5 receptive field as a dilated 3x3 (the cost of a 3x3 on CPU).
DEFAULT_BRANCHES = (
    dict(name='k1', kernel_size=1, dilation=1),
    dict(name='k3', kernel_size=3, dilation=1),
    dict(name='k3d2', kernel_size=3, dilation=2),
)


class MixedConvBranch(nn.Module):
    """One branch: gate its input channels, then convolve.

    Searchable branches gate with :class:`ConcreteDropout`. Static (exported) branches have
    no gate but an ``in_index`` buffer holding the kept input channels, so
    :func:`mmdms.export.apply_structure` can slice ``conv.weight`` (dim 1) and ``in_index``
    (dim 0) with the same kept indices; the forward then picks those channels from the
    shared input with ``index_select``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int = 1,
                 dilation: int = 1,
                 dropout_cfg: Optional[dict] = None,
                 conv_cfg: Optional[dict] = None):
        super().__init__()
        self.conv = build_conv_layer(
            conv_cfg,
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation,
            bias=False)
        if dropout_cfg is not None:
            self.dropout = ConcreteDropout(in_channels, **dropout_cfg)
        else:
            self.dropout = None
            self.register_buffer('in_index', torch.arange(in_channels))

    @property
    def searchable(self) -> bool:
        return self.dropout is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dropout is not None:
            return self.conv(self.dropout(x))
        if self.in_index.numel() != x.shape[1]:  # sorted unique indices: full length = all
            x = x.index_select(1, self.in_index)
        return self.conv(x)


class MixedConv(nn.Module):
    """``act(norm(sum_b branch_b(x)))`` over kernel-size branches (SupNet-R's mixed op).

    One norm layer after the sum: dropping a branch's input channels removes exactly their
    contribution to the sum, so a candidate is a sub-network of the same weights.

    Args:
        in_channels / out_channels / stride: as for a conv.
        branches (Sequence[dict]): ``name``, ``kernel_size``, ``dilation`` per branch.
        dropout_cfg (dict, optional): kwargs of :class:`ConcreteDropout`; ``None`` builds the
            static (exportable) form.
        conv_cfg / norm_cfg / act_cfg: mmcv layer configs; ``act_cfg=None`` for no activation.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 branches: Sequence[dict] = DEFAULT_BRANCHES,
                 dropout_cfg: Optional[dict] = None,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='ReLU')):
        super().__init__()
        if not branches:
            raise ValueError('MixedConv needs at least one branch')
        self.out_channels = out_channels
        self.stride = stride
        self.branches = nn.ModuleDict()
        for branch in branches:
            self.branches[branch['name']] = MixedConvBranch(
                in_channels,
                out_channels,
                branch['kernel_size'],
                stride=stride,
                dilation=branch.get('dilation', 1),
                dropout_cfg=dropout_cfg,
                conv_cfg=conv_cfg)
        self.norm_name, norm = build_norm_layer(norm_cfg, out_channels)
        self.add_module(self.norm_name, norm)
        self.act = build_activation_layer(act_cfg) if act_cfg is not None else None

    def prune_empty_branches(self) -> None:
        """Delete static branches left with no input channel (they would only add zeros)."""
        for name in list(self.branches.keys()):
            branch = self.branches[name]
            if not branch.searchable and branch.in_index.numel() == 0:
                del self.branches[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for branch in self.branches.values():
            y = branch(x)
            out = y if out is None else out + y
        if out is None:  # every branch was dropped: the sum is zero
            n, _, h, w = x.shape
            out = x.new_zeros(n, self.out_channels, (h - 1) // self.stride + 1,
                              (w - 1) // self.stride + 1)
        out = getattr(self, self.norm_name)(out)
        return self.act(out) if self.act is not None else out
