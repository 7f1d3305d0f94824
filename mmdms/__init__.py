"""mmdms: Differentiable Model Scaling (and friends) on MMEngine.

Importing the package is cheap and has no side effects; modules register themselves when a
registry first looks for them (``locations=`` in :mod:`mmdms.registry`) or when
:func:`mmdms.utils.register_all_modules` is called.
"""
from .version import __version__, version_info

__all__ = ['__version__', 'version_info']
