"""Tables (Markdown + JSON) and the width plot of a detection experiment (``detection``)."""
import json
import statistics
from typing import Callable, Dict, List, Optional

from mmdms.utils.fileio import atomic_write_text
from mmdms.visualization import save_figure
from .report import git_commit, step_speeds, step_totals

DET_LABELS = {
    'reference': 'YOLOv8-n (hand-scaled, scratch)',
    'dms_np': 'DMS_np (search + retrain from scratch)',
    'dms_np_inherit': 'DMS_np, retrain from searched weights',
    'dms_full_retrain': 'DMS_np structure, retrained for all epochs (search not counted)',
}


def _mean(values):
    values = list(values)
    return statistics.mean(values) if values else float('nan')


def summarize(results: List[dict], classes: List[str]) -> List[dict]:
    """Per arm: mean (and sample std, n > 1) of mAP, AP50, AP75 and each class's AP/AP50."""
    groups: Dict[str, List[dict]] = {}
    for r in results:
        groups.setdefault(r['arm'], []).append(r)
    rows = []
    for arm, runs in groups.items():
        row = dict(arm=arm, n=len(runs), seeds=sorted(r['seed'] for r in runs))
        for key in ('mAP', 'mAP_50', 'mAP_75'):
            values = [r[key] for r in runs]
            row[key] = _mean(values)
            row[key + '_std'] = statistics.stdev(values) if len(values) > 1 else 0.0
        row['per_class'] = {c: dict(AP=_mean(r['per_class'][c]['AP'] for r in runs),
                                    AP50=_mean(r['per_class'][c]['AP50'] for r in runs))
                            for c in classes}
        for key in ('flops', 'params', 'flops_vs_reference', 'cpu_seconds', 'wall_seconds'):
            row[key] = _mean(r[key] for r in runs)
        row['latency_ms'] = statistics.median(r['latency_ms'] for r in runs)
        rows.append(row)
    order = {a: i for i, a in enumerate(DET_LABELS)}
    return sorted(rows, key=lambda r: order.get(r['arm'], 99))


def phase_speeds(work_dir: str) -> Dict[str, dict]:
    """Seconds per iteration of each kind of detection phase (see ``report.step_speeds``)."""
    return step_speeds(work_dir, {
        'YOLOv8-n training': 'runs/*/reference/train/step.json',
        'DMS search (supernet + masks)': 'runs/*/dms_search/step.json',
        'DMS model retraining': 'runs/*/dms_np*/retrain/step.json'})


def plot_widths(results: List[dict], reference_widths: List[dict], path: str,
                label: Optional[Callable[[dict], str]] = None,
                title: str = 'YOLOv8 on BCCD at the FLOPs of YOLOv8-n: per-unit widths '
                '(channels) and depths (removable blocks)') -> Optional[str]:
    """Kept fraction of every supernet unit: YOLOv8-n (its widths on the same units) vs the
    DMS export of each result (``label``: its legend entry, default ``DMS seed N``). Units
    are matched by name; a structure without some units (widths only) has gaps there."""
    dms = [r for r in results if r['arm'] == 'dms_np' and r.get('widths')]
    if not dms:
        return None
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    label = label or (lambda r: f'DMS seed {r["seed"]}')
    units = max((r['widths'] for r in dms), key=len)
    ref = {u['unit']: u['size'] for u in reference_widths}
    names = [u['unit'].replace('depth:', 'depth ') for u in units]
    xs = range(len(units))
    fig, ax = plt.subplots(figsize=(max(10, 0.22 * len(units)), 4.2))
    ax.bar(xs, [1.0] * len(units), color='#e3e7ee', label='supernet (YOLOv8-s widths)')
    ax.plot(xs, [ref.get(u['unit'], float('nan')) / u['size'] for u in units], 's',
            color='#444444', markersize=4, label='YOLOv8-n')
    for r in dms:
        kept = {u['unit']: u['kept'] / u['size'] for u in r['widths']}
        ax.plot(xs, [kept.get(u['unit'], float('nan')) for u in units], 'o', alpha=0.8,
                markersize=4, label=label(r))
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=75, ha='right', fontsize=6)
    ax.set_ylabel('kept / supernet')
    ax.set_ylim(0, 1.08)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc='lower left', ncol=3)
    fig.tight_layout()
    return save_figure(fig, path)


def _f(value, digits=3):
    return 'n/a' if value is None or value != value else f'{value:.{digits}f}'


def markdown(work_dir: str, plan: List[tuple], settings: dict, results: List[dict],
             latency: List[dict], plot_rel: Optional[str], command: str, repo: str,
             notes: Optional[List[str]] = None) -> str:
    s = settings
    classes = s['classes']
    rows = summarize(results, classes)
    done = {(r['arm'], r['seed']) for r in results}
    pending = [p for p in plan if p not in done]
    totals = step_totals(work_dir)
    speeds = phase_speeds(work_dir)
    status = (f'**Final**: all {len(plan)} planned runs finished.' if not pending else
              f'**Pending**: {len(plan) - len(pending)} of {len(plan)} planned runs finished; '
              'the tables will change.')
    ref_g, sup_g = s['reference_gflops'], s['supernet_gflops']
    lines = [
        '## BCCD detection: DMS-searched YOLOv8 vs YOLOv8-n at equal FLOPs (MMYOLO)', '',
        status, '',
        f'Data: BCCD (blood-cell detection, classes {", ".join(classes)}), training on the '
        f'{s["train_images"]} images of the train split, testing on the {s["test_images"]} '
        'images of the test split (the val split is not used: no checkpoint selection, the '
        'last weights of every arm are tested). Every arm trains '
        f'{s["total_iters"]} iterations of batch {s["batch_size"]} ({s["epochs"]} epochs of '
        f'{s["iters_per_epoch"]} iterations) at {s["img_size"]}x{s["img_size"]} (keep-ratio '
        'resize + letterbox, random flip; no mosaic, no EMA) with MMYOLO\'s YOLOv8 optimizer '
        f'(SGD lr {s["lr"]}, momentum 0.937, nesterov, weight decay 5e-4 scaled by batch/64, '
        f'no decay on norms/biases, gradient clipping 10), a linear warm-up over '
        f'{s["warmup_iters"]} iterations and a linear decay to {s["lr_factor"]} of the lr over '
        'the arm\'s iterations; DMS search iterations count against DMS. Seeds: '
        f'{s["seeds"]}.', '',
        f'* **YOLOv8-n**: MMYOLO YOLOv8 at deepen {s["reference"]["deepen_factor"]} / widen '
        f'{s["reference"]["widen_factor"]}: {ref_g:.3f} GFLOPs, '
        f'{s["reference_mparams"]:.3f} M params at {s["img_size"]}x{s["img_size"]} '
        '(`mmdms.analysis.count_complexity`, one multiply-add = one FLOP), trained from '
        'scratch for every iteration.',
        f'* **DMS_np**: a YOLOv8-s-sized supernet (deepen {s["supernet"]["deepen_factor"]} / '
        f'widen {s["supernet"]["widen_factor"]}, {sup_g:.3f} GFLOPs, '
        f'{s["supernet_mparams"]:.3f} M params) searched from random init for '
        f'{s["search_epochs"]} epochs ({s["search_iters"]} iterations) with the FLOPs target '
        f'{s["target_ratio"]:.4f} (= YOLOv8-n / supernet), reached over the first '
        f'{s["dms"]["decay_fraction"]:.0%} of the search (structure lr '
        f'{s["dms"]["structure_lr"]}, Adam; resource-loss weight {s["dms"]["loss_weight"]}; '
        f'{s["dms"]["importance_metric"]} importance, EMA {s["dms"]["importance_decay"]}; '
        f'{"widths and blocks" if s["dms"]["prune_depth"] else "widths only"}); exported '
        'with `export_pruned(target_flops=<YOLOv8-n FLOPs>, divisor='
        f'{s["export_divisor"]})` (widths rescaled to YOLOv8-n\'s absolute FLOPs within '
        f'{s["flops_tolerance"]:.0%}, multiples of {s["export_divisor"]}), then retrained '
        f'**from scratch** for the remaining {s["epochs"] - s["search_epochs"]} epochs '
        'with a fresh warm-up + decay. *DMS_np, retrain from searched weights*: the same '
        'search and export, the exported weights keep training for the remaining epochs, '
        'continuing the learning-rate line of the search.', '',
        '### Test split: COCO box AP (pycocotools, maxDets 100)', '',
        '| method | mAP | AP50 | AP75 | ' + ' | '.join(f'AP {c}' for c in classes) +
        ' | GFLOPs (vs YOLOv8-n) | params M | latency ms | CPU h |',
        '|---|---|---|---|' + '---|' * len(classes) + '---|---|---|---|',
    ]
    by_arm = {r['arm']: r for r in rows}
    # latency: the interleaved comparison where measured (per-run timings are taken minutes
    # or hours apart, under whatever else the machine runs then)
    if latency:
        interleaved_ms = dict(reference=_mean(lt['reference_ms'] for lt in latency),
                              dms_np=_mean(lt['dms_ms'] for lt in latency))
        interleaved_ms['dms_np_inherit'] = interleaved_ms['dms_np']
        interleaved_ms['dms_full_retrain'] = interleaved_ms['dms_np']
        for arm, row in by_arm.items():
            row['latency_ms'] = interleaved_ms.get(arm, row['latency_ms'])
    for arm, label in DET_LABELS.items():
        if not any(a == arm for a, _ in plan):
            continue
        r = by_arm.get(arm)
        if r is None:
            lines.append(f'| {label} | pending |' + ' |' * (7 + len(classes)))
            continue
        std = (lambda k: f' ± {r[k + "_std"]:.3f}' if r['n'] > 1 else '')
        lines.append(
            f'| {label}{" (n=%d)" % r["n"] if r["n"] > 1 else ""} | {r["mAP"]:.3f}{std("mAP")} '
            f'| {r["mAP_50"]:.3f}{std("mAP_50")} | {r["mAP_75"]:.3f} | '
            + ' | '.join(_f(r['per_class'][c]['AP']) for c in classes) +
            f' | {r["flops"] / 1e9:.3f} ({r["flops_vs_reference"]:.3f}) | '
            f'{r["params"] / 1e6:.3f} | {r["latency_ms"]:.1f} | '
            f'{r["cpu_seconds"] / 3600:.2f} |')
    lines += ['', 'Per-class AP50:', '',
              '| method | ' + ' | '.join(f'AP50 {c}' for c in classes) + ' |',
              '|---|' + '---|' * len(classes)]
    for arm, label in DET_LABELS.items():
        r = by_arm.get(arm)
        if r is not None:
            lines.append(f'| {label} | ' + ' | '.join(_f(r['per_class'][c]['AP50'])
                                                       for c in classes) + ' |')
    ref = by_arm.get('reference')
    deltas = []
    for arm in ('dms_np', 'dms_np_inherit', 'dms_full_retrain'):
        r = by_arm.get(arm)
        if ref is not None and r is not None:
            deltas.append(f'{DET_LABELS[arm]} - YOLOv8-n: mAP {r["mAP"] - ref["mAP"]:+.3f}, '
                          f'AP50 {r["mAP_50"] - ref["mAP_50"]:+.3f}')
    if deltas:
        lines += ['', '**Difference**: ' + '; '.join(deltas) + '.']
    lines += ['', 'mAP/AP are recomputed with pycocotools from the dumped test predictions '
              '(unrounded, with per-class AP50; on the full test split they equal the stock '
              '`coco/bbox_mAP*` and `coco/<class>_precision` of `mmdet.CocoMetric`, stored per '
              'run in the JSON). Test instances: ' + ', '.join(
                  f'{c} {s["test_instances"].get(c, "?")}' for c in classes) +
              '. Latency: ' + ('the interleaved measurement below; ' if latency else
                               'per run, taken when the run finished (not comparable across '
                               'runs on a loaded machine); ') + 'batch 1, '
              f'{s["img_size"]}x{s["img_size"]}, one thread, PyTorch eager, median of '
              f'{s["latency_repeats"]} calls on a shared 2-core machine (indicative only). '
              'CPU hours of a DMS arm include its search (shared by both DMS arms).']
    if pending:
        lines += ['', 'Pending runs (arm, seed): ' + ', '.join(f'({a}, {sd})'
                                                              for a, sd in pending)]
    if latency:
        lines += ['', '### CPU latency, interleaved', '',
                  '| seed | YOLOv8-n ms | DMS ms | DMS / YOLOv8-n (median) | per-round ratio '
                  'p10-p90 | rounds | threads |', '|---|---|---|---|---|---|---|']
        lines += [f'| {lt["seed"]} | {lt["reference_ms"]:.1f} | {lt["dms_ms"]:.1f} | '
                  f'{lt["ratio"]:.3f} | {lt["round_ratio_p10"]:.3f}-{lt["round_ratio_p90"]:.3f}'
                  f' | {lt["rounds"]} | {lt["threads"]} |' for lt in latency]
        lines += ['', 'The two models timed alternately (one call of each per round, order '
                  'swapped every round; `interleaved` of '
                  '`tools/analysis_tools/benchmark_latency.py`), batch 1, eager PyTorch.']
    lines += ['', '### Every run', '',
              '| method | seed | mAP | AP50 | GFLOPs | params M | searched FLOPs ratio | '
              'export width scale | latency ms (at finish) | CPU h | wall h | attempts |',
              '|---|---|---|---|---|---|---|---|---|---|---|---|']
    order = {a: i for i, a in enumerate(DET_LABELS)}
    for r in sorted(results, key=lambda r: (order.get(r['arm'], 99), r['seed'])):
        lines.append(f'| {DET_LABELS.get(r["arm"], r["arm"])} | {r["seed"]} | {r["mAP"]:.3f} | '
                     f'{r["mAP_50"]:.3f} | {r["flops"] / 1e9:.4f} | {r["params"] / 1e6:.3f} | '
                     f'{_f(r.get("searched_flops_ratio"))} | {_f(r.get("width_scale"))} | '
                     f'{r["latency_ms"]:.1f} | {r["cpu_seconds"] / 3600:.2f} | {r["wall_seconds"] / 3600:.2f} | '
                     f'{r["attempts"]} |')
    lines += ['', '### Compute', '',
              f'Finished steps: {totals["steps"]}; total process CPU time '
              f'{totals["cpu_hours"]:.2f} h, wall time {totals["wall_hours"]:.2f} h (shared '
              'steps counted once; one torch thread, wall above CPU time is time spent waiting '
              'for a core shared with other jobs).', '',
              f'| training phase (batch {s["batch_size"]}, {s["img_size"]}x{s["img_size"]}) | '
              'CPU s / iteration | wall s / iteration | phases |', '|---|---|---|---|']
    lines += [f'| {name} | {v["cpu"]:.2f} | {v["wall"]:.2f} | {v["n"]} |'
              for name, v in speeds.items()]
    if plot_rel:
        lines += ['', '### Searched widths vs YOLOv8-n', '', f'![per-unit widths]({plot_rel})',
                  '', 'Kept fraction of every width unit (channel group) and depth unit of the '
                  'supernet: YOLOv8-n\'s widths on the same units against the structure DMS '
                  'exported.']
    if notes:
        lines += ['', '### Notes', ''] + list(notes)
    lines += ['', '### Reproduce', '', f'Commit {git_commit(repo)}.', '', '```bash', command,
              '# tables only, from the finished runs:', command + ' --report-only', '```']
    return '\n'.join(lines) + '\n'


def write_json_report(path: str, plan, settings, results, latency) -> None:
    data = dict(settings=settings, planned=[list(p) for p in plan],
                summary=summarize(results, settings['classes']), runs=results,
                latency=latency)
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))
