"""Issue #8, table 1: DMS_np vs uniform width scaling vs L1-magnitude pruning at equal FLOPs
on CIFAR-10, on CPU, resumable, with one command:

    python tools/experiments/cifar10_dms_vs_baselines.py --work-dir work_dirs/exp_cifar10
    python tools/experiments/cifar10_dms_vs_baselines.py --smoke      # CI size, ~1 min

A pilot (one run with overridden settings, in a work dir of its own; pass ``--results-md``
and ``--results-dir`` too, or its tables replace those of docs/results.md)::

    python tools/experiments/cifar10_dms_vs_baselines.py --work-dir work_dirs/exp_pilot/x
        --arms dms_np --budgets 0.5 --seeds 0 --cfg-options search_fraction=0.1

Every run (arm, budget, seed) is a chain of steps (search, export, prune, train, test);
each finished step stores a JSON and each run a result JSON under ``--work-dir``, written
atomically. Run the same command again after an interruption: finished runs and steps are
skipped, an interrupted MMEngine training resumes from its last checkpoint. At the end (and
with ``--report-only``, without training) the tables are rebuilt from the finished runs:
the CIFAR-10 section of ``docs/results.md``, ``docs/results/cifar10.json`` and the plot of
searched vs uniform widths ``docs/results/cifar10_widths.png`` (``--smoke``: in the work dir).
The arms are described in ``tools/experiments/dmsexp/arms.py``, the settings in
``configs/experiments/cifar10_dms_vs_baselines.py``.
"""
import argparse
import os.path as osp
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
sys.path[:0] = [REPO, HERE]

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

from dmsexp import report  # noqa: E402
from dmsexp.arms import ARMS, FIXED_SETTINGS, Experiment  # noqa: E402
from dmsexp.data import write_split  # noqa: E402
from dmsexp.driver import (add_experiment_args, check_settings,  # noqa: E402
                           load_experiment_config, make_logger, open_work_dir,
                           record_invocation, report_paths, reproduce_command, run_plan)
from mmdms.utils import register_all_modules, setup_torch_load  # noqa: E402

CONFIG = osp.join(REPO, 'configs', 'experiments', 'cifar10_dms_vs_baselines.py')
SMOKE_CONFIG = osp.join(REPO, 'configs', 'experiments', 'cifar10_dms_vs_baselines_smoke.py')


def parse_args():
    parser = add_experiment_args(
        argparse.ArgumentParser(description='CIFAR-10: DMS_np vs uniform scaling vs '
                                'L1-magnitude pruning at equal FLOPs (issue #8, table 1)'),
        name='cifar10_dms_vs_baselines', work_dir='exp_cifar10', arms=ARMS, section='CIFAR-10',
        results='cifar10.json and the width plot',
        smoke='tiny subset, one seed and budget, a few iterations',
        example='dms.structure_lr=5e-3 search_fraction=0.2')
    parser.add_argument('--budgets', type=float, nargs='+',
                        help='FLOPs budgets as fractions of the supernet (e.g. 0.5 0.25)')
    return parser.parse_args()


def load_experiment(args) -> Config:
    exp = load_experiment_config(args, CONFIG, SMOKE_CONFIG, ARMS,
                                 list_keys=('seeds', 'budgets', 'arms'))
    if any(not 0 < b < 1 for b in exp.budgets):
        raise SystemExit(f'budgets must be fractions in (0, 1), got {exp.budgets}')
    if not osp.isabs(exp.data_root):
        exp.data_root = osp.join(REPO, exp.data_root)
    return exp


def run_head(arm: str, budget: float, seed: int) -> str:
    return f'{arm:15s} budget {budget:<5g} seed {seed}'


def run_line(r: dict) -> str:
    return (f'top-1 {r["top1"]:6.2f}%  {r["flops"] / 1e6:6.2f} MFLOPs '
            f'({r["flops_ratio"]:.3f})  {r["params"] / 1e6:.3f} M params  '
            f'{r["wall_seconds"] / 60:5.1f} min wall (shared steps included)')


def settings_for_report(ctx: Experiment, exp: Config, splits: dict) -> dict:
    supernet = ctx.supernet()
    counts = {k: sum(1 for _ in open(v[0])) for k, v in splits.items()}
    return dict(
        base_channels=exp.architecture.backbone.base_channels,
        supernet_mflops=supernet['flops'] / 1e6, supernet_mparams=supernet['params'] / 1e6,
        supernet_latency_ms=supernet['latency_ms'],
        train_images=counts['train'], test_images=counts['test'],
        total_iters=ctx.total, batch_size=exp.batch_size,
        epochs=ctx.total * exp.batch_size / counts['train'], lr=exp.optimizer.lr,
        search_iters=ctx.search_iters, search_fraction=exp.search_fraction,
        structure_lr=exp.dms.structure_lr, loss_weight=exp.dms.loss_weight,
        decay_fraction=exp.dms.decay_fraction, importance_metric=exp.dms.importance_metric,
        importance_decay=exp.dms.get('importance_decay', 0.99),
        prune_depth=exp.dms.get('prune_depth', True),
        pretrain_iters=ctx.pretrain_iters, l1_steps=exp.l1_iterative_steps,
        prune_at=ctx.iterative_schedule(), budgets=list(exp.budgets), seeds=list(exp.seeds),
        arms=list(exp.arms))


def write_reports(args, ctx: Experiment, exp: Config, splits: dict, plan, work_dir: str,
                  log) -> None:
    """Tables (Markdown section, JSON) and width plot from the finished runs of ``plan``."""
    results_md, results_dir = report_paths(args, work_dir, REPO)
    results = [r for r in report.load_results(work_dir)
               if (r['arm'], r['budget'], r['seed']) in set(plan)]
    settings = settings_for_report(ctx, exp, splits)
    plot = report.plot_widths(results, osp.join(results_dir, 'cifar10_widths.png'))
    report.write_json_report(osp.join(results_dir, 'cifar10.json'), plan, settings, results)
    command = reproduce_command('tools/experiments/cifar10_dms_vs_baselines.py', args, REPO,
                                [('work-dir', work_dir)])
    plot_rel = osp.relpath(plot, osp.dirname(osp.abspath(results_md))) if plot else None
    report.write_section(results_md, 'cifar10', report.markdown(
        work_dir, plan, settings, results, plot_rel, command, REPO))
    log(f'tables: {results_md}, {osp.join(results_dir, "cifar10.json")}'
        + (f', plot: {plot}' if plot else '') + f'; {len(results)}/{len(plan)} runs finished')


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    setup_torch_load()
    torch.set_num_threads(args.threads)
    exp = load_experiment(args)
    work_dir = open_work_dir(args, 'exp_cifar10', REPO)
    check_settings(work_dir, exp, FIXED_SETTINGS)
    log = make_logger(work_dir)
    split_dir = osp.join(work_dir, 'splits')
    splits = dict(train=write_split(exp.data_root, 'train', exp.train_per_class, split_dir),
                  test=write_split(exp.data_root, 'test', exp.test_per_class, split_dir))
    ctx = Experiment(exp, work_dir, splits, log)
    plan = [(arm, float(b), int(s)) for s in exp.seeds for b in exp.budgets for arm in exp.arms]
    failures = []

    def report_after_run():  # keeps docs current if a long job is cut off
        write_reports(args, ctx, exp, splits, plan, work_dir, log)

    if not args.report_only:
        start = time.time()
        log(f'{len(plan)} runs planned in {work_dir} (arms {list(exp.arms)}, budgets '
            f'{list(exp.budgets)}, seeds {list(exp.seeds)}, {ctx.total} iterations each)')
        failures = run_plan(plan, ctx.run, ctx.result_path, run_head, run_line, log,
                            after_run=None if args.smoke else report_after_run)
        record_invocation(work_dir, start, failures)

    write_reports(args, ctx, exp, splits, plan, work_dir, log)
    if failures:
        log(f'{len(failures)} runs failed: {failures}; run the same command again to retry')
        sys.exit(1)


if __name__ == '__main__':
    main()
