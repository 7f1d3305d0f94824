"""DMSAlgorithm: resource loss, target schedule, gradient direction, FLOPs agreement."""
import copy
import math

import pytest
import torch
from mmengine.config import Config

from mmdms.analysis import count_complexity
from mmdms.engine.hooks import scheduled_target
from mmdms.export import apply_structure
from mmdms.registry import MODELS
from mmdms.utils import register_all_modules

register_all_modules(init_default_scope=False)


def tiny_algorithm(target_ratio=0.5, **kwargs):
    from mmdms_testing import REPO
    cfg = Config.fromfile(f'{REPO}/configs/dms/resnet_dms_cifar10.py')
    arch = cfg.model.architecture
    arch.backbone.stem_channels = arch.backbone.base_channels = 8
    arch.head.in_channels = 64
    model_cfg = dict(cfg.model, target_ratio=target_ratio, **kwargs)
    return MODELS.build(model_cfg)


def test_scheduled_target_decays_then_holds():
    assert scheduled_target(0.5, 0.0, 0.8) == 1.0
    assert scheduled_target(0.5, 0.4, 0.8) == pytest.approx(0.5**0.5)
    assert scheduled_target(0.5, 0.8, 0.8) == pytest.approx(0.5)
    assert scheduled_target(0.5, 1.0, 0.8) == pytest.approx(0.5)
    assert scheduled_target(0.25, 0.3, 0.0) == 0.25


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match='target_ratio'):
        tiny_algorithm(target_ratio=1.5)
    with pytest.raises(ValueError, match='resource'):
        tiny_algorithm(resource='latency')


def test_resource_loss_is_log_ratio_above_target_only():
    alg = tiny_algorithm()
    alg.set_target_ratio(1.0)  # during the decay: one-sided
    out = alg.resource_loss()
    assert float(out['loss_resource']) == 0.0
    assert float(out['resource_ratio']) == pytest.approx(1.0)
    alg.set_target_ratio(0.5)
    out = alg.resource_loss()
    assert float(out['loss_resource']) == pytest.approx(torch.log(torch.tensor(2.0)).item(),
                                                        rel=1e-5)


def test_hold_phase_loss_is_two_sided():
    alg = tiny_algorithm(target_ratio=0.5)
    g = torch.Generator().manual_seed(0)
    for unit in alg.mutator.units:
        unit.tracker.importance.copy_(torch.rand(unit.num_elements, generator=g))
        unit.keep(max(1, round(0.3 * unit.num_elements)))  # well below the budget
    alg.set_target_ratio(0.5)  # schedule finished: hold
    out = alg.resource_loss()
    ratio = float(out['resource_ratio'])
    assert ratio < 0.5
    assert float(out['loss_resource']) == pytest.approx(abs(math.log(ratio / 0.5)),
                                                        rel=1e-4)
    out['loss_resource'].backward()
    assert all(float(u.ratio.grad) >= 0 for u in alg.mutator.units)  # push back towards 0.5
    assert any(float(u.ratio.grad) > 0 for u in alg.mutator.units)
    one_sided = tiny_algorithm(target_ratio=0.5, two_sided_hold=False)
    for unit in one_sided.mutator.units:
        unit.tracker.importance.copy_(torch.rand(unit.num_elements, generator=g))
        unit.keep(max(1, round(0.3 * unit.num_elements)))
    one_sided.set_target_ratio(0.5)
    assert float(one_sided.resource_loss()['loss_resource']) == 0.0


def test_ratios_follow_the_flops_gradient_without_task_loss():
    alg = tiny_algorithm(target_ratio=0.3)
    g = torch.Generator().manual_seed(0)
    for unit in alg.mutator.units:  # leave the cold start: rank the elements
        unit.tracker.importance.copy_(torch.rand(unit.num_elements, generator=g))
    alg.set_target_ratio(0.3)
    optimizer = torch.optim.Adam(alg.mutator.parameters(), lr=0.02)
    flops = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = alg.resource_loss()['loss_resource']
        loss.backward()
        for unit in alg.mutator.units:  # d loss / d ratio < 0: pruning more lowers FLOPs
            assert float(unit.ratio.grad) <= 0.0
        optimizer.step()
        alg.mutator.clamp_ratios()
        flops.append(float(alg.mutator.resources(hard=True)['flops']))
    assert all(float(u.ratio) > 0 for u in alg.mutator.channel_units)
    assert flops[-1] < 0.6 * alg.mutator.original_resources['flops']
    assert flops == sorted(flops, reverse=True)


def test_hard_masks_give_the_exported_flops(build_model=None):
    """Soft FLOPs with hard masks == mmengine's count of the exported model (within 2%)."""
    import sys
    sys.path.insert(0, __file__.rsplit('/', 2)[0] + '/test_tracing')
    from test_real_models import MODELS as ZOO, build
    from mmdms.models import DMSMutator
    for name in ('resnet50', 'deit_tiny', 'yolov8_n'):
        (scope, config), overrides, shape = ZOO[name]
        model = build(scope, config, **overrides)
        x = torch.randn(*shape)
        original = copy.deepcopy(model)
        mutator = DMSMutator()
        mutator.prepare_from_supernet(model, lambda: model(x, mode='tensor'))
        g = torch.Generator().manual_seed(1)
        for unit in mutator.units:
            unit.keep(max(unit.min_kept, round(0.5 * unit.num_elements)),
                      torch.rand(unit.num_elements, generator=g))
        hard = mutator.resources(hard=True)
        soft = mutator.resources(hard=False)
        exported = apply_structure(copy.deepcopy(original), mutator.structure())
        counted = count_complexity(exported, x, lambda m, i: m(i, mode='tensor'))
        for key in ('flops', 'params'):
            assert float(hard[key]) == pytest.approx(counted[key], rel=0.02), (name, key)
            assert float(soft[key]) == pytest.approx(float(hard[key]), rel=1e-6)
        full = count_complexity(original, x, lambda m, i: m(i, mode='tensor'))
        assert mutator.original_resources['flops'] == pytest.approx(full['flops'], rel=0.02)


def test_validation_uses_hard_masks_and_training_soft():
    alg = tiny_algorithm()
    unit = alg.mutator.channel_units[0]
    unit.tracker.importance.copy_(torch.rand(unit.num_elements))
    unit.ratio.data.fill_(0.4)
    alg.eval()
    x = torch.randn(2, 3, 32, 32)
    alg(x, mode='tensor')
    assert unit.mode == 'hard'
    alg.train()
    alg(x, mode='tensor')
    assert unit.mode == 'soft'


def test_fixed_ratios_hold_while_the_rest_is_searched():
    """``fixed_ratios`` units keep their ratio through backward and an optimizer step, their
    importance is still tracked, and the other units still move."""
    fixed = {'backbone.layer4.*': 0.5, 'depth:*': 0.0}
    alg = tiny_algorithm(target_ratio=0.3, mutator=dict(type='DMSMutator',
                                                        fixed_ratios=fixed))
    names = [r['unit'] for r in alg.mutator.unit_table()]
    units = dict(zip(names, alg.mutator.units))
    held = {n: u for n, u in units.items() if n.startswith(('backbone.layer4.', 'depth:'))}
    free = {n: u for n, u in units.items() if n not in held}
    assert len(held) == 7 and all(u.fixed for u in held.values())
    assert not any(u.fixed for u in free.values())
    before = {n: float(u.ratio.detach()) for n, u in units.items()}
    assert all(before[n] == (0.5 if n.startswith('backbone') else 0.0) for n in held)
    optimizer = torch.optim.Adam(alg.mutator.parameters(), lr=0.05, betas=(0.0, 0.999))
    alg.set_target_ratio(0.3)
    torch.manual_seed(0)
    for _ in range(2):  # the first step only warms up importance (cold-start masks)
        optimizer.zero_grad()
        loss = alg.architecture(torch.randn(4, 3, 32, 32), mode='tensor').pow(2).mean()
        (loss + alg.resource_loss()['loss_resource']).backward()
        alg.mutator.update_importance()
        optimizer.step()
    assert all(u.ratio.grad is None for u in held.values())
    assert all(float(u.ratio) == before[n] for n, u in held.items())
    assert all(float(u.ratio) > before[n] for n, u in free.items())  # pruned towards 0.3
    assert all(bool((u.tracker.importance > 0).any()) for u in held.values())
    for name, unit in held.items():
        if name.startswith('backbone'):
            assert unit.num_kept() == round(0.5 * unit.num_elements)


def test_fixed_ratios_bad_patterns_and_ratios_are_named():
    with pytest.raises(ValueError, match=r"\['neck\.\*'\] match no unit"):
        tiny_algorithm(mutator=dict(type='DMSMutator', fixed_ratios={'neck.*': 0.0}))
    with pytest.raises(ValueError, match=r"fixed_ratios\['backbone\.conv1'\] = 1\.5"):
        tiny_algorithm(mutator=dict(type='DMSMutator', fixed_ratios={'backbone.conv1': 1.5}))
