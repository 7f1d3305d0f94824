"""Models of mmdms: the top-k operators, prunable units, tracing, mutators and algorithms."""
from . import ops  # noqa: F401

__all__ = ['ops']
