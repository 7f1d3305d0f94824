"""MMEngine model around the supernet: data preprocessing, a linear classifier, CE loss, and
uniform path sampling per training iteration (SPOS)."""
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import nn

from ..registry import MODELS
from .arch import ArchLike
from .ops import weight_tensors


@MODELS.register_module()
class SPOSClassifier(BaseModel):
    """Image classifier over a :class:`SinglePathSupernet`.

    Training samples one path uniformly per iteration (unless the backbone has ``fixed_arch``).
    Evaluation uses ``self.arch`` (set it with :meth:`set_arch`); predictions are mmpretrain
    ``DataSample``s so mmpretrain's ``Accuracy`` metric works as usual. With ``fixed_arch`` in
    the backbone config this is the standalone (exported) network of one architecture.
    """

    def __init__(self, backbone: dict, num_classes: int, data_preprocessor: dict = None,
                 channels_last: bool = False, init_cfg=None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='mmpretrain.ClsDataPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        backbone = dict(backbone)
        backbone.setdefault('type', 'SinglePathSupernet')
        if '.' not in backbone['type']:
            backbone['type'] = 'rlnas.' + backbone['type']
        self.backbone = MODELS.build(backbone)
        self.num_classes = num_classes
        self.fc = nn.Linear(self.backbone.out_channels, num_classes)
        self.arch = self.backbone.fixed_arch
        self.last_arch = None
        # NHWC runs depthwise/1x1 convs ~25% faster on CPU (oneDNN) and suits cuDNN too
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def set_arch(self, arch: Optional[ArchLike]) -> None:
        """Path used by evaluation forwards (None: sample one per forward, as in training)."""
        self.arch = None if arch is None else self.backbone.parse(arch)

    def logits(self, inputs: torch.Tensor, arch: Optional[ArchLike] = None) -> torch.Tensor:
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return self.fc(self.backbone(inputs, arch))

    def forward(self, inputs: torch.Tensor, data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        if self.training or self.arch is None:
            arch = self.backbone.sample_arch()
        else:
            arch = self.arch
        self.last_arch = arch
        logits = self.logits(inputs, arch)
        if mode == 'tensor':
            return logits
        if mode == 'loss':
            labels = torch.stack([s.gt_label for s in data_samples]).view(-1).to(logits.device)
            return dict(loss=F.cross_entropy(logits, labels))
        if mode == 'predict':
            scores = F.softmax(logits, dim=1)
            for sample, score in zip(data_samples, scores):
                sample.set_pred_score(score).set_pred_label(score.argmax().view(1))
            return data_samples
        raise ValueError(f'unknown mode {mode!r}')

    def subnet_state_dict(self, arch: ArchLike) -> dict:
        """This model's weights along ``arch``, named as in the standalone subnet
        (``fixed_arch=arch``): the candidate ops of other choices are left out."""
        arch = self.backbone.parse(arch)
        dropped = tuple(f'backbone.layers.{i}.{name}.'
                        for i, names in enumerate(self.backbone.choice_names)
                        for j, name in enumerate(names) if j != arch[i])
        return {k: v for k, v in self.state_dict().items() if not k.startswith(dropped)}

    # --- angle metric ---------------------------------------------------------------------
    def fixed_angle_tensors(self) -> List[torch.Tensor]:
        return self.backbone.fixed_angle_tensors() + weight_tensors(self.fc)

    def choice_angle_tensors(self, layer: int, choice: int) -> List[torch.Tensor]:
        return self.backbone.choice_angle_tensors(layer, choice)

    def path_tensors(self, arch: ArchLike) -> List[torch.Tensor]:
        """All tensors of V(arch, W): fixed layers and the chosen op of every layer."""
        arch = self.backbone.parse(arch)
        tensors = self.fixed_angle_tensors()
        for layer, choice in enumerate(arch):
            tensors += self.choice_angle_tensors(layer, choice)
        return tensors
