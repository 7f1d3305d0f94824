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


def test_dms_algorithm_builds_its_mutator_under_another_default_scope():
    """After an MMYOLO runner the default scope is ``mmyolo``; ``DMSAlgorithm``'s default
    ``DMSMutator`` (registered only in mmdms) must still build."""
    from mmengine.registry import DefaultScope

    from mmdms.models.mutators import DMSMutator
    from mmdms.registry import MODELS
    from mmdms.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    import mmyolo.models  # noqa: F401
    arch = dict(_scope_='mmpretrain', type='ImageClassifier',
                backbone=dict(type='ResNet_CIFAR', depth=18, base_channels=8),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=10, in_channels=64))
    with DefaultScope.overwrite_default_scope('mmyolo'):
        algorithm = MODELS.build(dict(type='mmdms.DMSAlgorithm', architecture=arch,
                                      input_shape=(1, 3, 32, 32)))
        with_options = MODELS.build(dict(
            type='mmdms.DMSAlgorithm', architecture=arch, input_shape=(1, 3, 32, 32),
            mutator=dict(type='DMSMutator', channel_unit_cfg=dict(lambda_scale=0.5))))
    assert isinstance(algorithm.mutator, DMSMutator) and algorithm.mutator.channel_units
    assert {u.lambda_scale for u in with_options.mutator.channel_units} == {0.5}
