"""Issue #8, table 2: a DMS-searched YOLOv8 at the FLOPs of YOLOv8-n vs YOLOv8-n itself on BCCD
(MMYOLO, 3 classes), the same recipe and training budget for both, on CPU, resumable:

    python tools/experiments/bccd_yolov8_dms_vs_yolov8n.py --work-dir work_dirs/exp_bccd
    python tools/experiments/bccd_yolov8_dms_vs_yolov8n.py --smoke    # CI size, ~2 min

Every run (arm, seed) is a chain of cached steps (DMS search, export, training + test) under
``--work-dir``; run the same command again after an interruption: finished steps are skipped
and an interrupted training resumes from its last checkpoint (one epoch apart). At the end
(and with ``--report-only``, without training) the report is rebuilt from the finished runs:
the BCCD section of ``docs/results.md``, ``docs/results/bccd.json`` and the plot of searched vs
YOLOv8-n widths ``docs/results/bccd_widths.png`` (``--smoke``: in the work dir). The arms
are described in ``tools/experiments/dmsexp/detection.py``, the settings in
``configs/experiments/bccd_yolov8_dms_vs_yolov8n.py``.
"""
import argparse
import os.path as osp
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
sys.path[:0] = [REPO, HERE, osp.join(REPO, 'tools', 'analysis_tools')]

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

from dmsexp import detection_report as report  # noqa: E402
from dmsexp.detection import DET_ARMS, DetectionExperiment, load_results  # noqa: E402
from dmsexp.driver import (add_experiment_args, check_settings,  # noqa: E402
                           load_experiment_config, make_logger, open_work_dir,
                           record_invocation, report_paths, reproduce_command, run_plan)
from dmsexp.report import write_section  # noqa: E402
from dmsexp.steps import load_json  # noqa: E402
from mmdms.utils import register_all_modules, setup_torch_load  # noqa: E402

CONFIG = osp.join(REPO, 'configs', 'experiments', 'bccd_yolov8_dms_vs_yolov8n.py')
SMOKE_CONFIG = osp.join(REPO, 'configs', 'experiments', 'bccd_yolov8_dms_vs_yolov8n_smoke.py')
# settings that must not change inside one work dir (seeds and arms may be added)
FIXED = ('epochs', 'search_epochs', 'img_size', 'batch_size', 'train_images', 'test_images',
         'search_config', 'train_ann', 'test_ann', 'lr', 'lr_factor', 'warmup_iters',
         'warmup_start_factor', 'reference', 'supernet', 'dms', 'export_divisor',
         'flops_tolerance')


def parse_args():
    return add_experiment_args(
        argparse.ArgumentParser(description='BCCD: DMS-searched YOLOv8 vs YOLOv8-n at equal '
                                'FLOPs (issue #8, table 2)'),
        name='bccd_yolov8_dms_vs_yolov8n', work_dir='exp_bccd', arms=DET_ARMS, section='BCCD',
        results='bccd.json and the width plot',
        smoke='8 images, small input, one iteration-pair per phase',
        example='epochs=30 dms.structure_lr=1e-2').parse_args()


def load_experiment(args) -> Config:
    return load_experiment_config(args, CONFIG, SMOKE_CONFIG, DET_ARMS)


def run_line(r: dict) -> str:
    return (f'mAP {r["mAP"]:.3f}  AP50 {r["mAP_50"]:.3f}  {r["flops"] / 1e9:.4f} GFLOPs '
            f'({r["flops_vs_reference"]:.3f} of YOLOv8-n)  {r["params"] / 1e6:.3f} M params  '
            f'{r["cpu_seconds"] / 3600:.2f} CPU h')


def test_instances(ctx: DetectionExperiment) -> dict:
    """Ground-truth boxes per class on the tested images."""
    coco = load_json(ctx.test_ann)
    images = {img['id'] for img in coco['images'][:ctx.test_images]}
    names = {c['id']: c['name'] for c in coco['categories']}
    counts = {name: 0 for name in names.values()}
    for ann in coco['annotations']:
        if ann['image_id'] in images:
            counts[names[ann['category_id']]] += 1
    return counts


def settings_for_report(ctx: DetectionExperiment, exp: Config) -> dict:
    models = ctx.models()
    return dict(
        classes=list(ctx.base.class_name), test_instances=test_instances(ctx),
        train_images=ctx.train_images,
        test_images=ctx.test_images, img_size=exp.img_size, batch_size=exp.batch_size,
        epochs=exp.epochs, search_epochs=exp.search_epochs,
        iters_per_epoch=ctx.iters_per_epoch, total_iters=ctx.total,
        search_iters=ctx.search_iters, lr=exp.lr, lr_factor=exp.lr_factor,
        warmup_iters=exp.warmup_iters, reference=dict(exp.reference),
        supernet=dict(exp.supernet), dms=dict(exp.dms), export_divisor=exp.export_divisor,
        flops_tolerance=exp.flops_tolerance, target_ratio=models['target_ratio'],
        reference_gflops=models['reference']['flops'] / 1e9,
        reference_mparams=models['reference']['params'] / 1e6,
        supernet_gflops=models['supernet']['flops'] / 1e9,
        supernet_mparams=models['supernet']['params'] / 1e6,
        latency_repeats=exp.latency.repeats, seeds=list(exp.seeds), arms=list(exp.arms),
        search_config=exp.search_config)


def write_reports(args, ctx: DetectionExperiment, exp: Config, plan, work_dir: str,
                  log, measure_latency: bool = True) -> dict:
    results_md, results_dir = report_paths(args, work_dir, REPO)
    results = [r for r in load_results(work_dir) if (r['arm'], r['seed']) in set(plan)]
    settings = settings_for_report(ctx, exp)
    latency = []
    for seed in sorted({sd for _, sd in plan}):
        path = osp.join(work_dir, f'latency_s{seed}.json')
        finished = {a for a, sd in plan if sd == seed} <= {r['arm'] for r in results
                                                            if r['seed'] == seed}
        if osp.isfile(path):
            latency.append(dict(load_json(path), seed=seed))
        elif measure_latency and finished and 'reference' in exp.arms:
            from benchmark_latency import interleaved  # tools/analysis_tools
            measured = ctx.latency_comparison(seed, interleaved)
            if measured:
                latency.append(dict(measured, seed=seed))
    plot = report.plot_widths(results, ctx.models()['reference_widths'],
                              osp.join(results_dir, 'bccd_widths.png'))
    json_path = osp.join(results_dir, 'bccd.json')
    report.write_json_report(json_path, plan, settings, results, latency)
    command = reproduce_command('tools/experiments/bccd_yolov8_dms_vs_yolov8n.py', args,
                                REPO, [('work-dir', work_dir)])
    plot_rel = osp.relpath(plot, osp.dirname(osp.abspath(results_md))) if plot else None
    write_section(results_md, 'bccd', report.markdown(
        work_dir, plan, settings, results, latency, plot_rel, command, REPO,
        notes=list(exp.get('notes') or [])))
    log(f'report: {results_md}, {json_path}' + (f', plot: {plot}' if plot else '')
        + f'; {len(results)}/{len(plan)} runs finished')
    return dict(results_md=results_md, json=json_path, plot=plot)


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    setup_torch_load()
    torch.set_num_threads(args.threads)
    exp = load_experiment(args)
    work_dir = open_work_dir(args, 'exp_bccd', REPO)
    check_settings(work_dir, exp, FIXED)
    log = make_logger(work_dir)
    ctx = DetectionExperiment(exp, work_dir, REPO, log)
    # a seed's runs in order: the reference first, then the DMS arms sharing one search
    plan = [(arm, int(s)) for s in exp.seeds for arm in DET_ARMS if arm in exp.arms]
    failures = []
    if not args.report_only:
        start = time.time()
        models = ctx.models()
        log(f'{len(plan)} runs planned in {work_dir}: arms {list(exp.arms)}, seeds '
            f'{list(exp.seeds)}, {ctx.total} iterations each ({exp.epochs} epochs of '
            f'{ctx.iters_per_epoch}), DMS search {ctx.search_iters}; YOLOv8-n '
            f'{models["reference"]["flops"] / 1e9:.4f} GFLOPs, supernet '
            f'{models["supernet"]["flops"] / 1e9:.4f} GFLOPs, target ratio '
            f'{models["target_ratio"]:.4f}')

        def report_after_run():  # keeps the docs current if a long job is cut off
            write_reports(args, ctx, exp, plan, work_dir, log)

        failures = run_plan(plan, ctx.run, ctx.result_path,
                            lambda arm, seed: f'{arm:15s} seed {seed}', run_line, log,
                            after_run=None if args.smoke else report_after_run)
        record_invocation(work_dir, start, [list(f) for f in failures])
    write_reports(args, ctx, exp, plan, work_dir, log, measure_latency=not args.report_only)
    if failures:
        log(f'{len(failures)} runs failed: {failures}; run the same command again to retry')
        sys.exit(1)


if __name__ == '__main__':
    main()
