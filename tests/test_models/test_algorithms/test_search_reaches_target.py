"""A short real DMS search on CIFAR-10 lands on its FLOPs target with a non-uniform structure."""
import pytest
from mmengine.runner import Runner

from mmdms_testing import tiny_search_cfg
from mmdms.utils import register_all_modules

register_all_modules(init_default_scope=False)


def test_search_reaches_flops_target_non_uniformly(tmp_path, cifar_available):
    iters = 150
    cfg = tiny_search_cfg(tmp_path, max_iters=iters, batch_size=8)
    cfg.model.target_ratio = 0.5
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=iters)
    cfg.default_hooks.logger.interval = 25
    runner = Runner.from_cfg(cfg)
    runner.train()
    algorithm = runner.model
    hard = algorithm.mutator.resources(hard=True)
    ratio = float(hard['flops']) / algorithm.mutator.original_resources['flops']
    assert ratio == pytest.approx(0.5, abs=0.03)
    # not uniform scaling: the kept fractions of the width and depth units differ by at least
    # one channel of the narrowest unit
    units = algorithm.mutator.units
    keep = [u.num_kept() / u.num_elements for u in units]
    narrowest = min(u.num_elements for u in algorithm.mutator.channel_units)
    assert max(keep) - min(keep) >= 1.0 / narrowest
    assert max(keep) < 1.0 or min(keep) < 1.0
