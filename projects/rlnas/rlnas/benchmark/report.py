"""Tables and plot of the NAS-Bench-Macro benchmark (projects/rlnas/tools/run_benchmark.py).

Reads the run's work dir (supernet weights, one-shot sample, search results), scores all
architectures by angle, and writes ``report.json``, ``report.md`` and ``angle_vs_accuracy.png``
there and into the results dir.
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict

import numpy as np

from ..utils import atomic_write_json, atomic_write_text
from .nas_bench_macro import NASBenchMacro, rank_correlations, ties_at_max

LABELS = ('random', 'true')


ABLATIONS = {  # (include_fixed, weight_free) -> name
    (True, 'tensor'): 'as defined (fixed layers, identity = I)',
    (False, 'tensor'): 'without the fixed layers',
    (True, 'drop'): 'identity dropped instead of I',
    (False, 'drop'): 'without fixed layers, identity dropped',
}


def angles_of_all(work_dir: str, bench: NASBenchMacro, ablations: dict = None
                  ) -> Dict[str, np.ndarray]:
    """Angle of every benchmark architecture for each supernet (layer-wise, no data).

    With ``ablations`` (a dict to fill), also the correlations of the metric's variants."""
    from mmengine.config import Config

    from ..engine.search_loop import load_state_dict
    from ..search import LayerwiseAngleScorer, load_models_for_angle
    out = {}
    for label in LABELS:
        folder = osp.join(work_dir, f'supernet_{label}')
        cfg = Config.fromfile(osp.join(folder, f'supernet_nbm_cifar10_{label}-label.py'))
        model0, model_t = load_models_for_angle(
            cfg.model, load_state_dict(osp.join(folder, 'init_weights.pth')),
            load_state_dict(osp.join(folder, 'final_weights.pth')))
        out[label] = LayerwiseAngleScorer(model0, model_t).score_many(bench.arch_tuples())
        if ablations is not None:
            for (fixed, weight_free), name in ABLATIONS.items():
                theta = LayerwiseAngleScorer(model0, model_t, fixed, weight_free).score_many(
                    bench.arch_tuples())
                ablations.setdefault(name, {})[label] = rank_correlations(theta, bench.mean_acc)
    return out


def _load(path: str):
    with open(path) as f:
        return json.load(f)


def build_report(work_dir: str, settings: dict) -> dict:
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    bench = NASBenchMacro()
    ablations = {}
    angles = angles_of_all(work_dir, bench, ablations)
    acc = bench.mean_acc
    scores = {'angle, random labels (RLNAS)': angles['random'],
              'angle, true labels': angles['true'],
              'params': bench.params, 'FLOPs': bench.flops}
    corr_all = {name: rank_correlations(s, acc) for name, s in scores.items()}

    oneshot = _load(osp.join(work_dir, 'oneshot_true.json'))
    sample = np.array([bench.index[a] for a in oneshot])
    oneshot_acc = np.array(list(oneshot.values()))
    corr_sample = {name: rank_correlations(s[sample], acc[sample]) for name, s in scores.items()}
    corr_sample['one-shot accuracy, true labels (SPOS)'] = rank_correlations(
        oneshot_acc, acc[sample])

    top1 = {}
    for name, s in scores.items():
        if name.startswith('angle'):
            top1[name + ', exhaustive'] = bench.lookup(bench.archs[int(np.argmax(s))])
    for label in LABELS:
        res = _load(osp.join(work_dir, f'search_angle_{label}_none', 'search_results.json'))
        top1[f'angle, {label} labels, evolution'] = dict(
            bench.lookup(res['best']['arch']), evaluated=res['num_evaluated'])
    best_sampled = list(oneshot)[int(np.argmax(oneshot_acc))]
    top1[f'one-shot accuracy, best of {len(oneshot)} sampled'] = bench.lookup(best_sampled)
    top1['max FLOPs'] = bench.lookup(bench.archs[int(np.argmax(bench.flops))])
    top1['oracle (benchmark best)'] = bench.lookup(bench.archs[int(np.argmax(acc))])

    budgets = {}
    for q in settings.get('budgets', '25,50').split(','):
        name = f'p{q}'
        flops = float(np.percentile(bench.flops, int(q)))
        within = bench.flops <= flops
        picks = {}
        for label in LABELS:
            res = _load(osp.join(work_dir, f'search_angle_{label}_{name}',
                                 'search_results.json'))
            picks[f'angle, {label} labels (evolution)'] = dict(
                bench.lookup(res['best']['arch']), evaluated=res['num_evaluated'])
        res = _load(osp.join(work_dir, f'search_accuracy_true_{name}', 'search_results.json'))
        picks['one-shot accuracy, true labels (evolution)'] = dict(
            bench.lookup(res['best']['arch']), evaluated=res['num_evaluated'])
        ties = ties_at_max(bench.flops, within)
        picks['max FLOPs under budget'] = dict(
            bench.lookup(bench.archs[ties[0]]), tied=len(ties),
            tied_mean_acc=float(acc[ties].mean()), tied_rank_range=[
                int(bench.ranks[ties].min()), int(bench.ranks[ties].max())])
        picks['oracle (best under budget)'] = bench.best_under(flops)
        budgets[name] = dict(flops=flops, num_within=int(within.sum()), picks=picks)

    # FLOPs alone ranks this benchmark well; within a FLOPs quartile it cannot, so these show
    # what a score adds beyond size
    edges = np.percentile(bench.flops, [0, 25, 50, 75, 100])
    bins = {}
    for i in range(4):
        inside = (bench.flops >= edges[i]) & (bench.flops <= edges[i + 1] if i == 3
                                              else bench.flops < edges[i + 1])
        bins[f'Q{i + 1} ({edges[i] / 1e6:.1f}-{edges[i + 1] / 1e6:.1f} MFLOPs, '
             f'{int(inside.sum())} archs)'] = {
                 name: rank_correlations(s[inside], acc[inside])['kendall_tau']
                 for name, s in scores.items()}

    return dict(settings=settings, num_archs=len(bench), correlations_all=corr_all,
                correlations_sample=corr_sample, sample_size=len(oneshot), top1=top1,
                budgets=budgets, angle_ablations=ablations, flops_bins=bins, angles=angles,
                bench=bench)


def _fmt_pick(p: dict) -> str:
    return f'`{p["arch"]}` | {p["mean_acc"]:.2f} | {p["rank"]} | {p["flops"] / 1e6:.1f}'


def to_markdown(report: dict, timing: dict) -> str:
    n = report['num_archs']
    lines = [f'### Rank correlation with NAS-Bench-Macro mean_acc (all {n} architectures)', '',
             '| score | Kendall τ | Spearman ρ |', '|---|---|---|']
    for name, c in report['correlations_all'].items():
        lines.append(f'| {name} | {c["kendall_tau"]:.3f} | {c["spearman_rho"]:.3f} |')
    lines += ['', f'### On the {report["sample_size"]} architectures scored by one-shot accuracy',
              '', '| score | Kendall τ | Spearman ρ |', '|---|---|---|']
    for name, c in report['correlations_sample'].items():
        lines.append(f'| {name} | {c["kendall_tau"]:.3f} | {c["spearman_rho"]:.3f} |')
    names = list(report['correlations_all'])
    lines += ['', '### Kendall τ within FLOPs quartiles', '',
              '| FLOPs bin | ' + ' | '.join(names) + ' |', '|---' * (len(names) + 1) + '|']
    for bin_name, taus in report['flops_bins'].items():
        lines.append(f'| {bin_name} | ' + ' | '.join(f'{taus[n]:.3f}' for n in names) + ' |')
    lines += ['', '### Angle variants (Kendall τ, all architectures)', '',
              '| V(a, W) | random labels | true labels |', '|---|---|---|']
    for name, c in report['angle_ablations'].items():
        lines.append(f'| {name} | {c["random"]["kendall_tau"]:.3f} | '
                     f'{c["true"]["kendall_tau"]:.3f} |')
    lines += ['', '### Top-1 architecture (no budget)', '',
              '| method | arch | bench acc (%) | rank / 6561 | MFLOPs |', '|---|---|---|---|---|']
    for name, p in report['top1'].items():
        lines.append(f'| {name} | {_fmt_pick(p)} |')
    for name, b in report['budgets'].items():
        lines += ['', f'### Budget {name}: FLOPs ≤ {b["flops"] / 1e6:.2f} M '
                  f'({b["num_within"]} architectures)', '',
                  '| method | arch | bench acc (%) | rank / 6561 | MFLOPs | note |',
                  '|---|---|---|---|---|---|']
        for method, p in b['picks'].items():
            note = ''
            if 'evaluated' in p:
                note = f'{p["evaluated"]} candidates scored'
            if 'tied' in p and p['tied'] > 1:
                note = (f'{p["tied"]} archs tie at max FLOPs: mean acc {p["tied_mean_acc"]:.2f}, '
                        f'ranks {p["tied_rank_range"][0]}–{p["tied_rank_range"][1]}')
            lines.append(f'| {method} | {_fmt_pick(p)} | {note} |')
    if timing:
        lines += ['', '### Time (this machine)', '', '| step | wall (s) | CPU (s) |',
                  '|---|---|---|']
        for step, t in timing.items():
            lines.append(f'| {step} | {t["wall_s"]:.0f} | {t["cpu_s"]:.0f} |')
        lines.append(f'| total | {sum(t["wall_s"] for t in timing.values()):.0f} | '
                     f'{sum(t["cpu_s"] for t in timing.values()):.0f} |')
    return '\n'.join(lines) + '\n'


def plot(report: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    bench = report['bench']
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, label in zip(axes, LABELS):
        theta = report['angles'][label]
        tau = report['correlations_all'][
            'angle, random labels (RLNAS)' if label == 'random' else 'angle, true labels']
        sc = ax.scatter(theta, bench.mean_acc, c=bench.flops / 1e6, s=2, cmap='viridis',
                        rasterized=True)
        ax.set_xlabel('angle θ (rad)')
        ax.set_title(f'{label} labels: Kendall τ = {tau["kendall_tau"]:.3f}')
        ax.set_ylim(max(40, bench.mean_acc.min() - 1), bench.mean_acc.max() + 1)
    axes[0].set_ylabel('NAS-Bench-Macro mean test acc (%)')
    fig.colorbar(sc, ax=axes, label='MFLOPs')
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(work_dir: str, results_dir: str, settings: dict) -> dict:
    report = build_report(work_dir, settings)
    timing_path = osp.join(work_dir, 'timing.json')
    timing = _load(timing_path) if osp.isfile(timing_path) else {}
    public = {k: v for k, v in report.items() if k not in ('angles', 'bench')}
    public['timing'] = timing
    atomic_write_json(public, osp.join(work_dir, 'report.json'))
    atomic_write_text(to_markdown(report, timing), osp.join(work_dir, 'report.md'))
    bench = report['bench']
    atomic_write_json({a: dict(random=float(r), true=float(t))
                       for a, r, t in zip(bench.archs, report['angles']['random'],
                                          report['angles']['true'])},
                      osp.join(work_dir, 'angles_all.json'))
    plot(report, osp.join(work_dir, 'angle_vs_accuracy.png'))
    if results_dir:
        os.makedirs(results_dir, exist_ok=True)
        for name in ('report.json', 'report.md', 'angle_vs_accuracy.png'):
            tmp = osp.join(results_dir, '.' + name + '.tmp')
            shutil.copyfile(osp.join(work_dir, name), tmp)
            os.replace(tmp, osp.join(results_dir, name))
    print(to_markdown(report, timing))
    return public
