"""Stateless operators of DMS (plus the small importance tracker)."""
from .differentiable_topk import (differentiable_topk, hard_mask, is_cold_start, kept_count,
                                  normalize_importance, ratio_for_kept,
                                  topk_mask_from_ranks)
from .importance import (ImportanceTracker, fisher_score, get_gradient_score, l1_norm_score,
                         snip_score, taylor_score)

__all__ = [
    'differentiable_topk', 'normalize_importance', 'is_cold_start', 'hard_mask', 'kept_count',
    'ratio_for_kept', 'topk_mask_from_ranks', 'ImportanceTracker', 'taylor_score', 'snip_score', 'fisher_score',
    'l1_norm_score', 'get_gradient_score'
]
