"""One-shot accuracy of a candidate with inherited supernet weights (the supervised SPOS score).

BN statistics in a supernet mix every path, so each candidate first recalibrates them on a few
training batches (SPOS). Batches are preprocessed once and kept, so every candidate sees the
same calibration and validation data and the score is deterministic.
"""
from typing import Iterable, List, Sequence, Tuple

import torch
from torch import nn


def collect_batches(model, dataloader: Iterable, num_batches: int = None
                    ) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Run ``model.data_preprocessor`` over ``num_batches`` batches (all when None)."""
    out = []
    for i, data in enumerate(dataloader):
        if num_batches is not None and i >= num_batches:
            break
        data = model.data_preprocessor(data, False)
        labels = torch.stack([s.gt_label for s in data['data_samples']]).view(-1)
        out.append((data['inputs'], labels.to(data['inputs'].device)))
    if not out:
        raise ValueError('the dataloader gave no batches')
    return out


class OneShotEvaluator:
    """Top-1 accuracy (%) of ``model`` (an :class:`SPOSClassifier`) along a given path."""

    def __init__(self, model, calib_batches: Sequence, val_batches: Sequence):
        self.model = model
        self.calib_batches, self.val_batches = list(calib_batches), list(val_batches)

    @torch.no_grad()
    def recalibrate_bn(self, arch) -> None:
        bns = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [bn.momentum for bn in bns]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batches
        self.model.train()
        try:
            for inputs, _ in self.calib_batches:
                self.model.logits(inputs, arch)
        finally:
            for bn, momentum in zip(bns, momenta):
                bn.momentum = momentum

    @torch.no_grad()
    def __call__(self, arch) -> float:
        self.recalibrate_bn(arch)
        self.model.eval()
        correct = total = 0
        for inputs, labels in self.val_batches:
            pred = self.model.logits(inputs, arch).argmax(1)
            correct += int((pred == labels).sum())
            total += labels.numel()
        return 100.0 * correct / total
