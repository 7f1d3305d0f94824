"""Explicit registration for code that does not go through a registry lookup."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmdms module that registers something, and optionally set the scope.

    Registries already know where to look (``locations=``); this is for scripts and tests
    that want every member present up front, like ``mmpretrain.utils.register_all_modules``.

    Args:
        init_default_scope: make ``mmdms`` the current default scope, so configs without
            ``default_scope`` resolve mmdms types first. Defaults to True.
    """
    import mmdms.engine  # noqa: F401,F811
    import mmdms.models  # noqa: F401,F811

    if not init_default_scope:
        return
    never_created = (DefaultScope.get_current_instance() is None
                     or not DefaultScope.check_instance_created('mmdms'))
    if never_created:
        DefaultScope.get_instance('mmdms', scope_name='mmdms')
        return
    current_scope = DefaultScope.get_current_instance()
    if current_scope.scope_name != 'mmdms':
        warnings.warn('The current default scope '
                      f'"{current_scope.scope_name}" is not "mmdms", '
                      '`register_all_modules` will force the current'
                      'default scope to be "mmdms". If this is not '
                      'expected, please set `init_default_scope=False`.')
        # avoid name conflict
        new_instance_name = f'mmdms-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_instance_name, scope_name='mmdms')
