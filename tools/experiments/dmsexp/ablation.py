"""One-factor-at-a-time investigations of an experiment (issue #8: *if DMS does not win,
investigate before concluding*), shared by the CIFAR-10 and BCCD ablation drivers.

An ablation config ``_base_``s the main experiment config and lists ``variants``::

    variants = [dict(name='loss_weight_2', arms=['dms_np'], options={'dms.loss_weight': 2.},
                     seeds=[0],                      # optional, default: the config's seeds
                     question='What the variant asks (one line for the table).')]

Every variant is an ordinary run of the experiment in ``WORK_DIR/<name>`` with ``options``
merged into the main settings. Its rows are paired by seed with the main experiment's
baseline arm (``--reference-work-dir``): the table says what each factor changes against
what the main table already measured.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from mmengine.config import Config

from mmdms.utils.fileio import atomic_write_text


@dataclass
class AblationSpec:
    """What the table of one experiment's ablation shows.

    Args:
        title: the section heading.
        intro: Markdown sentences after the status line (the setting, noise level).
        metric: the result key compared (``top1``, ``mAP``); it also names the row's stats.
        metric_label: its column header and plot axis.
        digits: decimals of the metric.
        baseline_arm: the main experiment's arm every row is paired with (Δ column).
        baseline_label: its short name in the Δ column's header and the plot legend.
        arm_labels: display names of the arms.
        extra_columns: ``(header, fn(last_run) -> str)`` columns from a row's last run.
    """
    title: str
    intro: str
    metric: str
    metric_label: str
    digits: int
    baseline_arm: str
    baseline_label: str
    arm_labels: Dict[str, str]
    extra_columns: Sequence = field(default_factory=tuple)


def add_ablation_args(parser: argparse.ArgumentParser, *, work_dir: str,
                      section: str) -> argparse.ArgumentParser:
    parser.add_argument('--config', help='ablation config (default: the driver\'s, or its '
                        '_smoke variant with --smoke)')
    parser.add_argument('--smoke', action='store_true', help='CI size')
    parser.add_argument('--work-dir', help=f'default: work_dirs/{work_dir}[_smoke]')
    parser.add_argument('--reference-work-dir',
                        help='the main experiment\'s work dir; its runs of the same seeds '
                        'are the reference rows (default: none)')
    parser.add_argument('--variants', nargs='+', help='run only these variants (by name)')
    parser.add_argument('--seeds', type=int, nargs='+', help='override the config\'s default '
                        'seeds (variants that list their own seeds keep them)')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--report-only', action='store_true',
                        help='only rebuild the table and plot from finished runs')
    parser.add_argument('--results-md', help=f'Markdown file whose {section} section is '
                        'rewritten (default: docs/results.md; --smoke: WORK_DIR/results.md)')
    parser.add_argument('--results-dir', help=f'folder for {section}.{{json,png}} '
                        '(default: docs/results; --smoke: WORK_DIR)')
    return parser


def load_ablation(args, config: str, smoke_config: str, known_arms: Sequence[str]) -> Config:
    """The ablation config with ``--seeds`` applied; refuses duplicate variant names, unknown
    arms and unknown ``--variants`` with the known names."""
    cfg = Config.fromfile(args.config or (smoke_config if args.smoke else config))
    if args.seeds:
        cfg.seeds = list(args.seeds)
    names = [v['name'] for v in cfg.variants]
    if len(set(names)) != len(names):
        raise SystemExit(f'variant names must be unique, got {names}')
    for v in cfg.variants:
        unknown = set(v['arms']) - set(known_arms)
        if unknown:
            raise SystemExit(f'variant {v["name"]}: unknown arms {sorted(unknown)}; known: '
                             f'{list(known_arms)}')
    if args.variants:
        missing = set(args.variants) - set(names)
        if missing:
            raise SystemExit(f'unknown variants {sorted(missing)}; known: {names}')
    return cfg


def selected_variants(cfg: Config, only: Optional[Sequence[str]]) -> List[dict]:
    return [v for v in cfg.variants if not only or v['name'] in only]


def variant_experiment(cfg: Config, variant: dict) -> Config:
    """The main experiment's settings with the variant's overrides merged in."""
    exp = Config(cfg.to_dict())
    exp.merge_from_dict(dict(variant.get('options') or {}))
    exp.arms = list(variant['arms'])
    return exp


def variant_seeds(cfg: Config, variant: dict) -> List[int]:
    return [int(x) for x in variant.get('seeds') or cfg.seeds]


def _stats(results: List[dict], metric: str) -> dict:
    values = [r[metric] for r in results]
    return dict(mean=statistics.mean(values),
                std=statistics.stdev(values) if len(values) > 1 else 0.0,
                values=values, seeds=[r['seed'] for r in results])


def collect(cfg: Config, spec: AblationSpec, variant_runs: Callable[[str], List[dict]],
            reference_runs: List[dict]) -> List[dict]:
    """One row per (variant, arm) with the finished runs of its planned seeds, after the
    reference rows (the main experiment's runs of every seed any variant uses).

    ``variant_runs(name)``: the finished results of a variant (already restricted to the
    ablation's budget where the experiment has several)."""
    all_seeds = {s for v in cfg.variants for s in variant_seeds(cfg, v)}
    rows = []
    for arm in spec.arm_labels:
        runs = sorted((r for r in reference_runs if r['arm'] == arm and r['seed'] in all_seeds),
                      key=lambda r: r['seed'])
        if runs:
            rows.append(dict(variant='reference', question='the main experiment (table '
                             'above), same seeds', arm=arm, runs=runs))
    for v in cfg.variants:
        seeds = variant_seeds(cfg, v)
        found = [r for r in variant_runs(v['name']) if r['seed'] in seeds]
        for arm in v['arms']:
            runs = sorted((r for r in found if r['arm'] == arm), key=lambda r: r['seed'])
            rows.append(dict(variant=v['name'], question=v['question'], arm=arm, runs=runs,
                             options=dict(v.get('options') or {})))
    baseline = {r['seed']: r[spec.metric] for row in rows if row['variant'] == 'reference'
                and row['arm'] == spec.baseline_arm for r in row['runs']}
    for row in rows:
        row[spec.metric] = _stats(row['runs'], spec.metric) if row['runs'] else None
        paired = [r[spec.metric] - baseline[r['seed']] for r in row['runs']
                  if r['seed'] in baseline]
        row[f'delta_vs_{spec.baseline_arm}'] = statistics.mean(paired) if paired else None
    return rows


def markdown(rows: List[dict], spec: AblationSpec, plot_rel: Optional[str], command: str,
             pending: int, figures: Sequence = ()) -> str:
    """The section: status, table, plot, ``figures`` (``(caption, relative path)``) and the
    command that reproduces it."""
    status = ('**Final**: every planned run finished.' if not pending else
              f'**Pending**: {pending} planned runs have not finished; their rows say so.')
    baseline = spec.baseline_label
    extra = [header for header, _ in spec.extra_columns]
    lines = [f'## {spec.title}', '', status, '', spec.intro + (
        f' Each variant runs the arms named in its row in a work dir of its own; Δ is the '
        f'mean paired difference to the main experiment\'s {baseline} arm of the same seed.'),
        '', '| ' + ' | '.join(['variant', 'what it asks', 'arm', spec.metric_label,
                               f'Δ vs {baseline}'] + extra) + ' |',
        '|' + '---|' * (5 + len(extra))]
    for r in rows:
        label = spec.arm_labels.get(r['arm'], r['arm'])
        stats = r[spec.metric]
        if not stats:
            lines.append(f'| {r["variant"]} | {r["question"]} | {label} | pending |'
                         + ' |' * (1 + len(extra)))
            continue
        cell = ' / '.join(f'{x:.{spec.digits}f}' for x in stats['values']) + (
            f' (seeds {", ".join(map(str, stats["seeds"]))})' if len(stats['values']) > 1
            else f' (seed {stats["seeds"][0]})')
        if len(stats['values']) > 1:
            cell += f', mean {stats["mean"]:.{spec.digits}f}'
        delta = r[f'delta_vs_{spec.baseline_arm}']
        delta = '' if delta is None else f'{delta:+.{spec.digits}f}'
        last = r['runs'][-1]
        lines.append('| ' + ' | '.join([r['variant'], r['question'], label, cell, delta]
                                       + [fn(last) for _, fn in spec.extra_columns]) + ' |')
    if plot_rel:
        lines += ['', f'![ablation]({plot_rel})']
    for caption, rel in figures:
        lines += ['', f'![figure]({rel})', '', caption]
    lines += ['', '```bash', command, '```']
    return '\n'.join(lines) + '\n'


ARM_COLORS = {'uniform': '#444444', 'reference': '#444444', 'dms_np': '#1f77b4',
              'dms_np_inherit': '#2ca02c', 'dms_full_retrain': '#9467bd',
              'l1_oneshot': '#ff7f0e', 'l1_iterative': '#d62728'}


def plot(rows: List[dict], spec: AblationSpec, path: str, xlabel: str) -> Optional[str]:
    """Every run of every row as a dot, the row mean as a bar, the baseline's mean dashed."""
    done = [r for r in rows if r[spec.metric]]
    if not done:
        return None
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from mmdms.visualization import save_figure
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(done) + 1.4))
    for y, r in enumerate(reversed(done)):
        for x in r[spec.metric]['values']:
            ax.plot(x, y, 'o', color=ARM_COLORS.get(r['arm'], 'k'))
        ax.plot(r[spec.metric]['mean'], y, '|', color='k', ms=12)
    ref = [r for r in done if r['variant'] == 'reference' and r['arm'] == spec.baseline_arm]
    if ref:
        ax.axvline(ref[0][spec.metric]['mean'], color='#444444', ls='--', lw=0.8,
                   label=f'{spec.baseline_label} (main experiment)')
        ax.legend(fontsize=7, loc='lower right')
    ax.set_yticks(range(len(done)))
    ax.set_yticklabels([f'{r["variant"]}: {r["arm"]}' for r in reversed(done)], fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_title('one factor at a time (dots: seeds, bar: mean)', fontsize=9)
    return save_figure(fig, path)


def write_json(path: str, rows: List[dict], run_keys: Sequence[str], **header) -> None:
    """The table as JSON: the rows' stats and, per run, only ``run_keys``."""
    atomic_write_text(path, json.dumps(dict(header, rows=[
        dict({k: v for k, v in r.items() if k != 'runs'},
             runs=[{k: x.get(k) for k in run_keys} for x in r['runs']]) for r in rows]),
        indent=1, sort_keys=True))


def blocks_kept(result: dict) -> str:
    """``kept/total`` removable blocks of a searched structure (``all``: none searched,
    ``n/a``: not a searched model)."""
    if 'widths' not in result:
        return 'n/a'
    depth = [u for u in result['widths'] if u['kind'] == 'block']
    return f'{sum(u["kept"] for u in depth)}/{sum(u["size"] for u in depth)}' if depth else 'all'


def write_report(args, cfg: Config, spec: AblationSpec, *, section: str, driver: str,
                 repo: str, work_dir: str, variant_runs: Callable[[str], List[dict]],
                 reference_runs: List[dict], pending: int, xlabel: str,
                 run_keys: Sequence[str], log,
                 extra_figures: Optional[Callable] = None, **header) -> List[dict]:
    """Rebuild the ``section`` of the results Markdown with its table, plot and reproduce
    command, and ``SECTION.{json,png}`` (``--results-md`` / ``--results-dir``).
    ``extra_figures(rows, results_dir)``: more ``(caption, png path or None)`` to show."""
    from .driver import report_paths, reproduce_command
    from .report import write_section
    results_md, results_dir = report_paths(args, work_dir, repo)
    reference = osp.abspath(args.reference_work_dir) if args.reference_work_dir else None
    rows = collect(cfg, spec, variant_runs, reference_runs)
    png = plot(rows, spec, osp.join(results_dir, f'{section}.png'), xlabel)
    write_json(osp.join(results_dir, f'{section}.json'), rows, run_keys,
               seeds=list(cfg.seeds), **header)
    command = reproduce_command(driver, args, repo, [('work-dir', work_dir),
                                                     ('reference-work-dir', reference)])
    md_dir = osp.dirname(osp.abspath(results_md))
    plot_rel = osp.relpath(png, md_dir) if png else None
    figures = [(caption, osp.relpath(path, md_dir)) for caption, path
               in (extra_figures(rows, results_dir) if extra_figures else []) if path]
    write_section(results_md, section, markdown(rows, spec, plot_rel, command, pending,
                                                figures))
    log(f'ablation table: {results_md}, {results_dir}/{section}.json')
    return rows


def run_variants(args, cfg: Config, work_dir: str, log, *,
                 open_variant: Callable[[dict, Config, str], object],
                 keys: Callable[[dict], List[tuple]], describe: Callable[..., str],
                 run_line: Callable[[dict], str],
                 write_reports: Callable[[int], None]) -> None:
    """Run the selected variants' planned runs (resumable) and rebuild the report.

    ``open_variant(variant, experiment, variant_dir)`` returns the experiment context (with
    ``run(*key)`` and ``result_path(*key)``) after checking the dir's settings; ``keys(variant)``
    lists its runs; ``write_reports(pending)`` rebuilds the report. Exits 1 if a run failed."""
    from .driver import record_invocation, run_plan
    selected = selected_variants(cfg, args.variants)
    contexts, plan = {}, []
    for v in selected:
        vdir = osp.join(work_dir, v['name'])
        os.makedirs(vdir, exist_ok=True)
        contexts[v['name']] = open_variant(v, variant_experiment(cfg, v), vdir)
        plan += [(v['name'], *key) for key in keys(v)]

    def pending() -> int:
        return sum(not osp.isfile(contexts[n].result_path(*key)) for n, *key in plan)

    failures = []
    if not args.report_only:
        start = time.time()
        log(f'{len(plan)} runs planned in {work_dir}: variants {[v["name"] for v in selected]}')
        failures = run_plan(
            plan, lambda n, *key: contexts[n].run(*key),
            lambda n, *key: contexts[n].result_path(*key),
            lambda n, *key: f'{n}: {describe(*key)}', run_line, log,
            after_run=None if args.smoke else lambda: write_reports(pending()))
        record_invocation(work_dir, start, [list(f) for f in failures])
    write_reports(pending())
    if failures:
        log(f'{len(failures)} runs failed: {failures}; run the same command again to retry')
        sys.exit(1)
