"""High-level entry points."""
from .prune_check import max_abs_diff, prune_check, randomize_norm_layers

__all__ = ['prune_check', 'max_abs_diff', 'randomize_norm_layers']
