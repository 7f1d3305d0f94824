"""DMSSearchHook: the FLOPs target schedule, structure logging and width/depth plots."""
import json
import os.path as osp
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdms.registry import HOOKS
from mmdms.utils.fileio import atomic_write_text


def scheduled_target(final_ratio: float, progress: float, decay_fraction: float) -> float:
    """Exponential decay of the target from 1 (the supernet) to ``final_ratio`` over the first
    ``decay_fraction`` of training, then hold: ``T_t = T_final ** min(1, t / t_decay)``."""
    if decay_fraction <= 0:
        return final_ratio
    return final_ratio**min(1.0, max(0.0, progress) / decay_fraction)


@HOOKS.register_module()
class DMSSearchHook(Hook):
    """Drive a DMS search inside a stock MMEngine runner.

    * before each iteration, set the scheduled resource target on the algorithm;
    * before training, detach any LR scheduler from the structure optimizer (constant lr);
    * every ``interval`` iterations, log hard FLOPs/params ratios and kept counts;
    * at each checkpoint (every ``plot_interval`` epochs or iterations), write
      ``dms_structure.json`` and a plot of per-layer widths / per-stage depths to the work dir.

    Args:
        decay_fraction: fraction of training over which the target decays (DMS: ~0.8).
        interval: logging interval in iterations.
        plot: write the structure plot and JSON.
    """

    priority = 'NORMAL'

    def __init__(self, decay_fraction: float = 0.8, interval: int = 10, plot: bool = True):
        self.decay_fraction = decay_fraction
        self.interval = interval
        self.plot = plot

    @staticmethod
    def _algorithm(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner) -> None:
        schedulers = runner.param_schedulers
        if isinstance(schedulers, dict) and schedulers.get('mutator'):
            runner.logger.warning('DMS: LR schedulers were attached to the structure optimizer; '
                                  'they are removed so the ratios learn at a constant rate')
            schedulers['mutator'] = []
        algorithm = self._algorithm(runner)
        rows = algorithm.mutator.unit_table()
        kinds = {k: sum(r['kind'] == k for r in rows) for k in ('channel', 'block', 'head')}
        runner.logger.info(
            f'DMS: {kinds["channel"]} channel units, {kinds["block"]} block units, '
            f'{kinds["head"]} head units; {algorithm.resource} target '
            f'{algorithm.target_ratio:.3f} of {algorithm.original_resource:.4g}')
        frozen = algorithm.mutator.graph.frozen_report()
        for entry in frozen:
            runner.logger.info(f'DMS frozen: {entry["group"]} ({entry["size"]}): '
                               f'{entry["reason"]}')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        algorithm = self._algorithm(runner)
        progress = runner.iter / max(1, runner.max_iters)
        algorithm.set_target_ratio(
            scheduled_target(algorithm.target_ratio, progress, self.decay_fraction))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        algorithm = self._algorithm(runner)
        hard = algorithm.mutator.resources(hard=True)
        original = algorithm.mutator.original_resources
        hub = runner.message_hub
        hub.update_scalar('train/flops_ratio_hard', float(hard['flops']) / original['flops'])
        hub.update_scalar('train/params_ratio_hard', float(hard['params']) / original['params'])

    def after_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.plot and runner.rank == 0:
            self.write_structure(runner)

    def after_train(self, runner) -> None:
        if self.plot and runner.rank == 0:
            self.write_structure(runner)

    def write_structure(self, runner, out_dir: Optional[str] = None) -> str:
        from mmdms.visualization import plot_structure
        algorithm = self._algorithm(runner)
        out_dir = out_dir or runner.work_dir
        summary = structure_summary(algorithm)
        atomic_write_text(osp.join(out_dir, 'dms_structure.json'), json.dumps(summary, indent=1))
        path = osp.join(out_dir, 'dms_structure.png')
        plot_structure(summary, path, title=f'DMS structure at iter {runner.iter}')
        return path


def structure_summary(algorithm) -> dict:
    """Per-unit kept counts with resource ratios: what the log, plots and export report."""
    hard = algorithm.mutator.resources(hard=True)
    original = algorithm.mutator.original_resources
    return dict(
        resource=algorithm.resource,
        target_ratio=algorithm.target_ratio,
        flops=float(hard['flops']),
        params=float(hard['params']),
        flops_ratio=float(hard['flops']) / original['flops'],
        params_ratio=float(hard['params']) / original['params'],
        units=algorithm.mutator.unit_table())
