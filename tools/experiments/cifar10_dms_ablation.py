"""Issue #8, investigation of table 1: one-factor-at-a-time variants of the CIFAR-10 DMS_np
experiment (search cost, searched structure alone, depth pruning, search length, structure
lr, resource-loss weight, importance EMA), at one budget, resumable:

    python tools/experiments/cifar10_dms_ablation.py \\
        --work-dir work_dirs/exp_cifar10_ablation --reference-work-dir work_dirs/exp_cifar10_v2
    python tools/experiments/cifar10_dms_ablation.py --smoke      # CI size

Every variant is an ordinary run of ``dmsexp.arms.Experiment`` in ``WORK_DIR/<variant>``
with the variant's overrides merged into the main experiment config (so a variant keeps the
settings it was started with, like the main driver's work dirs). The table compares each
variant with the main experiment's runs of the same budget and seeds (the reference rows)
and is written to the ``cifar10_ablation`` section of ``docs/results.md``, with
``docs/results/cifar10_ablation.{json,png}`` (``--smoke``: in the work dir). Variants are
listed in ``configs/experiments/cifar10_dms_ablation.py``.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time
from typing import Dict, List

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
sys.path[:0] = [REPO, HERE]

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

from cifar10_dms_vs_baselines import run_head, run_line  # noqa: E402
from dmsexp import report  # noqa: E402
from dmsexp.arms import ARMS, FIXED_SETTINGS, Experiment  # noqa: E402
from dmsexp.data import write_split  # noqa: E402
from dmsexp.driver import (check_settings, make_logger, open_work_dir,  # noqa: E402
                           record_invocation, report_paths, reproduce_command, run_plan)
from mmdms.utils import register_all_modules, setup_torch_load  # noqa: E402
from mmdms.utils.fileio import atomic_write_text  # noqa: E402

CONFIG = osp.join(REPO, 'configs', 'experiments', 'cifar10_dms_ablation.py')
SMOKE_CONFIG = osp.join(REPO, 'configs', 'experiments', 'cifar10_dms_ablation_smoke.py')


def parse_args():
    parser = argparse.ArgumentParser(
        description='CIFAR-10: why DMS_np loses -- one-factor-at-a-time variants (issue #8)')
    parser.add_argument('--config', help='ablation config (default: configs/experiments/'
                        'cifar10_dms_ablation.py, or its _smoke variant with --smoke)')
    parser.add_argument('--smoke', action='store_true', help='CI size')
    parser.add_argument('--work-dir', help='default: work_dirs/exp_cifar10_ablation[_smoke]')
    parser.add_argument('--reference-work-dir',
                        help='the main experiment\'s work dir; its runs at the same budget '
                        'and seeds are the reference rows (default: none)')
    parser.add_argument('--variants', nargs='+', help='run only these variants (by name)')
    parser.add_argument('--seeds', type=int, nargs='+', help='override the config\'s default '
                        'seeds (variants that list their own seeds keep them)')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--report-only', action='store_true',
                        help='only rebuild the table and plot from finished runs')
    parser.add_argument('--results-md', help='Markdown file whose cifar10_ablation section is '
                        'rewritten (default: docs/results.md; --smoke: WORK_DIR/results.md)')
    parser.add_argument('--results-dir', help='folder for cifar10_ablation.{json,png} '
                        '(default: docs/results; --smoke: WORK_DIR)')
    return parser.parse_args()


def load_ablation(args) -> Config:
    cfg = Config.fromfile(args.config or (SMOKE_CONFIG if args.smoke else CONFIG))
    if args.seeds:
        cfg.seeds = list(args.seeds)
    names = [v['name'] for v in cfg.variants]
    if len(set(names)) != len(names):
        raise SystemExit(f'variant names must be unique, got {names}')
    for v in cfg.variants:
        unknown = set(v['arms']) - set(ARMS)
        if unknown:
            raise SystemExit(f'variant {v["name"]}: unknown arms {sorted(unknown)}; known: '
                             f'{ARMS}')
    if args.variants:
        missing = set(args.variants) - set(names)
        if missing:
            raise SystemExit(f'unknown variants {sorted(missing)}; known: {names}')
    if not osp.isabs(cfg.data_root):
        cfg.data_root = osp.join(REPO, cfg.data_root)
    return cfg


def variant_experiment(cfg: Config, variant: dict) -> Config:
    """The main experiment's settings with the variant's overrides merged in."""
    exp = Config(cfg.to_dict())
    exp.merge_from_dict(dict(variant.get('options') or {}))
    exp.arms = list(variant['arms'])
    return exp


def _top1(results: List[dict]) -> dict:
    values = [r['top1'] for r in results]
    return dict(mean=statistics.mean(values),
                std=statistics.stdev(values) if len(values) > 1 else 0.0,
                values=values, seeds=[r['seed'] for r in results])


def _depth_kept(result: dict) -> str:
    depth = [u for u in result['widths'] if u['kind'] == 'block']
    return f'{sum(u["kept"] for u in depth)}/{sum(u["size"] for u in depth)}' if depth else 'all'


def variant_seeds(cfg: Config, variant: dict) -> List[int]:
    return [int(x) for x in variant.get('seeds') or cfg.seeds]


def collect(cfg: Config, work_dir: str, reference_dir, budget: float) -> List[dict]:
    """One row per (variant, arm) with the finished runs of its planned seeds; the reference
    rows hold the main experiment's runs of every seed any variant uses."""
    all_seeds = sorted({s for v in cfg.variants for s in variant_seeds(cfg, v)})
    rows = []
    if reference_dir:
        ref = [r for r in report.load_results(reference_dir)
               if r['budget'] == budget and r['seed'] in all_seeds]
        for arm in report.ARM_LABELS:
            runs = sorted((r for r in ref if r['arm'] == arm), key=lambda r: r['seed'])
            if runs:
                rows.append(dict(variant='reference', question='the main experiment (table '
                                 'above), same budget and seeds', arm=arm, runs=runs))
    for v in cfg.variants:
        seeds = variant_seeds(cfg, v)
        found = [r for r in report.load_results(osp.join(work_dir, v['name']))
                 if r['budget'] == budget and r['seed'] in seeds]
        for arm in v['arms']:
            runs = sorted((r for r in found if r['arm'] == arm), key=lambda r: r['seed'])
            rows.append(dict(variant=v['name'], question=v['question'], arm=arm, runs=runs,
                             options=dict(v.get('options') or {})))
    uniform = {r['seed']: r['top1'] for row in rows if row['variant'] == 'reference'
               and row['arm'] == 'uniform' for r in row['runs']}
    for row in rows:
        row['top1'] = _top1(row['runs']) if row['runs'] else None
        paired = [r['top1'] - uniform[r['seed']] for r in row['runs'] if r['seed'] in uniform]
        row['delta_vs_uniform'] = statistics.mean(paired) if paired else None
    return rows


def markdown(rows: List[dict], budget: float, plot_rel, command: str,
             pending: int) -> str:
    status = ('**Final**: every planned run finished.' if not pending else
              f'**Pending**: {pending} planned runs have not finished; their rows say so.')
    lines = ['## CIFAR-10: why DMS_np retrained from scratch loses (investigation)', '',
             status, '',
             f'One factor at a time against the main experiment\'s settings, at {budget:g} of '
             f'the supernet\'s FLOPs. Each variant '
             'runs the arms named in its row in a work dir of its own; Δ is the mean paired '
             'difference to the main experiment\'s uniform arm of the same seed. Single-seed '
             'differences below ~1 point are within the seed noise of the main table.', '',
             '| variant | what it asks | arm | top-1 (%) | Δ vs uniform | FLOPs ratio | '
             'blocks kept (last seed) |', '|---|---|---|---|---|---|---|']
    for r in rows:
        label = report.ARM_LABELS.get(r['arm'], r['arm'])
        if not r['top1']:
            lines.append(f'| {r["variant"]} | {r["question"]} | {label} | pending | | | |')
            continue
        t = r['top1']
        cell = ' / '.join(f'{x:.2f}' for x in t['values']) + (
            f' (seeds {", ".join(map(str, t["seeds"]))})' if len(t['values']) > 1
            else f' (seed {t["seeds"][0]})')
        if len(t['values']) > 1:
            cell += f', mean {t["mean"]:.2f}'
        delta = ('' if r['delta_vs_uniform'] is None
                 else f'{r["delta_vs_uniform"]:+.2f}')
        last = r['runs'][-1]
        lines.append(f'| {r["variant"]} | {r["question"]} | {label} | {cell} | {delta} | '
                     f'{last["flops_ratio"]:.3f} | {_depth_kept(last)} |')
    if plot_rel:
        lines += ['', f'![ablation]({plot_rel})']
    lines += ['', '```bash', command, '```']
    return '\n'.join(lines) + '\n'


def plot(rows: List[dict], path: str):
    done = [r for r in rows if r['top1']]
    if not done:
        return None
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from mmdms.visualization import save_figure
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(done) + 1.4))
    colors = {'uniform': '#444444', 'dms_np': '#1f77b4', 'dms_np_inherit': '#2ca02c',
              'dms_full_retrain': '#9467bd', 'l1_oneshot': '#ff7f0e', 'l1_iterative': '#d62728'}
    for y, r in enumerate(reversed(done)):
        for x in r['top1']['values']:
            ax.plot(x, y, 'o', color=colors.get(r['arm'], 'k'))
        ax.plot(r['top1']['mean'], y, '|', color='k', ms=12)
    ref = [r for r in done if r['variant'] == 'reference' and r['arm'] == 'uniform']
    if ref:
        ax.axvline(ref[0]['top1']['mean'], color='#444444', ls='--', lw=0.8,
                   label='uniform (main experiment)')
        ax.legend(fontsize=7, loc='lower right')
    ax.set_yticks(range(len(done)))
    ax.set_yticklabels([f'{r["variant"]}: {r["arm"]}' for r in reversed(done)], fontsize=7)
    ax.set_xlabel('CIFAR-10 test top-1 (%)')
    ax.set_title('DMS_np investigation: one factor at a time (dots: seeds, bar: mean)',
                 fontsize=9)
    return save_figure(fig, path)


def write_reports(args, cfg: Config, work_dir: str, pending: int, log) -> None:
    results_md, results_dir = report_paths(args, work_dir, REPO)
    budget = float(cfg.budgets[0])
    reference = osp.abspath(args.reference_work_dir) if args.reference_work_dir else None
    rows = collect(cfg, work_dir, reference, budget)
    png = plot(rows, osp.join(results_dir, 'cifar10_ablation.png'))
    atomic_write_text(osp.join(results_dir, 'cifar10_ablation.json'), json.dumps(
        dict(budget=budget, seeds=list(cfg.seeds), rows=[
            dict({k: v for k, v in r.items() if k != 'runs'},
                 runs=[{k: x[k] for k in ('seed', 'top1', 'flops_ratio', 'params',
                                          'structure')} for x in r['runs']])
            for r in rows]), indent=1, sort_keys=True))
    command = reproduce_command('tools/experiments/cifar10_dms_ablation.py', args, REPO,
                                [('work-dir', work_dir), ('reference-work-dir', reference)])
    plot_rel = osp.relpath(png, osp.dirname(osp.abspath(results_md))) if png else None
    report.write_section(results_md, 'cifar10_ablation', markdown(
        rows, budget, plot_rel, command, pending))
    log(f'ablation table: {results_md}, {results_dir}/cifar10_ablation.json')


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    setup_torch_load()
    torch.set_num_threads(args.threads)
    cfg = load_ablation(args)
    work_dir = open_work_dir(args, 'exp_cifar10_ablation', REPO)
    log = make_logger(work_dir, tag='ablation')
    split_dir = osp.join(work_dir, 'splits')
    splits = dict(train=write_split(cfg.data_root, 'train', cfg.train_per_class, split_dir),
                  test=write_split(cfg.data_root, 'test', cfg.test_per_class, split_dir))
    budget = float(cfg.budgets[0])
    selected = [v for v in cfg.variants if not args.variants or v['name'] in args.variants]
    contexts: Dict[str, Experiment] = {}
    plan = []
    for v in selected:
        exp = variant_experiment(cfg, v)
        vdir = osp.join(work_dir, v['name'])
        os.makedirs(vdir, exist_ok=True)
        check_settings(vdir, exp, FIXED_SETTINGS)
        contexts[v['name']] = Experiment(exp, vdir, splits, make_logger(vdir, tag='ablation'))
        plan += [(v['name'], arm, budget, s) for s in variant_seeds(cfg, v) for arm in v['arms']]

    def pending() -> int:
        return sum(not osp.isfile(contexts[n].result_path(a, b, s)) for n, a, b, s in plan)

    failures = []
    if not args.report_only:
        start = time.time()
        log(f'{len(plan)} runs planned in {work_dir}: variants {[v["name"] for v in selected]}')
        failures = run_plan(
            plan, lambda n, a, b, s: contexts[n].run(a, b, s),
            lambda n, a, b, s: contexts[n].result_path(a, b, s),
            lambda n, a, b, s: f'{n}: {run_head(a, b, s)}', run_line, log,
            after_run=None if args.smoke else lambda: write_reports(
                args, cfg, work_dir, pending(), log))
        record_invocation(work_dir, start, failures)
    write_reports(args, cfg, work_dir, pending(), log)
    if failures:
        log(f'{len(failures)} runs failed: {failures}; run the same command again to retry')
        sys.exit(1)


if __name__ == '__main__':
    main()
