"""The compared pipelines ("arms"). Each run (arm, budget, seed) is a chain of cached steps
and ends with a result JSON; every arm trains ``total_iters`` iterations in all.

* ``uniform``: every width unit of the supernet scaled by one factor to the budget (first-k
  channels), trained from scratch for ``total_iters``.
* ``dms_np``: DMS search from random init for ``search_fraction * total_iters`` (target: the
  budget), export rescaled to the budget within 1%, retrain **from scratch** for the rest
  with a fresh cosine curve -- the paper's DMS_np.
* ``dms_np_inherit``: the same search and export, but the exported weights keep training
  for the rest, continuing the global cosine curve.
* ``l1_oneshot``: the supernet trains ``l1_pretrain_fraction * total_iters`` (shared by both
  L1 arms and both budgets of a seed), every unit is pruned to one common keep factor by the
  L1 norm of its producing weights, and the rest fine-tunes, continuing the curve.
* ``l1_iterative``: the same pretraining, then ``l1_iterative_steps`` prune -> fine-tune
  steps at FLOPs ratios ``budget ** (k / K)``, spaced over the first half of the rest.
* ``dms_full_retrain`` (diagnostic, not a fair arm): the ``dms_np`` structure retrained from
  scratch for all ``total_iters``; the search iterations are *not* counted. Against
  ``uniform`` it measures the searched structure alone, without the search's cost.
"""
import os.path as osp
from typing import Callable, Dict, List

from mmdms.baselines import magnitude_structure, transfer_state, uniform_structure, unit_widths
from mmdms.export import export_pruned, save_structure
from mmdms.registry import MODELS
from .measure import build_eval_model, complexity, latency_ms
from .phase_configs import phase_config, pruned_model
from .steps import cached_step, checkpoint_state, load_json, save_weights, train_phase, write_json

ARMS = ('uniform', 'dms_np', 'dms_np_inherit', 'l1_oneshot', 'l1_iterative',
        'dms_full_retrain')
# settings that must not change inside one work dir (seeds, budgets and arms may be added)
FIXED_SETTINGS = ('total_iters', 'search_fraction', 'l1_pretrain_fraction',
                  'l1_iterative_steps', 'batch_size', 'train_per_class', 'test_per_class',
                  'architecture', 'optimizer', 'eta_min', 'dms')


class Experiment:
    """Settings, paths and shared steps of one experiment work dir."""

    def __init__(self, exp, work_dir: str, splits: dict, log: Callable[[str], None] = print):
        self.exp = exp
        self.work_dir = work_dir
        self.splits = splits
        self.log = log
        self.total = int(exp.total_iters)
        self.search_iters = max(1, round(self.total * exp.search_fraction))
        self.pretrain_iters = max(1, round(self.total * exp.l1_pretrain_fraction))
        if not self.search_iters < self.total or not self.pretrain_iters < self.total:
            raise ValueError('search_fraction and l1_pretrain_fraction must leave iterations '
                             'for retraining / fine-tuning')

    # ------------------------------------------------------------------ paths
    def run_dir(self, *parts) -> str:
        return osp.join(self.work_dir, 'runs', *parts)

    def result_path(self, arm: str, budget: float, seed: int) -> str:
        return osp.join(self.work_dir, 'results', f'{arm}_b{budget:g}_s{seed}.json')

    # ------------------------------------------------------------------ helpers
    def mutator(self):
        """A DMSMutator traced on the supernet (names the width units)."""
        algorithm = MODELS.build(dict(type='DMSAlgorithm', architecture=self.exp.architecture,
                                      input_shape=tuple(self.exp.input_shape)))
        return algorithm.mutator

    def phase(self, work_dir, seed, iters, model, test, offset=0, total=None, search=None):
        return phase_config(self.exp, work_dir, seed, iters, model, self.splits, test,
                            offset=offset, total=total, search=search)

    def step(self, path: str, fn) -> dict:
        return cached_step(path, fn, self.log, root=self.work_dir)

    def supernet(self) -> dict:
        def measure():
            model = build_eval_model(self.exp.architecture)
            return dict(complexity(model, self.exp.input_shape),
                        latency_ms=latency_ms(model, self.exp.input_shape))
        return self.step(osp.join(self.work_dir, 'supernet.json'), measure)

    # ------------------------------------------------------------------ shared steps
    def l1_pretrain(self, seed: int) -> dict:
        d = self.run_dir(f's{seed}', 'supernet_pretrain')
        return self.step(osp.join(d, 'step.json'), lambda: train_phase(
            self.phase(d, seed, self.pretrain_iters, self.exp.architecture, test=False,
                       total=self.total), f'pretrain_s{seed}'))

    def dms_search_export(self, budget: float, seed: int) -> dict:
        base = self.run_dir(f's{seed}', f'b{budget:g}')
        search_dir, export_dir = osp.join(base, 'dms_search'), osp.join(base, 'dms_export')
        search = self.step(osp.join(search_dir, 'step.json'), lambda: train_phase(
            self.phase(search_dir, seed, self.search_iters, self.exp.architecture, test=False,
                       total=self.total, search=dict(target_ratio=budget)),
            f'dms_search_b{budget:g}_s{seed}'))

        def export():
            summary = export_pruned(osp.join(search_dir, 'config.py'), search['checkpoint'],
                                    export_dir, target_flops=budget)
            return dict(structure=osp.join(export_dir, 'structure.json'),
                        weights=osp.join(export_dir, 'pruned.pth'),
                        searched_flops_ratio=summary['searched_flops_ratio'],
                        exported_flops_ratio=summary['exported_flops_ratio'],
                        width_scale=summary.get('width_scale'),
                        widths=[dict(unit=u['unit'], kind=u['kind'], size=u['size'],
                                     kept=u['kept']) for u in summary['units']])
        exported = self.step(osp.join(export_dir, 'step.json'), export)
        return dict(search=search, export=exported)

    # ------------------------------------------------------------------ arms
    def run(self, arm: str, budget: float, seed: int) -> dict:
        if arm not in ARMS:
            raise ValueError(f'unknown arm {arm!r}; choose from {ARMS}')
        return getattr(self, 'arm_' + arm)(budget, seed)

    def arm_uniform(self, budget, seed):
        d = self.run_dir(f's{seed}', f'b{budget:g}', 'uniform')
        structure_file = osp.join(d, 'structure.json')

        def build():
            mutator = self.mutator()
            structure, report = uniform_structure(mutator, budget)
            save_structure(structure, structure_file)
            return dict(structure=structure_file, width_scale=report['scale'],
                        model_flops_ratio=report['ratio'], widths=unit_widths(mutator))
        built = self.step(osp.join(d, 'structure.step.json'), build)
        train_dir = osp.join(d, 'train')
        trained = self.step(osp.join(train_dir, 'step.json'), lambda: train_phase(
            self.phase(train_dir, seed, self.total, pruned_model(self.exp, structure_file),
                       test=True), f'uniform_b{budget:g}_s{seed}', test=True))
        return self.finalize('uniform', budget, seed, structure_file, dict(train=self.total),
                             trained, built['widths'], [built, trained],
                             extra=dict(width_scale=built['width_scale']))

    def _dms(self, arm, budget, seed, inherit: bool):
        shared = self.dms_search_export(budget, seed)
        exported = shared['export']
        d = self.run_dir(f's{seed}', f'b{budget:g}', arm, 'retrain')
        rest = self.total - self.search_iters
        cfg = self.phase(d, seed, rest, pruned_model(self.exp, exported['structure']),
                         test=True, offset=self.search_iters if inherit else 0,
                         total=self.total if inherit else rest)
        trained = self.step(osp.join(d, 'step.json'), lambda: train_phase(
            cfg, f'{arm}_b{budget:g}_s{seed}', init_weights=exported['weights'] if inherit
            else None, test=True))
        return self.finalize(
            arm, budget, seed, exported['structure'],
            dict(search=self.search_iters, retrain=rest), trained, exported['widths'],
            [shared['search'], exported, trained],
            extra=dict(searched_flops_ratio=exported['searched_flops_ratio'],
                       width_scale=exported['width_scale'], retrain_init='searched weights'
                       if inherit else 'scratch'))

    def arm_dms_full_retrain(self, budget, seed):
        shared = self.dms_search_export(budget, seed)
        exported = shared['export']
        d = self.run_dir(f's{seed}', f'b{budget:g}', 'dms_full_retrain', 'retrain')
        trained = self.step(osp.join(d, 'step.json'), lambda: train_phase(
            self.phase(d, seed, self.total, pruned_model(self.exp, exported['structure']),
                       test=True), f'dms_full_retrain_b{budget:g}_s{seed}', test=True))
        return self.finalize(
            'dms_full_retrain', budget, seed, exported['structure'], dict(retrain=self.total),
            trained, exported['widths'], [shared['search'], exported, trained],
            extra=dict(search_iters_not_counted=self.search_iters,
                       searched_flops_ratio=exported['searched_flops_ratio'],
                       width_scale=exported['width_scale'], retrain_init='scratch'))

    def arm_dms_np(self, budget, seed):
        return self._dms('dms_np', budget, seed, inherit=False)

    def arm_dms_np_inherit(self, budget, seed):
        return self._dms('dms_np_inherit', budget, seed, inherit=True)

    def _prune_step(self, d, name, ratio, weights_of, previous_file=None) -> dict:
        """L1-prune the weights of a finished phase to ``ratio``; write structure + init."""
        structure_file = osp.join(d, f'{name}_structure.json')
        init_file = osp.join(d, f'{name}_init.pth')

        def prune():
            previous = load_json(previous_file) if previous_file else dict(slots={})
            state = checkpoint_state(weights_of['checkpoint'])
            mutator = self.mutator()
            structure, report = magnitude_structure(
                mutator, ratio, state, previous=previous if previous_file else None)
            save_structure(structure, structure_file)
            save_weights(init_file, transfer_state(state, previous, structure))
            return dict(structure=structure_file, weights=init_file, target_ratio=ratio,
                        model_flops_ratio=report['ratio'], width_scale=report['scale'],
                        widths=unit_widths(mutator), pruned_from=weights_of['checkpoint'])
        return self.step(osp.join(d, f'{name}.step.json'), prune)

    def arm_l1_oneshot(self, budget, seed):
        pretrain = self.l1_pretrain(seed)
        d = self.run_dir(f's{seed}', f'b{budget:g}', 'l1_oneshot')
        pruned = self._prune_step(d, 'prune', budget, pretrain)
        rest = self.total - self.pretrain_iters
        train_dir = osp.join(d, 'finetune')
        trained = self.step(osp.join(train_dir, 'step.json'), lambda: train_phase(
            self.phase(train_dir, seed, rest, pruned_model(self.exp, pruned['structure']),
                       test=True, offset=self.pretrain_iters, total=self.total),
            f'l1_oneshot_b{budget:g}_s{seed}', init_weights=pruned['weights'], test=True))
        return self.finalize('l1_oneshot', budget, seed, pruned['structure'],
                             dict(pretrain=self.pretrain_iters, finetune=rest), trained,
                             pruned['widths'], [pretrain, pruned, trained],
                             extra=dict(width_scale=pruned['width_scale']))

    def iterative_schedule(self) -> List[int]:
        """Global iterations at which the iterative arm prunes (the first at pretraining's
        end, the last half-way through the remaining iterations)."""
        steps, start = int(self.exp.l1_iterative_steps), self.pretrain_iters
        if steps < 1:
            raise ValueError('l1_iterative_steps must be >= 1')
        half = (self.total - start) / 2
        return [start + round(k * half / max(1, steps - 1)) for k in range(steps)]

    def arm_l1_iterative(self, budget, seed):
        pretrain = self.l1_pretrain(seed)
        d = self.run_dir(f's{seed}', f'b{budget:g}', 'l1_iterative')
        points = self.iterative_schedule() + [self.total]
        steps_done: List[dict] = [pretrain]
        weights_of, previous_file, iters = pretrain, None, dict(pretrain=self.pretrain_iters)
        k_total = len(points) - 1
        for k in range(1, k_total + 1):
            ratio = budget**(k / k_total)
            pruned = self._prune_step(d, f'prune{k}', ratio, weights_of, previous_file)
            train_dir = osp.join(d, f'finetune{k}')
            length, last = points[k] - points[k - 1], k == k_total
            trained = self.step(osp.join(train_dir, 'step.json'), lambda: train_phase(
                self.phase(train_dir, seed, length,
                           pruned_model(self.exp, pruned['structure']), test=last,
                           offset=points[k - 1], total=self.total),
                f'l1_iterative{k}_b{budget:g}_s{seed}', init_weights=pruned['weights'],
                test=last))
            steps_done += [pruned, trained]
            iters[f'finetune{k}'] = length
            weights_of, previous_file = trained, pruned['structure']
        return self.finalize('l1_iterative', budget, seed, pruned['structure'], iters, trained,
                             pruned['widths'], steps_done,
                             extra=dict(prune_at=points[:-1], width_scale=pruned['width_scale']))

    # ------------------------------------------------------------------ result
    def finalize(self, arm, budget, seed, structure_file, iters: Dict[str, int], trained: dict,
                 widths, steps: List[dict], extra=None) -> dict:
        if sum(iters.values()) != self.total:
            raise RuntimeError(f'{arm}: {iters} does not add up to {self.total} iterations')
        supernet = self.supernet()
        model = build_eval_model(pruned_model(self.exp, structure_file))
        counted = complexity(model, self.exp.input_shape)
        result = dict(
            arm=arm, budget=budget, seed=seed,
            top1=trained['metrics']['accuracy/top1'],
            flops=counted['flops'], params=counted['params'],
            flops_ratio=counted['flops'] / supernet['flops'],
            params_ratio=counted['params'] / supernet['params'],
            latency_ms=latency_ms(model, self.exp.input_shape),
            supernet_flops=supernet['flops'], supernet_params=supernet['params'],
            iters=iters, total_iters=sum(iters.values()),
            structure=osp.relpath(structure_file, self.work_dir), widths=widths,
            attempts=max(s.get('attempts', 1) for s in steps),
            cpu_seconds=sum(s.get('cpu_seconds', 0.0) for s in steps),
            wall_seconds=sum(s.get('wall_seconds', 0.0) for s in steps),
            train_seconds_per_iter=trained['seconds_per_iter'],
            **(extra or {}))
        write_json(self.result_path(arm, budget, seed), result)
        return result
