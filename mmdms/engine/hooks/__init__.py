from .dms_search_hook import DMSSearchHook, scheduled_target, structure_summary
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = ['DMSSearchHook', 'SafeCheckpointHook', 'scheduled_target', 'structure_summary']
