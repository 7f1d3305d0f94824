"""Tables (Markdown + JSON) and the searched-vs-uniform width plot from finished runs."""
import glob
import json
import os.path as osp
import statistics
import subprocess
from typing import Dict, List, Optional

from mmdms.utils.fileio import atomic_write_text
from mmdms.visualization import save_figure

ARM_LABELS = {
    'uniform': 'Uniform width scaling (scratch)',
    'dms_np': 'DMS_np (search + retrain from scratch)',
    'dms_np_inherit': 'DMS_np, retrain from searched weights',
    'l1_oneshot': 'L1-magnitude, one-shot',
    'l1_iterative': 'L1-magnitude, iterative',
    'dms_full_retrain': 'DMS_np structure, retrained for all iterations (search not counted)',
}
BEGIN, END = '<!-- {name}:begin -->', '<!-- {name}:end -->'


def load_results(work_dir: str) -> List[dict]:
    results = []
    for path in sorted(glob.glob(osp.join(work_dir, 'results', '*.json'))):
        with open(path) as f:
            results.append(json.load(f))
    return results


def step_totals(work_dir: str) -> dict:
    """CPU and wall seconds of every finished step (shared steps counted once)."""
    cpu = wall = 0.0
    count = 0
    for path in glob.glob(osp.join(work_dir, '**', '*step.json'), recursive=True):
        with open(path) as f:
            step = json.load(f)
        cpu += step.get('cpu_seconds', 0.0)
        wall += step.get('wall_seconds', 0.0)
        count += 1
    return dict(cpu_hours=cpu / 3600, wall_hours=wall / 3600, steps=count)


def step_speeds(work_dir: str, kinds: Dict[str, str]) -> Dict[str, dict]:
    """Median CPU and wall seconds per training iteration (test excluded) of the finished
    steps matching each ``{name: glob pattern under work_dir}``."""
    speeds = {}
    for name, pattern in kinds.items():
        cpu, wall = [], []
        for path in glob.glob(osp.join(work_dir, pattern)):
            with open(path) as f:
                step = json.load(f)
            iters = max(1, step['iters'])
            cpu.append((step['cpu_seconds'] - step.get('test_cpu_seconds', 0.0)) / iters)
            wall.append((step['wall_seconds'] - step.get('test_wall_seconds', 0.0)) / iters)
        if cpu:
            speeds[name] = dict(cpu=statistics.median(cpu), wall=statistics.median(wall),
                                n=len(cpu))
    return speeds


def phase_speeds(work_dir: str) -> Dict[str, dict]:
    """Seconds per iteration of each kind of CIFAR phase (see ``step_speeds``)."""
    kinds = {
        'supernet (L1 pretraining)': 'runs/*/supernet_pretrain/step.json',
        'DMS search (supernet + masks)': 'runs/*/*/dms_search/step.json',
    }
    for budget_dir in sorted(glob.glob(osp.join(work_dir, 'runs', '*', 'b*'))):
        budget = osp.basename(budget_dir)[1:]
        kinds[f'model at {budget} of the FLOPs (uniform arm)'] = \
            f'runs/*/b{budget}/uniform/train/step.json'
    return step_speeds(work_dir, kinds)


def summarize(results: List[dict]) -> List[dict]:
    """Mean and sample std of top-1 per (arm, budget), with FLOPs/params/latency means."""
    groups: Dict[tuple, List[dict]] = {}
    for r in results:
        groups.setdefault((r['arm'], r['budget']), []).append(r)
    rows = []
    for (arm, budget), runs in groups.items():
        top1 = [r['top1'] for r in runs]
        rows.append(dict(
            arm=arm, budget=budget, n=len(runs), seeds=sorted(r['seed'] for r in runs),
            top1_mean=statistics.mean(top1),
            top1_std=statistics.stdev(top1) if len(top1) > 1 else 0.0,
            flops=statistics.mean(r['flops'] for r in runs),
            flops_ratio=statistics.mean(r['flops_ratio'] for r in runs),
            params=statistics.mean(r['params'] for r in runs),
            params_ratio=statistics.mean(r['params_ratio'] for r in runs),
            latency_ms=statistics.median(r['latency_ms'] for r in runs)))
    order = {a: i for i, a in enumerate(ARM_LABELS)}
    return sorted(rows, key=lambda r: (-r['budget'], order.get(r['arm'], 99)))


def git_commit(repo: str) -> str:
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=repo, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=repo, text=True, capture_output=True).stdout.strip()
        return head + (' (with uncommitted changes)' if dirty else '')
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def plot_widths(results: List[dict], path: str) -> Optional[str]:
    """Per-unit kept fraction: uniform (one factor) vs each DMS seed, one panel per budget."""
    budgets = sorted({r['budget'] for r in results if r['arm'] in ('uniform', 'dms_np')},
                     reverse=True)
    if not budgets:
        return None
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(budgets), 1, figsize=(11, 3.6 * len(budgets)), squeeze=False)
    for ax, budget in zip(axes[:, 0], budgets):
        runs = [r for r in results if r['budget'] == budget]
        units = next((r['widths'] for r in runs if r['arm'] in ('uniform', 'dms_np')), [])
        names = [u['unit'].replace('backbone.', '').replace('depth:', 'depth ')
                 for u in units]
        xs = range(len(units))
        ax.bar(xs, [1.0] * len(units), color='#e3e7ee', label='supernet')
        for r in runs:
            kept = [u['kept'] / u['size'] for u in r['widths']]
            if r['arm'] == 'uniform':
                ax.plot(xs, kept, 's-', color='#444444', label='uniform (all arms\' widths '
                        'except DMS)' if r['seed'] == min(x['seed'] for x in runs) else None)
            elif r['arm'] == 'dms_np':
                ax.plot(xs, kept, 'o', alpha=0.8, label=f'DMS seed {r["seed"]}')
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, rotation=60, ha='right', fontsize=7)
        ax.set_ylabel('kept / supernet')
        ax.set_ylim(0, 1.08)
        ax.set_title(f'FLOPs budget {budget:g} of the supernet: per-unit widths (channels) and '
                     'depths (removable blocks)', fontsize=9)
        ax.legend(fontsize=7, loc='lower left', ncol=3)
    return save_figure(fig, path)


def _fmt_budget_table(rows: List[dict], budgets: List[float], arms: List[str]) -> List[str]:
    lines = ['| method | ' + ' | '.join(f'top-1 @ {b:g} FLOPs (%) | MFLOPs (ratio) | '
                                          f'params M (ratio)' for b in budgets) + ' |',
             '|---|' + '---|---|---|' * len(budgets)]
    by_key = {(r['arm'], r['budget']): r for r in rows}
    for arm, label in ARM_LABELS.items():
        if arm not in arms:
            continue
        cells = []
        for b in budgets:
            r = by_key.get((arm, b))
            if r is None:
                cells += ['pending', '', '']
                continue
            n = f' (n={r["n"]})'
            cells += [f'{r["top1_mean"]:.2f} ± {r["top1_std"]:.2f}{n}',
                      f'{r["flops"] / 1e6:.2f} ({r["flops_ratio"]:.3f})',
                      f'{r["params"] / 1e6:.3f} ({r["params_ratio"]:.3f})']
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return lines


def markdown(work_dir: str, plan: List[tuple], settings: dict, results: List[dict],
             plot_rel: Optional[str], command: str, repo: str) -> str:
    rows = summarize(results)
    done = {(r['arm'], r['budget'], r['seed']) for r in results}
    pending = [p for p in plan if p not in done]
    budgets = sorted({b for _, b, _ in plan}, reverse=True)
    totals = step_totals(work_dir)
    speeds = phase_speeds(work_dir)
    s = settings
    status = ('**Final**: all {n} planned runs finished.'.format(n=len(plan)) if not pending
              else f'**Pending**: {len(plan) - len(pending)} of {len(plan)} planned runs '
              'finished; the tables show means over the finished seeds only and will change.')
    lines = [
        '## CIFAR-10: DMS vs uniform scaling vs L1-magnitude pruning at equal FLOPs', '',
        status, '',
        f'Supernet: mmpretrain `ResNet_CIFAR` depth 18, {s["base_channels"]} base channels, '
        f'{s["supernet_mflops"]:.2f} MFLOPs and {s["supernet_mparams"]:.3f} M params at '
        '32x32 (counted by `mmdms.analysis.count_complexity`, i.e. mmengine\'s counting). '
        f'Data: CIFAR-10 JPEGs, training on {s["train_images"]} images, testing on '
        f'{s["test_images"]} test images (class-balanced), stock `mmpretrain.Accuracy`. '
        f'Every arm trains {s["total_iters"]} iterations of batch {s["batch_size"]} '
        f'(~{s["epochs"]:.2f} epochs) with SGD (lr {s["lr"]}, momentum 0.9, nesterov, '
        'weight decay 5e-4), random crop + flip, and one cosine learning-rate curve over the '
        'arm\'s iterations; search and pretraining iterations count against the arm.', '',
        f'* **DMS_np**: DMS search from random init for {s["search_iters"]} iterations '
        f'({s["search_fraction"]:.0%} of the budget; the FLOPs target decays to the budget '
        f'over the first {s.get("decay_fraction", 0.8):.0%} of the search, structure lr '
        f'{s["structure_lr"]} (Adam), resource-loss weight {s["loss_weight"]}, '
        f'{s.get("importance_metric", "taylor")} importance with EMA decay '
        f'{s.get("importance_decay", 0.99)}, '
        f'{"widths and residual blocks" if s.get("prune_depth", True) else "widths only"}), '
        'export rescaled to the budget within 1% '
        '(`export_pruned(target_flops=...)`), then retraining **from scratch** for the '
        f'remaining {s["total_iters"] - s["search_iters"]} iterations with a fresh cosine '
        'curve, as in the paper\'s DMS_np (search, then retrain the found structure). '
        '*DMS_np, retrain from searched weights* is the same search with the exported '
        'weights continuing the cosine curve (reported separately, not the paper\'s recipe).',
        '* **Uniform**: every width unit scaled by one common factor to the budget '
        '(`scale_to_budget` with first-k ranking), trained from scratch.',
        f'* **L1 one-shot**: the supernet trains {s["pretrain_iters"]} iterations, every '
        'width unit is pruned to one common keep factor by the L1 norm of each channel\'s '
        'producing weights (summed over coupled producers, `mmdms.baselines`), then '
        'fine-tunes for the rest, continuing the cosine curve.',
        f'* **L1 iterative**: the same pretraining, then {s["l1_steps"]} prune -> fine-tune '
        f'steps at FLOPs ratios budget^(k/{s["l1_steps"]}), pruning at iterations '
        f'{s["prune_at"]}.', '',
        'Depth: DMS may also remove residual blocks; the baselines keep every block.', '',
        '### Test top-1 (mean ± sample std over seeds), FLOPs and params', '',
        *_fmt_budget_table(rows, budgets, sorted({a for a, _, _ in plan})), '',
    ]
    if pending:
        lines += ['Pending runs (arm, budget, seed): ' +
                  ', '.join(f'({a}, {b:g}, {sd})' for a, b, sd in pending), '']
    lines += ['### Every run', '',
              '| method | budget | seed | top-1 (%) | MFLOPs | FLOPs ratio | params M | '
              'latency ms (1 img, 1 thread) | CPU min | attempts |',
              '|---|---|---|---|---|---|---|---|---|---|']
    order = {a: i for i, a in enumerate(ARM_LABELS)}
    for r in sorted(results, key=lambda r: (-r['budget'], order.get(r['arm'], 99), r['seed'])):
        lines.append(f'| {ARM_LABELS.get(r["arm"], r["arm"])} | {r["budget"]:g} | {r["seed"]} | '
                     f'{r["top1"]:.2f} | {r["flops"] / 1e6:.2f} | {r["flops_ratio"]:.3f} | '
                     f'{r["params"] / 1e6:.3f} | {r["latency_ms"]:.2f} | '
                     f'{r["cpu_seconds"] / 60:.1f} | {r["attempts"]} |')
    lines += ['', 'CPU minutes per run include its shared steps (L1 pretraining, DMS search); '
              'latency was measured on a shared 2-core machine and is indicative only.', '',
              '### Compute', '',
              f'Finished steps: {totals["steps"]}; total process CPU time '
              f'{totals["cpu_hours"]:.2f} h, wall time {totals["wall_hours"]:.2f} h (shared '
              'steps counted once; one torch thread, so wall time above CPU time is time spent '
              'waiting for a core shared with other jobs).',
              '', '| training phase (batch %d) | CPU s / iteration | wall s / iteration | '
              'phases |' % s['batch_size'], '|---|---|---|---|']
    lines += [f'| {name} | {v["cpu"]:.3f} | {v["wall"]:.3f} | {v["n"]} |'
              for name, v in speeds.items()]
    if plot_rel:
        lines += ['', '### Searched widths vs uniform', '',
                  f'![per-unit widths]({plot_rel})', '',
                  'Kept fraction of every width unit (channel group) and depth unit: the '
                  'uniform arm (and both L1 arms, which use the same common keep factor, only '
                  'other channels) against the structure DMS found for each seed.']
    lines += ['', '### Reproduce', '', f'Commit {git_commit(repo)}.', '', '```bash', command,
              '# tables only, from the finished runs:', command + ' --report-only', '```']
    return '\n'.join(lines) + '\n'


def write_section(path: str, name: str, body: str, title: str = '# Results') -> None:
    """Replace the ``name`` section of ``path`` (between markers), keeping the rest."""
    begin, end = BEGIN.format(name=name), END.format(name=name)
    block = f'{begin}\n{body}{end}\n'
    text = open(path).read() if osp.isfile(path) else f'{title}\n\n'
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1].lstrip('\n')
    else:
        text = text.rstrip('\n') + '\n\n' + block
    atomic_write_text(path, text)


def write_json_report(path: str, plan, settings, results) -> None:
    data = dict(settings=settings, planned=[list(p) for p in plan],
                summary=summarize(results), runs=results)
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))
