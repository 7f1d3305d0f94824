"""Concrete (relaxed Bernoulli) dropout over the input channels of one conv branch.

PGNAS (Zhou et al., AAAI 2020) writes architecture and weights as one hybrid variable
``phi = w * alpha``: switching off an input-channel slice of a kernel is both dropout and an
architecture choice. The variational posterior is a Bernoulli keep mask per input channel with
one learnable drop rate ``p`` per (layer, branch), learnt with concrete dropout
(Gal et al., 2017). Masks are *not* rescaled by ``1 / (1 - p)``: a sampled candidate is exactly
``w * alpha``, so exporting it only deletes channels.
"""
import math
from typing import Optional

import torch
from torch import nn


class ConcreteDropout(nn.Module):
    """Multiply ``x`` (N, C, H, W) by a keep mask over its C channels.

    Three behaviours, chosen by state rather than by argument so that a whole network can be
    switched at once:

    * ``training`` and no candidate mask: a relaxed Bernoulli keep mask, one value per
      (sample, channel), ``1 - sigmoid((logit(p) + logit(u)) / temperature)`` with
      ``u ~ U(0, 1)``; differentiable in ``p``.
    * a candidate mask set by :meth:`set_mask`: that fixed binary mask for every sample
      (the candidate's architecture), in train and eval mode alike.
    * eval without a candidate mask: no sampling. ``eval_mode='mean'`` multiplies by the keep
      rate ``1 - p`` (the mean network, matching the activation scale seen in training);
      ``eval_mode='identity'`` returns ``x`` unchanged.

    Args:
        num_channels (int): C, the number of input channels this unit gates (``k`` in the
            regulariser).
        init_drop_rate (float): initial ``p``. Defaults to 0.1 (as in the paper).
        temperature (float): relaxation temperature. Defaults to 0.2.
        learnable (bool): learn ``p`` (PGNAS) or keep it fixed (predefined dropout baseline).
        eval_mode (str): ``'mean'`` or ``'identity'``, see above.
        eps (float): clamp for ``u`` so that ``logit(u)`` stays finite.
    """

    def __init__(self,
                 num_channels: int,
                 init_drop_rate: float = 0.1,
                 temperature: float = 0.2,
                 learnable: bool = True,
                 eval_mode: str = 'mean',
                 eps: float = 1e-7):
        super().__init__()
        if not 0. < init_drop_rate < 1.:
            raise ValueError(f'init_drop_rate must be in (0, 1), got {init_drop_rate}')
        if temperature <= 0:
            raise ValueError(f'temperature must be positive, got {temperature}')
        if eval_mode not in ('mean', 'identity'):
            raise ValueError(f"eval_mode must be 'mean' or 'identity', got {eval_mode!r}")
        self.num_channels = num_channels
        self.temperature = temperature
        self.eval_mode = eval_mode
        self.eps = eps
        logit = torch.tensor(math.log(init_drop_rate) - math.log1p(-init_drop_rate))
        if learnable:
            self.p_logit = nn.Parameter(logit)
        else:
            self.register_buffer('p_logit', logit)
        self.candidate_mask: Optional[torch.Tensor] = None

    @property
    def drop_rate(self) -> torch.Tensor:
        """``p`` as a 0-dim tensor (differentiable when learnable)."""
        return torch.sigmoid(self.p_logit)

    def relaxed_keep_mask(self, shape, generator: Optional[torch.Generator] = None):
        """A relaxed Bernoulli(1 - p) sample of ``shape``; its mean is ~1 - p."""
        u = torch.rand(shape, generator=generator, device=self.p_logit.device,
                       dtype=self.p_logit.dtype).clamp(self.eps, 1 - self.eps)
        drop = torch.sigmoid((self.p_logit + torch.log(u) - torch.log1p(-u)) / self.temperature)
        return 1. - drop

    def sample_mask(self, generator: torch.Generator, drop_rate: Optional[float] = None):
        """A hard keep mask (bool, shape (C,)) ~ Bernoulli(1 - p), or 1 - ``drop_rate``.

        ``generator`` lives on the CPU so candidates are identical on any device.
        """
        rate = float(self.drop_rate.detach()) if drop_rate is None else float(drop_rate)
        return torch.rand(self.num_channels, generator=generator) >= rate

    def set_mask(self, mask: Optional[torch.Tensor]) -> None:
        """Fix a candidate's binary keep mask (shape (C,)), or clear it with ``None``."""
        if mask is not None:
            if mask.shape != (self.num_channels, ):
                raise ValueError(f'mask must have shape ({self.num_channels},), '
                                 f'got {tuple(mask.shape)}')
            mask = mask.to(device=self.p_logit.device, dtype=self.p_logit.dtype)
        self.candidate_mask = mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.candidate_mask is not None:
            return x * self.candidate_mask.view(1, -1, 1, 1)
        if self.training:
            keep = self.relaxed_keep_mask((x.shape[0], self.num_channels, 1, 1))
            return x * keep.to(x.dtype)
        if self.eval_mode == 'mean':
            return x * (1. - self.drop_rate).to(x.dtype)
        return x

    def extra_repr(self) -> str:
        return (f'num_channels={self.num_channels}, temperature={self.temperature}, '
                f'learnable={isinstance(self.p_logit, nn.Parameter)}, '
                f'eval_mode={self.eval_mode!r}')


def concrete_dropout_kl(drop_rate: torch.Tensor, weight: torch.Tensor, num_channels: int,
                        length_scale: float, num_samples: int) -> torch.Tensor:
    """The per-unit KL term of PGNAS/concrete dropout (up to constants).

    ``l^2 (1 - p) / (2N) * ||W||^2 + (k / N) * (p log p + (1 - p) log(1 - p))``: a Gaussian
    prior with length scale ``l`` on the kept weights plus the negative entropy of the
    Bernoulli mask, ``k`` = number of gated input channels, ``N`` = training-set size.
    """
    p = drop_rate
    weight_term = length_scale**2 * (1. - p) / (2. * num_samples) * weight.pow(2).sum()
    neg_entropy = p * torch.log(p) + (1. - p) * torch.log1p(-p)
    return weight_term + num_channels / num_samples * neg_entropy
