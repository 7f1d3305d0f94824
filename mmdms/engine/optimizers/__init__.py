from .dms_optim_wrapper_constructor import DMSOptimWrapperConstructor

__all__ = ['DMSOptimWrapperConstructor']
