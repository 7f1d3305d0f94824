from .dms_mutator import DMSMutator

__all__ = ['DMSMutator']
