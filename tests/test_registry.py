import importlib

from mmengine.registry import MODELS as MMENGINE_MODELS

import mmdms
from mmdms import registry


def test_registries_are_children_with_locations():
    assert registry.MODELS.parent is MMENGINE_MODELS
    assert registry.MODELS.scope == 'mmdms'
    for name in ('MODELS', 'TASK_UTILS', 'HOOKS', 'LOOPS', 'OPTIM_WRAPPERS',
                 'OPTIM_WRAPPER_CONSTRUCTORS', 'OPTIMIZERS', 'PARAM_SCHEDULERS', 'RUNNERS'):
        reg = getattr(registry, name)
        assert reg._locations, name
        for location in reg._locations:  # every location must be importable
            importlib.import_module(location)


def test_register_all_modules_sets_scope():
    from mmengine.registry import DefaultScope

    from mmdms.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    assert DefaultScope.get_current_instance().scope_name == 'mmdms'


def test_version():
    assert mmdms.__version__.count('.') == 2
    assert mmdms.version_info[:2] == tuple(int(x) for x in mmdms.__version__.split('.')[:2])


def test_every_per_architecture_entry_is_documented():
    """docs/adapters.md lists every adapter, masked forward and forward rewrite."""
    import os.path as osp

    import mmdms.export  # noqa: F401  (registers adapters and rewrites)
    import mmdms.models  # noqa: F401  (registers masked forwards)
    from mmdms.models.tracing.channel_tracer import CHANNELWISE_EXTENSIONS
    doc = open(osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'docs',
                        'adapters.md')).read()
    names = set(CHANNELWISE_EXTENSIONS)
    for reg in (registry.PRUNING_ADAPTERS, registry.MASKED_FORWARDS, registry.FORWARD_REWRITES):
        assert len(reg.module_dict) >= 2, reg
        names.update(name for name, obj in reg.module_dict.items()  # not tests' own entries
                     if getattr(obj, '__module__', '').startswith('mmdms.'))
    missing = [n for n in sorted(names) if f'`{n}`' not in doc]
    assert not missing, f'add these to docs/adapters.md: {missing}'
