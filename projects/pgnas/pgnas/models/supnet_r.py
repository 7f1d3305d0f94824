"""SupNet-R: a CIFAR ResNet whose 3x3 convs are multi-branch :class:`MixedConv` ops."""
import copy
from typing import Optional, Sequence

from mmcv.cnn import ConvModule, build_activation_layer
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from torch import nn

from mmdms.export import apply_structure

from ..registry import MODELS
from .mixed_conv import DEFAULT_BRANCHES, MixedConv


class MixedBasicBlock(nn.Module):
    """ResNet basic block with both 3x3 convs replaced by mixed ops."""

    def __init__(self, in_channels, out_channels, stride, branches, dropout_cfg, conv_cfg,
                 norm_cfg, act_cfg):
        super().__init__()
        common = dict(branches=branches, dropout_cfg=dropout_cfg, conv_cfg=conv_cfg,
                      norm_cfg=norm_cfg)
        self.conv1 = MixedConv(in_channels, out_channels, stride, act_cfg=act_cfg, **common)
        self.conv2 = MixedConv(out_channels, out_channels, 1, act_cfg=None, **common)
        if stride != 1 or in_channels != out_channels:
            self.downsample = ConvModule(
                in_channels, out_channels, 1, stride=stride, bias=False, conv_cfg=conv_cfg,
                norm_cfg=norm_cfg, act_cfg=None)
        else:
            self.downsample = None
        self.act = build_activation_layer(act_cfg)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return self.act(self.conv2(self.conv1(x)) + identity)


@MODELS.register_module()
class SupNetR(BaseBackbone):
    """The PGNAS supernet for CIFAR (SupNet-R, small).

    A 3x3 stem, then ``len(stage_channels)`` stages of :class:`MixedBasicBlock`; the first
    block of every stage after the first halves the resolution. Every mixed op has one
    concrete-dropout unit per branch, gating that branch's input channels.

    Args:
        stage_channels (Sequence[int]): widths of the stages. Defaults to (16, 32, 64).
        stage_blocks (Sequence[int]): blocks per stage. Defaults to (2, 2, 2).
        stem_channels (int): stem width. Defaults to 16.
        branches (Sequence[dict]): branch specs of every mixed op (see
            :data:`DEFAULT_BRANCHES`).
        dropout_cfg (dict): kwargs of :class:`ConcreteDropout`.
        structure (dict, optional): an mmdms pruning structure (kept input channels per
            branch). Given one, the backbone is built *static* (no dropout units), sliced to
            the structure and stripped of empty branches: the exported form of a candidate.
        static (bool): build the static form without slicing (used by the exporter).
        conv_cfg / norm_cfg / act_cfg: mmcv layer configs.
    """

    def __init__(self,
                 stage_channels: Sequence[int] = (16, 32, 64),
                 stage_blocks: Sequence[int] = (2, 2, 2),
                 stem_channels: int = 16,
                 branches: Sequence[dict] = DEFAULT_BRANCHES,
                 dropout_cfg: dict = dict(
                     init_drop_rate=0.1, temperature=0.2, learnable=True, eval_mode='mean'),
                 structure: Optional[dict] = None,
                 static: bool = False,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if len(stage_channels) != len(stage_blocks):
            raise ValueError('stage_channels and stage_blocks must have the same length, got '
                             f'{len(stage_channels)} and {len(stage_blocks)}')
        static = static or structure is not None
        gate_cfg = None if static else copy.deepcopy(dict(dropout_cfg))
        self.stem = ConvModule(3, stem_channels, 3, padding=1, bias=False, conv_cfg=conv_cfg,
                               norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.stage_names = []
        in_channels = stem_channels
        for i, (channels, num_blocks) in enumerate(zip(stage_channels, stage_blocks)):
            blocks = []
            for j in range(num_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(
                    MixedBasicBlock(in_channels, channels, stride, branches, gate_cfg,
                                    conv_cfg, norm_cfg, act_cfg))
                in_channels = channels
            name = f'layer{i + 1}'
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
        if structure is not None:
            self.apply_structure(structure)

    def apply_structure(self, structure: dict) -> None:
        """Slice the static backbone to ``structure`` in place and drop empty branches."""
        if any(isinstance(m, MixedConv) and any(b.searchable for b in m.branches.values())
               for m in self.modules()):
            raise RuntimeError('apply_structure needs the static backbone (static=True): '
                               'the searchable one gates channels instead of removing them')
        apply_structure(self, structure)
        for module in self.modules():
            if isinstance(module, MixedConv):
                module.prune_empty_branches()

    def forward(self, x):
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return (x, )
