"""High-level entry points."""
from mmdms.models.mutators.budget import BudgetError, scale_to_budget
from .prune_check import max_abs_diff, prune_check, randomize_norm_layers

__all__ = ['prune_check', 'max_abs_diff', 'randomize_norm_layers', 'scale_to_budget',
           'BudgetError']
