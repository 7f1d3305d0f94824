"""Training-time machinery of mmdms (hooks, optimizer constructors)."""
from .hooks import DMSSearchHook, SafeCheckpointHook
from .optimizers import DMSOptimWrapperConstructor

__all__ = ['DMSSearchHook', 'SafeCheckpointHook', 'DMSOptimWrapperConstructor']
