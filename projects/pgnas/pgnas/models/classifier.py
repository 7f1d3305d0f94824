"""An mmpretrain ``ImageClassifier`` that adds the PGNAS variational regulariser to its loss."""
import math
from typing import List, Optional

import torch
from mmpretrain.models import ImageClassifier
from mmpretrain.structures import DataSample

from ..registry import MODELS
from .candidates import dropout_units, gated_convs
from .concrete_dropout import concrete_dropout_kl


@MODELS.register_module()
class PGNASClassifier(ImageClassifier):
    """``ImageClassifier`` + ``loss_kl`` of the concrete-dropout posterior.

    ``loss_kl = sum_u l^2 (1 - p_u) / (2N) ||W_u||^2 + (k_u / N)(p_u log p_u
    + (1 - p_u) log(1 - p_u))`` over every gated branch ``u`` (``W_u`` its conv kernel,
    ``k_u`` its input channels). The cross entropy is a per-sample mean, so the KL is divided
    by ``N`` to keep the ELBO's proportions. Exclude the gated kernels from ordinary weight
    decay (``paramwise_cfg``): this prior replaces it.

    Args:
        num_train_samples (int): N, the size of the training set.
        length_scale (float): l, the prior length scale. ``l**2 / N`` plays the role of a
            weight decay; configs choose ``l = sqrt(5e-4 * N)`` to match the 5e-4 decay of
            the ungated weights.
        kl_weight (float): multiplies ``loss_kl``; the strength of the prior. Weight ``w`` is
            the same as using ``N / w`` in the KL with ``l`` fixed, i.e. trusting the prior as
            if there were ``w`` times less data; both terms scale, so the gated kernels' decay
            (``l**2 / N``) grows ``w``-fold too. The paper's ``1/N`` scaling gives a weak prior
            at small ``N`` (here the learned rates collapse to ``p ~ 0``); ``w > 1`` asks
            whether a stronger one keeps them spread. Default 1: the plain ELBO / N.
        **kwargs: :class:`mmpretrain.models.ImageClassifier` arguments.
    """

    def __init__(self, *args, num_train_samples: int, length_scale: float,
                 kl_weight: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        if num_train_samples <= 0:
            raise ValueError(f'num_train_samples must be positive, got {num_train_samples}')
        if not (isinstance(kl_weight, (int, float)) and math.isfinite(kl_weight)
                and kl_weight > 0):
            raise ValueError(f'kl_weight must be a positive finite number, got {kl_weight!r}')
        self.num_train_samples = num_train_samples
        self.length_scale = length_scale
        self.kl_weight = float(kl_weight)

    def kl_regularizer(self) -> Optional[torch.Tensor]:
        """The summed per-unit KL term times ``kl_weight``, or None for a static model
        (no gates)."""
        total = None
        for unit, conv in gated_convs(self).values():
            term = concrete_dropout_kl(unit.drop_rate, conv.weight, unit.num_channels,
                                       self.length_scale, self.num_train_samples)
            total = term if total is None else total + term
        if total is None or self.kl_weight == 1.0:
            return total
        return self.kl_weight * total

    def drop_rates(self) -> torch.Tensor:
        """Every unit's ``p`` (detached), in module order."""
        units = dropout_units(self)
        if not units:
            return torch.empty(0)
        return torch.stack([u.drop_rate.detach() for u in units.values()])

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample]) -> dict:
        losses = super().loss(inputs, data_samples)
        kl = self.kl_regularizer()
        if kl is not None:
            losses['loss_kl'] = kl
            rates = self.drop_rates()
            losses['drop_rate_mean'] = rates.mean()
            losses['drop_rate_max'] = rates.max()
        return losses
