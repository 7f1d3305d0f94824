"""Importance scores for DMS units and the EMA tracker that accumulates them.

All scores are per element of a unit and are computed on the unit's *shared* mask, so one
score covers every layer of a dependency group. Scores are estimated, never learned: they
carry no autograd history.
"""
from typing import Callable, Dict, Optional

import torch
from torch import Tensor, nn


def taylor_score(mask: Tensor, mask_grad: Tensor) -> Tensor:
    """First-order Taylor score ``(m * dL/dm)^2`` (DMS default)."""
    return (mask.detach() * mask_grad.detach()).pow(2)


def snip_score(mask: Tensor, mask_grad: Tensor) -> Tensor:
    """SNIP connection sensitivity ``|m * dL/dm|``."""
    return (mask.detach() * mask_grad.detach()).abs()


def fisher_score(mask: Tensor, mask_grad: Tensor) -> Tensor:
    """Empirical Fisher ``(dL/dm)^2``."""
    return mask_grad.detach().pow(2)


def l1_norm_score(weight: Tensor, dim: int = 0) -> Tensor:
    """L1 norm of each slice of ``weight`` along ``dim`` (magnitude pruning's criterion).

    For a conv weight ``(out, in, k, k)``, ``dim=0`` scores output channels and ``dim=1``
    input channels.
    """
    weight = weight.detach()
    reduce_dims = [d for d in range(weight.dim()) if d != dim % weight.dim()]
    return weight.abs().sum(dim=reduce_dims)


GRADIENT_SCORES: Dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    'taylor': taylor_score,
    'snip': snip_score,
    'fisher': fisher_score,
}


def get_gradient_score(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Look up a mask-gradient score by name, with a clear error for unknown names."""
    try:
        return GRADIENT_SCORES[name]
    except KeyError:
        raise ValueError(f'Unknown importance metric {name!r}; '
                         f'choose one of {sorted(GRADIENT_SCORES)}') from None


class ImportanceTracker(nn.Module):
    """Exponential moving average of per-element importance scores.

    ``c <- decay * c + (1 - decay) * score``, starting from zeros (all tied, so the top-k
    keeps everything until the first update). State lives in buffers so it is saved in
    checkpoints and moved with the model.

    Args:
        num_elements: N, the number of elements of the unit.
        decay: EMA decay; DMS uses 0.99.
        metric: one of ``taylor``, ``snip``, ``fisher`` for :meth:`update_from_mask`.
    """

    def __init__(self, num_elements: int, decay: float = 0.99, metric: str = 'taylor'):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f'decay must be in [0, 1), got {decay}')
        self.decay = decay
        self.metric = metric
        self._score_fn = get_gradient_score(metric)
        self.register_buffer('importance', torch.zeros(num_elements))
        self.register_buffer('num_updates', torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, score: Tensor, reduce_across_ranks: bool = False) -> Tensor:
        """Fold one step's score into the EMA and return the new importance.

        Args:
            score: per-element score of this step, shape ``(N,)``.
            reduce_across_ranks: average the score over distributed ranks first, so every
                rank keeps the same importance (and hence the same mask).
        """
        if score.shape != self.importance.shape:
            raise ValueError(f'score of shape {tuple(score.shape)} does not match '
                             f'{tuple(self.importance.shape)} elements')
        score = score.detach().to(self.importance)
        if reduce_across_ranks:
            from mmengine.dist import all_reduce
            all_reduce(score, op='mean')
        self.importance.mul_(self.decay).add_(score, alpha=1.0 - self.decay)
        self.num_updates += 1
        return self.importance

    def update_from_mask(self,
                         mask: Tensor,
                         mask_grad: Optional[Tensor],
                         reduce_across_ranks: bool = False) -> Tensor:
        """Score the elements from the mask and its gradient with the configured metric."""
        if mask_grad is None:
            return self.importance
        return self.update(self._score_fn(mask, mask_grad), reduce_across_ranks)

    def extra_repr(self) -> str:
        return f'num_elements={self.importance.numel()}, decay={self.decay}, metric={self.metric}'
