"""Prunable units of DMS: a learnable pruning ratio plus an importance EMA over N elements."""
from typing import List, Optional

import torch
from torch import Tensor, nn

from mmdms.registry import MODELS
from ..ops import (ImportanceTracker, hard_mask, is_cold_start, kept_count, normalize_importance,
                   ratio_for_kept, topk_mask_from_ranks)

MASK_MODES = ('soft', 'hard', 'off')


class DTopkUnit(nn.Module):
    """N elements, one learnable pruning ratio ``a`` and their importance EMA.

    ``mask()`` is the soft top-k mask in ``soft`` mode (search), the 0/1 mask in ``hard`` mode
    (checks, export) and ones in ``off`` mode. The ratio is clamped into
    ``[0, max_ratio]`` after every optimizer step via :meth:`clamp_ratio`.

    Args:
        num_elements: N.
        lambda_scale: temperature multiplier (1 for width, 4 for depth and heads).
        min_kept: the fewest elements the unit may keep (1 for width, 0 for depth).
        decay, metric: importance EMA settings, see :class:`ImportanceTracker`.
    """

    def __init__(self, num_elements: int, lambda_scale: float = 1.0, min_kept: int = 1,
                 decay: float = 0.99, metric: str = 'taylor'):
        super().__init__()
        if num_elements < 1:
            raise ValueError(f'a unit needs at least one element, got {num_elements}')
        self.num_elements = num_elements
        self.lambda_scale = lambda_scale
        self.min_kept = min_kept
        self.ratio = nn.Parameter(torch.zeros(()))
        self.tracker = ImportanceTracker(num_elements, decay, metric)
        self.mode = 'soft'
        self._ranks_cache: Optional[tuple] = None  # (importance version, ranks, cold start)

    @property
    def max_ratio(self) -> float:
        """Largest ratio that still keeps ``min_kept`` elements (``round`` halves up)."""
        return 1.0 - (self.min_kept - 0.5) / self.num_elements if self.min_kept else 1.0

    @property
    def fixed(self) -> bool:
        """Whether the search leaves the ratio alone (:meth:`fix_ratio`)."""
        return not self.ratio.requires_grad

    @torch.no_grad()
    def fix_ratio(self, ratio: float) -> None:
        """Hold the pruning ratio at ``ratio``: no gradient reaches it, so neither the task
        nor the resource loss moves it (importance still ranks the elements)."""
        self.ratio.fill_(ratio)
        self.ratio.requires_grad_(False)

    @torch.no_grad()
    def clamp_ratio(self) -> None:
        self.ratio.clamp_(0.0, self.max_ratio)

    def _ranks(self) -> tuple:
        """Normalised ranks and cold-start flag of the importance, recomputed only when the
        importance changed (its in-place version counter moves on every update, ``keep`` and
        checkpoint load) or moved device."""
        importance = self.tracker.importance
        key = (importance._version, importance.data_ptr())
        if self._ranks_cache is None or self._ranks_cache[0] != key:
            self._ranks_cache = (key, normalize_importance(importance),
                                 is_cold_start(importance))
        return self._ranks_cache[1:]

    def _soft_mask(self, ratio: Tensor) -> Tensor:
        ranks, cold = self._ranks()
        return topk_mask_from_ranks(ranks, cold, ratio, self.lambda_scale)

    def mask(self) -> Tensor:
        if self.mode == 'off':
            return torch.ones(self.num_elements, device=self.ratio.device)
        soft = self._soft_mask(self.ratio)
        if self.fixed and self.mode == 'soft' and torch.is_grad_enabled():
            soft = soft.detach().requires_grad_()  # a leaf: its gradient feeds importance
        if self.mode == 'hard':
            return hard_mask(soft).detach()
        return soft

    def set_mode(self, mode: str) -> None:
        if mode not in MASK_MODES:
            raise ValueError(f'mask mode must be one of {MASK_MODES}, got {mode!r}')
        self.mode = mode

    def kept_mask(self) -> Tensor:
        """Boolean mask of the elements export keeps."""
        return hard_mask(self._soft_mask(self.ratio.detach())).bool()

    def num_kept(self) -> int:
        return int(self.kept_mask().sum())

    def expected_kept(self) -> int:
        return kept_count(self.num_elements, float(self.ratio))

    @torch.no_grad()
    def keep(self, num_kept: int, importance: Optional[Tensor] = None) -> None:
        """Set the ratio (and optionally the importance) so exactly ``num_kept`` stay."""
        if importance is not None:
            self.tracker.importance.copy_(importance)
        self.ratio.fill_(ratio_for_kept(self.num_elements, num_kept))

    def extra_repr(self) -> str:
        return (f'num_elements={self.num_elements}, lambda_scale={self.lambda_scale}, '
                f'min_kept={self.min_kept}')


@MODELS.register_module()
class DTopkChannelUnit(DTopkUnit):
    """Width unit: the coupled channels of a dependency group (keeps >= 1)."""

    def __init__(self, num_elements: int, lambda_scale: float = 1.0, **kwargs):
        super().__init__(num_elements, lambda_scale=lambda_scale, min_kept=1, **kwargs)


@MODELS.register_module()
class DTopkBlockUnit(DTopkUnit):
    """Depth unit: the removable residual blocks of one stage (may remove all of them).

    Args:
        blocks: module names of the blocks, element i is ``blocks[i]``.
    """

    def __init__(self, blocks: List[str], lambda_scale: float = 4.0, **kwargs):
        super().__init__(len(blocks), lambda_scale=lambda_scale, min_kept=0, **kwargs)
        self.blocks = list(blocks)


@MODELS.register_module()
class DTopkHeadUnit(DTopkUnit):
    """Attention-head unit: the heads of one attention layer (keeps >= 1).

    Args:
        num_heads: number of heads.
        module: name of the attention module (for reports and export).
    """

    def __init__(self, num_heads: int, module: str = '', lambda_scale: float = 4.0, **kwargs):
        super().__init__(num_heads, lambda_scale=lambda_scale, min_kept=1, **kwargs)
        self.module_name = module
