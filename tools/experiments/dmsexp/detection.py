"""Detection experiments (MMYOLO): DMS-searched YOLOv8 vs a hand-scaled YOLOv8 at equal FLOPs.

The recipe of every arm (data, pipelines, loss, optimizer) comes from one DMS search config
(``exp.search_config``, e.g. ``configs/dms/yolov8n_dms_bccd.py``); the experiment config sets
the image size, batch, epochs and the two architectures (``reference``: the hand-scaled
model, e.g. YOLOv8-n; ``supernet``: the model DMS searches in). Every arm trains
``epochs * iters_per_epoch`` iterations in all; the learning rate follows MMYOLO's shape -- a
linear warm-up, then a linear decay to ``lr_factor`` of the base lr over the arm's iterations
(a phase that continues training enters that line where the previous phase left it).

Arms (a run is (arm, seed); each is a chain of cached steps, see ``steps``):

* ``reference``: the hand-scaled model (YOLOv8-n) trained from scratch for every iteration.
* ``dms_np``: DMS search in the supernet from random init for ``search_epochs`` (target: the
  reference's FLOPs), export rescaled to the reference's absolute FLOPs within
  ``flops_tolerance``, retrain **from scratch** for the remaining epochs, fresh LR curve.
* ``dms_np_inherit``: the same search and export, the exported weights keep training for
  the remaining epochs, continuing the LR line of the search.

Test: stock ``mmdet.CocoMetric`` on the test split, plus mAP and per-class AP / AP50
recomputed with pycocotools from the dumped predictions (unrounded, AP50 per class, and only
over the images actually tested when ``test_images`` takes a subset).
"""
import contextlib
import copy
import io
import json
import math
import os.path as osp
from typing import Callable, Dict, List, Optional

import torch
from mmengine.config import Config, ConfigDict

from mmdms.baselines import unit_widths
from mmdms.export import export_pruned
from mmdms.registry import MODELS
from .measure import build_eval_model, complexity, latency_ms
from .search_settings import dms_search_settings
from .steps import cached_step, load_json, train_phase, write_json

# dms_full_retrain is a diagnostic, not a fair arm: the dms_np structure retrained from scratch
# for all the iterations, the search not counted (separates the structure from its cost)
DET_ARMS = ('reference', 'dms_np', 'dms_np_inherit', 'dms_full_retrain')
RESIZE_TYPES = ('YOLOv5KeepRatioResize', 'LetterResize', 'mmdet.Resize', 'Resize')


def _plain(value):
    return value.to_dict() if isinstance(value, ConfigDict) else copy.deepcopy(value)


def scaled_architecture(base: dict, deepen_factor: float, widen_factor: float) -> dict:
    """A YOLOv8-style detector config with other deepen / widen factors."""
    arch = _plain(base)
    for part in ('backbone', 'neck'):
        arch[part].update(deepen_factor=deepen_factor, widen_factor=widen_factor)
    arch['bbox_head']['head_module']['widen_factor'] = widen_factor
    return arch


def set_image_size(pipeline: List[dict], size: int) -> List[dict]:
    pipeline = copy.deepcopy(pipeline)
    for transform in pipeline:
        if str(transform.get('type', '')).split('.')[-1] in {t.split('.')[-1]
                                                            for t in RESIZE_TYPES}:
            transform['scale'] = (size, size)
    return pipeline


def count_images(ann_file: str, limit: Optional[int]) -> int:
    with open(ann_file) as f:
        n = len(json.load(f)['images'])
    return n if limit is None else min(n, int(limit))


def coco_per_class(ann_file: str, predictions: str, num_images: Optional[int] = None) -> dict:
    """COCO box AP (0.5:0.95), AP50, AP75 overall and AP / AP50 per class, with pycocotools'
    standard parameters (maxDets 1/10/100), over the first ``num_images`` images of
    ``ann_file`` (the ones a dataset with ``indices=num_images`` tests; default all)."""
    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
    img_ids = [img['id'] for img in gt.dataset['images']]
    if num_images is not None:
        img_ids = img_ids[:num_images]
    tested = set(img_ids)
    with open(predictions) as f:
        dets = [d for d in json.load(f) if d['image_id'] in tested]

    def instances(cat_id):
        return len(gt.getAnnIds(imgIds=img_ids, catIds=[cat_id]))
    if not dets:  # nothing detected: every AP is 0
        return dict(mAP=0.0, mAP_50=0.0, mAP_75=0.0, images=len(img_ids),
                    per_class={c['name']: dict(AP=0.0, AP50=0.0, instances=instances(c['id']))
                               for c in (gt.cats[i] for i in gt.getCatIds())})
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, 'bbox')
        ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval['precision']  # (iou, recall, class, area, maxDets)
    last = len(ev.params.maxDets) - 1  # 100 detections per image

    def mean(p):
        p = p[p > -1]
        return float(np.mean(p)) if p.size else float('nan')
    per_class = {}
    for k, cat_id in enumerate(ev.params.catIds):
        name = gt.cats[cat_id]['name']
        per_class[name] = dict(AP=mean(precision[:, :, k, 0, last]),
                               AP50=mean(precision[0, :, k, 0, last]),
                               instances=instances(cat_id))
    return dict(mAP=float(ev.stats[0]), mAP_50=float(ev.stats[1]), mAP_75=float(ev.stats[2]),
                images=len(img_ids), per_class=per_class)


class DetectionExperiment:
    """Settings, phase configs, paths and steps of one detection experiment work dir."""

    def __init__(self, exp, work_dir: str, repo: str, log: Callable[[str], None] = print):
        self.exp = exp
        self.work_dir = work_dir
        self.repo = repo
        self.log = log
        self.base = Config.fromfile(self._abs(exp.search_config))
        self.data_root = self._abs(exp.data_root)
        self.train_ann = osp.join(self.data_root, exp.train_ann)
        self.test_ann = osp.join(self.data_root, exp.test_ann)
        self.train_images = count_images(self.train_ann, exp.train_images)
        self.test_images = count_images(self.test_ann, exp.test_images)
        self.iters_per_epoch = math.ceil(self.train_images / exp.batch_size)
        self.total = int(exp.epochs) * self.iters_per_epoch
        self.search_iters = int(exp.search_epochs) * self.iters_per_epoch
        if not 0 < self.search_iters < self.total:
            raise ValueError('search_epochs must be at least 1 and leave epochs to retrain')
        self.input_shape = (1, 3, exp.img_size, exp.img_size)
        arch = self.base.model.architecture
        self.supernet_arch = scaled_architecture(arch, **exp.supernet)
        self.reference_arch = scaled_architecture(arch, **exp.reference)

    def _abs(self, path: str) -> str:
        return path if osp.isabs(path) else osp.join(self.repo, path)

    # ------------------------------------------------------------------ paths
    def run_dir(self, *parts) -> str:
        return osp.join(self.work_dir, 'runs', *parts)

    def result_path(self, arm: str, seed: int) -> str:
        return osp.join(self.work_dir, 'results', f'{arm}_s{seed}.json')

    def step(self, path: str, fn) -> dict:
        return cached_step(path, fn, self.log, root=self.work_dir)

    # ------------------------------------------------------------------ configs
    def lr_schedule(self, iters: int, offset: int, total: int) -> List[dict]:
        """Warm-up (phases starting at 0) times the linear decay to ``lr_factor`` over
        ``total``, entered at ``offset`` (stock chained ``LinearLR``s)."""
        exp = self.exp
        if offset + iters > total:
            raise ValueError(f'phase of {iters} iterations at offset {offset} overruns the '
                             f'{total}-iteration schedule')

        def factor(t):
            return 1.0 - (1.0 - exp.lr_factor) * t / total
        # LinearLR reaches end_factor at its step `end - 1`: end=iters+1 puts iteration i of
        # the phase exactly at factor(offset + i); the warm-up reaches 1 at `warmup`
        schedule = [dict(type='LinearLR', start_factor=factor(offset),
                         end_factor=factor(offset + iters), by_epoch=False, begin=0,
                         end=iters + 1)]
        warmup = int(exp.warmup_iters)
        if offset == 0 and 0 < warmup < iters:
            schedule.insert(0, dict(type='LinearLR', start_factor=exp.warmup_start_factor,
                                    end_factor=1.0, by_epoch=False, begin=0, end=warmup + 1))
        return schedule

    def _dataloader(self, key: str, ann_file: str, limit: Optional[int], train: bool) -> dict:
        loader = _plain(self.base[key])
        loader.update(num_workers=0, persistent_workers=False)
        if train:
            loader['batch_size'] = self.exp.batch_size
        dataset = loader['dataset']
        dataset.update(data_root=self.data_root, ann_file=ann_file,
                       pipeline=set_image_size(dataset['pipeline'], self.exp.img_size))
        dataset.pop('indices', None)
        if limit is not None:
            dataset['indices'] = int(limit)
        return loader

    def phase(self, work_dir: str, seed: int, iters: int, model: dict, test: bool,
              offset: int = 0, total: Optional[int] = None,
              search: Optional[dict] = None) -> Config:
        """A complete Runner config of one training phase (``search``: a DMS search with
        ``dict(target_ratio=...)``)."""
        exp = self.exp
        total = iters if total is None else total
        cfg = self.base.to_dict()
        for key in ('model_wrapper_cfg', 'val_dataloader', 'val_cfg', 'val_evaluator',
                    'test_dataloader', 'test_cfg', 'test_evaluator', 'load_from', 'resume'):
            cfg.pop(key, None)
        optim = _plain(self.base.optim_wrapper['architecture'])
        optim['optimizer'].update(lr=exp.lr, batch_size_per_gpu=exp.batch_size)
        optim.setdefault('type', 'OptimWrapper')
        lr = self.lr_schedule(iters, offset, total)
        hooks = _plain(cfg['default_hooks'])
        hooks.update(
            logger=dict(type='LoggerHook', interval=exp.log_interval),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', by_epoch=False,
                            interval=exp.checkpoint_interval, max_keep_ckpts=1,
                            save_last=True, save_best=None))
        cfg.update(
            work_dir=work_dir,
            randomness=dict(seed=seed, deterministic=False),
            train_dataloader=self._dataloader('train_dataloader', self.train_ann,
                                              exp.train_images, train=True),
            train_cfg=dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters + 1),
            val_cfg=None, val_dataloader=None, val_evaluator=None,
            default_hooks=hooks,
            log_processor=dict(type='LogProcessor', window_size=exp.log_interval,
                               by_epoch=False),
            load_from=None, resume=False)
        if test:
            evaluator = _plain(self.base.test_evaluator)
            evaluator.update(ann_file=self.test_ann, classwise=True,
                             outfile_prefix=osp.join(work_dir, 'test'))
            cfg.update(test_dataloader=self._dataloader('test_dataloader', self.test_ann,
                                                        exp.test_images, train=False),
                       test_cfg=dict(type='TestLoop'), test_evaluator=evaluator)
        if search is None:
            cfg.update(model=_plain(model), optim_wrapper=optim, param_scheduler=lr,
                       custom_hooks=[])
        else:
            cfg.update(dms_search_settings(
                exp.dms, _plain(model), optim, lr, search['target_ratio'], self.input_shape,
                exp.log_interval))
        return Config(cfg, format_python_code=False)

    def pruned_model(self, structure_file: str) -> dict:
        """The supernet pruned to ``structure_file`` (an instance of the original class)."""
        arch = _plain(self.supernet_arch)
        arch.setdefault('_scope_', self.base.get('default_scope', 'mmyolo'))
        return ConfigDict(type='mmdms.PrunedModel', architecture=arch,
                          structure=osp.abspath(structure_file))

    def scoped(self, model_cfg: dict) -> ConfigDict:
        """A model config that builds outside a runner (its scope; ``ConfigDict``: MMYOLO
        heads read ``train_cfg.assigner`` as attributes)."""
        cfg = _plain(model_cfg)
        cfg.setdefault('_scope_', self.base.get('default_scope', 'mmyolo'))
        return ConfigDict(cfg)

    # ------------------------------------------------------------------ shared steps
    def models(self) -> dict:
        """FLOPs/params of the reference and the supernet, the search target, and the
        per-unit widths of the reference on the supernet's units (for the plot)."""
        def measure():
            out = {}
            for name, arch in (('reference', self.reference_arch),
                               ('supernet', self.supernet_arch)):
                out[name] = complexity(build_eval_model(self.scoped(arch)), self.input_shape)
            algorithm = MODELS.build(dict(type='mmdms.DMSAlgorithm',  # any default scope
                                          architecture=self.scoped(self.reference_arch),
                                          input_shape=self.input_shape))
            out['reference_widths'] = unit_widths(algorithm.mutator)
            out['target_ratio'] = out['reference']['flops'] / out['supernet']['flops']
            return out
        return self.step(osp.join(self.work_dir, 'models.json'), measure)

    def dms_search_export(self, seed: int) -> dict:
        models = self.models()
        base = self.run_dir(f's{seed}')
        search_dir, export_dir = osp.join(base, 'dms_search'), osp.join(base, 'dms_export')
        search = self.step(osp.join(search_dir, 'step.json'), lambda: train_phase(
            self.phase(search_dir, seed, self.search_iters, self.supernet_arch, test=False,
                       total=self.total, search=dict(target_ratio=models['target_ratio'])),
            f'dms_search_s{seed}'))

        def export():
            target = models['reference']['flops']
            summary, divisor = None, int(self.exp.export_divisor)
            for divisor in sorted({divisor, 1}, reverse=True):
                summary = export_pruned(osp.join(search_dir, 'config.py'),
                                        search['checkpoint'], export_dir,
                                        target_flops=target, divisor=divisor,
                                        tolerance=self.exp.flops_tolerance)
                if summary.get('within_tolerance'):
                    break
                self.log(f'  export with divisor {divisor} missed the reference FLOPs by '
                         f'more than {self.exp.flops_tolerance:.0%}; retrying')
            return dict(structure=osp.join(export_dir, 'structure.json'),
                        weights=osp.join(export_dir, 'pruned.pth'), divisor=divisor,
                        searched_flops_ratio=summary['searched_flops_ratio'],
                        exported_flops=summary['exported']['flops'],
                        exported_flops_ratio=summary['exported_flops_ratio'],
                        within_tolerance=summary.get('within_tolerance'),
                        width_scale=summary.get('width_scale'),
                        widths=[dict(unit=u['unit'], kind=u['kind'], size=u['size'],
                                     kept=u['kept']) for u in summary['units']])
        exported = self.step(osp.join(export_dir, 'step.json'), export)
        return dict(search=search, export=exported)

    # ------------------------------------------------------------------ arms
    def run(self, arm: str, seed: int) -> dict:
        if arm not in DET_ARMS:
            raise ValueError(f'unknown arm {arm!r}; choose from {DET_ARMS}')
        if arm == 'reference':
            return self.arm_reference(seed)
        return self._dms(arm, seed, inherit=arm == 'dms_np_inherit',
                         full=arm == 'dms_full_retrain')

    def arm_reference(self, seed: int) -> dict:
        d = self.run_dir(f's{seed}', 'reference', 'train')
        trained = self.step(osp.join(d, 'step.json'), lambda: train_phase(
            self.phase(d, seed, self.total, self.scoped(self.reference_arch), test=True),
            f'reference_s{seed}', test=True))
        return self.finalize('reference', seed, self.scoped(self.reference_arch),
                             dict(train=self.total), trained, d, [trained])

    def _dms(self, arm: str, seed: int, inherit: bool, full: bool = False) -> dict:
        """Retrain the exported structure: from scratch for the iterations the search left
        (``dms_np``), from the searched weights continuing the curve (``inherit``), or from
        scratch for every iteration with the search not counted (``full``, diagnostic)."""
        shared = self.dms_search_export(seed)
        exported = shared['export']
        d = self.run_dir(f's{seed}', arm, 'retrain')
        rest = self.total if full else self.total - self.search_iters
        cfg = self.phase(d, seed, rest, self.pruned_model(exported['structure']), test=True,
                         offset=self.search_iters if inherit else 0,
                         total=self.total if inherit else rest)
        trained = self.step(osp.join(d, 'step.json'), lambda: train_phase(
            cfg, f'{arm}_s{seed}', init_weights=exported['weights'] if inherit else None,
            test=True))
        iters = dict(retrain=rest) if full else dict(search=self.search_iters, retrain=rest)
        return self.finalize(
            arm, seed, self.pruned_model(exported['structure']), iters, trained, d,
            [shared['search'], exported, trained],
            extra=dict(searched_flops_ratio=exported['searched_flops_ratio'],
                       width_scale=exported['width_scale'], export_divisor=exported['divisor'],
                       widths=exported['widths'],
                       structure=osp.relpath(exported['structure'], self.work_dir),
                       retrain_init='searched weights' if inherit else 'scratch',
                       search_cpu_seconds=shared['search'].get('cpu_seconds', 0.0),
                       **(dict(search_iters_not_counted=self.search_iters) if full else {})))

    # ------------------------------------------------------------------ result
    def finalize(self, arm: str, seed: int, model_cfg: dict, iters: Dict[str, int],
                 trained: dict, phase_dir: str, steps: List[dict], extra=None) -> dict:
        if sum(iters.values()) != self.total:
            raise RuntimeError(f'{arm}: {iters} does not add up to {self.total} iterations')
        models = self.models()
        model = build_eval_model(model_cfg)
        counted = complexity(model, self.input_shape)
        coco = coco_per_class(self.test_ann, osp.join(phase_dir, 'test.bbox.json'),
                              self.test_images)
        metrics = trained['metrics']
        result = dict(
            arm=arm, seed=seed,
            mAP=coco['mAP'], mAP_50=coco['mAP_50'], mAP_75=coco['mAP_75'],
            per_class=coco['per_class'], test_images=coco['images'],
            stock_metrics=metrics,
            flops=counted['flops'], params=counted['params'],
            flops_vs_reference=counted['flops'] / models['reference']['flops'],
            flops_vs_supernet=counted['flops'] / models['supernet']['flops'],
            latency_ms=latency_ms(model, self.input_shape,
                                  repeats=int(self.exp.latency.repeats)),
            iters=iters, total_iters=sum(iters.values()),
            epochs=sum(iters.values()) / self.iters_per_epoch,
            attempts=max(s.get('attempts', 1) for s in steps),
            cpu_seconds=sum(s.get('cpu_seconds', 0.0) for s in steps),
            wall_seconds=sum(s.get('wall_seconds', 0.0) for s in steps),
            train_seconds_per_iter=(trained['wall_seconds'] - trained.get(
                'test_wall_seconds', 0.0)) / max(1, trained['iters']),
            **(extra or {}))
        write_json(self.result_path(arm, seed), result)
        return result

    # ------------------------------------------------------------------ latency
    def latency_comparison(self, seed: int, interleaved: Callable) -> Optional[dict]:
        """Batch-1 CPU latency of the reference vs the DMS model, timed interleaved (one call
        of each per round, order alternating; ``interleaved`` from
        tools/analysis_tools/benchmark_latency.py) on ``exp.latency.threads`` threads."""
        structure = osp.join(self.run_dir(f's{seed}', 'dms_export'), 'structure.json')
        if not osp.isfile(structure):
            return None

        def measure():
            import statistics
            cfg = self.exp.latency
            reference = build_eval_model(self.scoped(self.reference_arch))
            dms = build_eval_model(self.pruned_model(structure))
            x = torch.randn(*self.input_shape)
            old = torch.get_num_threads()
            torch.set_num_threads(int(cfg.threads))
            try:
                with torch.no_grad():
                    t_ref, t_dms = interleaved(lambda: reference(x, mode='tensor'),
                                               lambda: dms(x, mode='tensor'),
                                               int(cfg.repeats), int(cfg.warmup))
            finally:
                torch.set_num_threads(old)
            ratios = sorted(b / a for a, b in zip(t_ref, t_dms))
            return dict(threads=int(cfg.threads), rounds=len(t_ref),
                        input_shape=list(self.input_shape),
                        reference_ms=1e3 * statistics.median(t_ref),
                        dms_ms=1e3 * statistics.median(t_dms),
                        reference_min_ms=1e3 * min(t_ref), dms_min_ms=1e3 * min(t_dms),
                        ratio=statistics.median(t_dms) / statistics.median(t_ref),
                        round_ratio_p10=ratios[len(ratios) // 10],
                        round_ratio_p90=ratios[(9 * len(ratios)) // 10])
        return self.step(osp.join(self.work_dir, f'latency_s{seed}.json'), measure)


def load_results(work_dir: str) -> List[dict]:
    import glob
    return [load_json(p) for p in sorted(glob.glob(osp.join(work_dir, 'results', '*.json')))]
