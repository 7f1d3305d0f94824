"""A single-path one-shot supernet for any chain-structured space given as per-layer choices."""
import copy
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.model import BaseModule
from torch import nn

from ..registry import MODELS
from .arch import Arch, ArchLike, arch_to_str, parse_arch
from .ops import ConvBNAct, weight_tensors


def _scoped(cfg: dict) -> dict:
    """Prefix our scope so a config's default_scope (e.g. mmpretrain) cannot shadow our ops."""
    cfg = copy.deepcopy(cfg)
    if '.' not in cfg['type']:
        cfg['type'] = 'rlnas.' + cfg['type']
    return cfg


@MODELS.register_module()
class SinglePathSupernet(BaseModule):
    """stem -> searchable layers (one op chosen per layer) -> 1x1 head conv -> global pool.

    Every layer holds its candidate ops in a ``ModuleDict`` keyed by choice name, so a subnet
    built with ``fixed_arch`` (only the chosen op per layer) has exactly the supernet's parameter
    names for that path: exporting is filtering the state dict.

    Args:
        layers: one dict per searchable layer: ``out_channels``, ``stride`` (default 1) and
            ``choices`` (names of ``candidate_ops``). Input channels chain from the previous layer.
        candidate_ops: choice name -> op config; the op also receives in/out channels and stride.
        stem: ``out_channels``, ``kernel_size``, ``stride`` of the first conv + BN + ReLU.
        head_channels: width of the 1x1 conv + BN + ReLU before pooling (0: no head conv).
        in_channels: image channels.
        fixed_arch: build only this path (a standalone subnet); None builds the supernet.
    """

    def __init__(self, layers: Sequence[dict], candidate_ops: Dict[str, dict],
                 stem: dict = dict(out_channels=32, kernel_size=3, stride=1),
                 head_channels: int = 1280, in_channels: int = 3,
                 fixed_arch: Optional[ArchLike] = None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if not layers:
            raise ValueError('a search space needs at least one searchable layer')
        self.choice_names: List[List[str]] = []
        for i, layer in enumerate(layers):
            unknown = [c for c in layer['choices'] if c not in candidate_ops]
            if unknown:
                raise KeyError(f'layer {i}: choices {unknown} not in candidate_ops '
                               f'{sorted(candidate_ops)}')
            if any('.' in c for c in layer['choices']) or len(set(layer['choices'])) != len(
                    layer['choices']):
                raise ValueError(f'layer {i}: choice names must be unique and contain no "."')
            self.choice_names.append(list(layer['choices']))
        self.num_choices = [len(c) for c in self.choice_names]
        self.fixed_arch = None if fixed_arch is None else parse_arch(fixed_arch, self.num_choices)

        self.stem = ConvBNAct(in_channels, stem['out_channels'], stem.get('kernel_size', 3),
                              stem.get('stride', 1))
        channels = stem['out_channels']
        self.layers = nn.ModuleList()
        for i, layer in enumerate(layers):
            ops = nn.ModuleDict()
            for j, name in enumerate(layer['choices']):
                if self.fixed_arch is not None and j != self.fixed_arch[i]:
                    continue
                ops[name] = MODELS.build(
                    _scoped(candidate_ops[name]),
                    default_args=dict(in_channels=channels, out_channels=layer['out_channels'],
                                      stride=layer.get('stride', 1)))
            self.layers.append(ops)
            channels = layer['out_channels']
        self.head = ConvBNAct(channels, head_channels, 1) if head_channels else nn.Identity()
        self.out_channels = head_channels or channels
        self.pool = nn.AdaptiveAvgPool2d(1)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def parse(self, arch: ArchLike) -> Arch:
        return parse_arch(arch, self.num_choices)

    def arch_str(self, arch: ArchLike) -> str:
        return arch_to_str(self.parse(arch), self.num_choices)

    def sample_arch(self, generator: Optional[torch.Generator] = None) -> Arch:
        """Uniform single-path sampling (SPOS): each layer's choice independently and uniformly."""
        if self.fixed_arch is not None:
            return self.fixed_arch
        return tuple(
            int(torch.randint(n, (1, ), generator=generator)) for n in self.num_choices)

    def op(self, layer: int, choice: int) -> nn.Module:
        name = self.choice_names[layer][choice]
        if name not in self.layers[layer]:
            raise KeyError(f'layer {layer} has no op {name!r} (built for {self.fixed_arch})')
        return self.layers[layer][name]

    def forward(self, x: torch.Tensor, arch: Optional[ArchLike] = None) -> torch.Tensor:
        if arch is None:
            if self.fixed_arch is None:
                raise ValueError('a supernet forward needs an arch (or build with fixed_arch)')
            arch = self.fixed_arch
        else:
            arch = self.parse(arch)
        x = self.stem(x)
        for layer, choice in enumerate(arch):
            x = self.op(layer, choice)(x)
        return self.pool(self.head(x)).flatten(1)

    # --- the angle metric's view of the network -------------------------------------------
    def fixed_angle_tensors(self) -> List[torch.Tensor]:
        """Weights every candidate shares (stem, head conv)."""
        return weight_tensors(self.stem) + weight_tensors(self.head)

    def choice_angle_tensors(self, layer: int, choice: int) -> List[torch.Tensor]:
        return self.op(layer, choice).angle_tensors()
