"""AMP in the two-optimizer DMS step: mask and ratio gradients are unscaled, and a step with
overflowing gradients leaves importance and ratios untouched.

mmengine's ``AmpOptimWrapper`` refuses to build without a GPU, so ``ScaledOptimWrapper`` below
reproduces exactly its loss scaling (``GradScaler.scale`` -> backward -> ``step`` ->
``update``) with torch's CPU GradScaler; autocast is left out (it does not touch scaling).
"""
import copy

import pytest
import torch
from mmengine.optim import OptimWrapper, OptimWrapperDict

from mmdms.models.algorithms.dms_algorithm import dms_train_step, loss_scale
from test_dms_algorithm import tiny_algorithm


class ScaledOptimWrapper(OptimWrapper):

    def __init__(self, init_scale, **kwargs):
        super().__init__(**kwargs)
        self.loss_scaler = torch.amp.GradScaler('cpu', init_scale=init_scale,
                                                growth_interval=10**6)

    def backward(self, loss, **kwargs):
        self.loss_scaler.scale(loss).backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs):
        self.loss_scaler.unscale_(self.optimizer)
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update()


def _step(algorithm, init_scale):
    weights = ScaledOptimWrapper(init_scale, optimizer=torch.optim.SGD(
        algorithm.architecture.parameters(), lr=0.1))
    ratios = OptimWrapper(optimizer=torch.optim.Adam(algorithm.mutator.parameters(), lr=5e-2,
                                                     betas=(0.0, 0.999)))
    wrappers = OptimWrapperDict(architecture=weights, mutator=ratios)
    assert loss_scale(weights) == init_scale
    torch.manual_seed(0)
    data = dict(inputs=[torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8) for _ in range(4)],
                data_samples=None)
    from mmpretrain.structures import DataSample
    data['data_samples'] = [DataSample().set_gt_label(i % 10) for i in range(4)]
    algorithm.train()
    algorithm.set_target_ratio(0.3)  # resource loss active: ratios get gradients
    dms_train_step(algorithm, algorithm, data, wrappers)
    return algorithm


def _state(algorithm):
    units = algorithm.mutator.units
    return (torch.stack([u.ratio.detach() for u in units]),
            torch.cat([u.tracker.importance for u in units]))


def test_loss_scale_does_not_change_the_step():
    base = tiny_algorithm()
    g = torch.Generator().manual_seed(0)
    for unit in base.mutator.units:  # ranked importances: masks are soft, not cold-start ones
        unit.tracker.importance.copy_(torch.rand(unit.num_elements, generator=g))
    ratios_1, importance_1 = _state(_step(copy.deepcopy(base), 1.0))
    ratios_s, importance_s = _state(_step(copy.deepcopy(base), 2.0**12))
    ratios_0, importance_0 = _state(base)
    assert not torch.equal(ratios_1, ratios_0) and not torch.equal(importance_1, importance_0)
    torch.testing.assert_close(ratios_s, ratios_1, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(importance_s, importance_1, rtol=1e-4, atol=1e-12)


def test_overflowing_step_leaves_structure_untouched():
    base = tiny_algorithm()
    g = torch.Generator().manual_seed(0)
    for unit in base.mutator.units:
        unit.tracker.importance.copy_(torch.rand(unit.num_elements, generator=g))
    base.loss_weight = 1e6  # resource-loss gradients ~1e6: times the scale they overflow
    before = _state(base)
    after = _state(_step(copy.deepcopy(base), 2.0**120))
    for a, b in zip(before, after):
        assert torch.equal(a, b)


@pytest.mark.parametrize('constructor', [True, False])
def test_train_amp_flag_targets_the_weights_wrapper(constructor):
    import importlib.util
    import os.path as osp

    from mmengine.config import Config

    from mmdms_testing import REPO
    spec = importlib.util.spec_from_file_location('train_tool', osp.join(REPO, 'tools',
                                                                          'train.py'))
    train_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_tool)
    if constructor:
        cfg = Config.fromfile(osp.join(REPO, 'configs', 'dms', 'resnet_dms_cifar10.py'))
        train_tool.enable_amp(cfg)
        assert cfg.optim_wrapper.architecture.type == 'AmpOptimWrapper'
        assert 'type' not in cfg.optim_wrapper.mutator
    else:
        cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD'))))
        train_tool.enable_amp(cfg)
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        cfg.optim_wrapper.type = 'ApexOptimWrapper'
        with pytest.raises(ValueError, match='ApexOptimWrapper'):
            train_tool.enable_amp(cfg)


def test_deepcopy_gives_an_independent_supernet():
    """EMA hooks and model soups deep-copy the model: the copy's masks must be its own."""
    base = tiny_algorithm()
    g = torch.Generator().manual_seed(0)
    for unit in base.mutator.units:
        unit.tracker.importance.copy_(torch.rand(unit.num_elements, generator=g))
    clone = copy.deepcopy(base)
    base.eval(), clone.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        same = base(x, mode='tensor')
        torch.testing.assert_close(clone(x, mode='tensor'), same)
        for unit in clone.mutator.channel_units:
            unit.ratio.fill_(0.6)  # prune the copy only
        assert not torch.allclose(clone(x, mode='tensor'), same)
        torch.testing.assert_close(base(x, mode='tensor'), same)  # the original is unchanged
    clone.mutator.remove_hooks()
    with torch.no_grad():
        torch.testing.assert_close(base(x, mode='tensor'), same)  # its hooks are its own
        unmasked = clone(x, mode='tensor')
        base.mutator.set_mode('off')
        torch.testing.assert_close(base(x, mode='tensor'), unmasked)
