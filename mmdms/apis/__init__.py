"""High-level entry points."""
from .prune_check import max_abs_diff, prune_check

__all__ = ['prune_check', 'max_abs_diff']
