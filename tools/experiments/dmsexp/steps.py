"""Resumable steps: each step's result is a JSON file written atomically when it finishes.

A restarted driver returns the stored result of a finished step without running it; a
training step that was cut off resumes its MMEngine run from the last checkpoint in its work
dir (``resume=True``), with the CPU/wall time of the lost attempt carried in the checkpoint.
"""
import gc
import json
import os
import os.path as osp
import time
from typing import Callable, Optional

import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner, find_latest_checkpoint

from mmdms.registry import MODELS
from mmdms.utils import add_safe_checkpoint_hook, setup_torch_load
from mmdms.utils.fileio import atomic_write_text

STATS = dict(executed=0, skipped=0)  # steps run / found finished in this process


def load_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def write_json(path: str, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))


def cached_step(path: str, fn: Callable[[], dict], log: Callable[[str], None] = print,
                root: Optional[str] = None) -> dict:
    """``fn()`` once: its result (plus CPU and wall seconds) is stored at ``path``
    (logged relative to ``root``)."""
    if osp.isfile(path):
        STATS['skipped'] += 1
        return load_json(path)
    cpu, wall = time.process_time(), time.time()
    result = fn()
    result.setdefault('cpu_seconds', time.process_time() - cpu)
    result.setdefault('wall_seconds', time.time() - wall)
    result['finished_at'] = time.strftime('%Y-%m-%d %H:%M:%S')
    write_json(path, result)
    STATS['executed'] += 1
    name = osp.relpath(path, root) if root else path
    log(f'  step done: {name} ({result["wall_seconds"] / 60:.1f} min wall, '
        f'{result["cpu_seconds"] / 60:.1f} min CPU)')
    return result


class PhaseClockHook(Hook):
    """CPU and wall seconds of a training phase, kept across resumes in checkpoint meta."""

    priority = 'VERY_HIGH'

    def __init__(self):
        self.base = dict(cpu_seconds=0.0, wall_seconds=0.0)
        self.start = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        clock = (checkpoint.get('meta') or {}).get('phase_clock')
        if clock:
            self.base = dict(clock)

    def before_train(self, runner) -> None:
        self.start = (time.process_time(), time.time())

    def elapsed(self) -> dict:
        if self.start is None:
            return dict(self.base)
        return dict(cpu_seconds=self.base['cpu_seconds'] + time.process_time() - self.start[0],
                    wall_seconds=self.base['wall_seconds'] + time.time() - self.start[1])

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['phase_clock'] = self.elapsed()


def check_init_weights(model_cfg: dict, weights: str) -> None:
    """Fail early (not with a silently random model) if ``weights`` do not fit the model."""
    setup_torch_load()
    model = MODELS.build(model_cfg)
    state = torch.load(weights, map_location='cpu')
    model.load_state_dict(state.get('state_dict', state), strict=True)


def train_phase(cfg, tag: str, init_weights: Optional[str] = None,
                test: bool = False) -> dict:
    """Train (and optionally test) one MMEngine phase in ``cfg.work_dir``, resuming from its
    latest checkpoint if an earlier attempt was cut off."""
    work_dir = cfg.work_dir
    os.makedirs(work_dir, exist_ok=True)
    latest = find_latest_checkpoint(work_dir)
    if latest:
        cfg.resume, cfg.load_from = True, None
    else:
        cfg.resume, cfg.load_from = False, init_weights
        if init_weights:
            check_init_weights(cfg.model, init_weights)
    attempts_file = osp.join(work_dir, 'attempts.json')
    attempts = (load_json(attempts_file)['attempts'] if osp.isfile(attempts_file) else 0) + 1
    write_json(attempts_file, dict(attempts=attempts))
    cfg.experiment_name = f'{tag}_{time.strftime("%Y%m%d_%H%M%S")}_{os.getpid()}_{attempts}'
    add_safe_checkpoint_hook(cfg)
    cfg.dump(osp.join(work_dir, 'config.py'))
    runner = Runner.from_cfg(cfg)
    clock = PhaseClockHook()
    runner.register_hook(clock)
    runner.train()
    result = dict(clock.elapsed(), iters=cfg.train_cfg.max_iters, attempts=attempts,
                  resumed_from=latest and osp.basename(latest), init_weights=init_weights,
                  checkpoint=find_latest_checkpoint(work_dir))
    result['seconds_per_iter'] = result['wall_seconds'] / max(1, result['iters'])
    if test:
        cpu, wall = time.process_time(), time.time()
        metrics = runner.test()
        result.update(metrics={k: float(v) for k, v in metrics.items()},
                      test_cpu_seconds=time.process_time() - cpu,
                      test_wall_seconds=time.time() - wall)
        result['cpu_seconds'] += result['test_cpu_seconds']
        result['wall_seconds'] += result['test_wall_seconds']
    del runner
    gc.collect()
    return result


def save_weights(path: str, state_dict: dict) -> str:
    """A plain ``{'state_dict': ...}`` checkpoint (for ``load_from``), written atomically."""
    from mmdms.utils.fileio import atomic_write
    return atomic_write(path, lambda tmp: torch.save(dict(state_dict=state_dict), tmp))


def checkpoint_state(path: str) -> dict:
    setup_torch_load()
    checkpoint = torch.load(path, map_location='cpu')
    return checkpoint.get('state_dict', checkpoint)
