"""CPU latency of original vs pruned models under PyTorch and onnxruntime, beside the FLOPs.

    python tools/analysis_tools/benchmark_latency.py [--models resnet50 deit_tiny yolov8_n]
        [--flops-ratio 0.5 | --keep-ratio 0.7 | --structure structure.json]
        [--divisor 8] [--batch-sizes 1 32] [--backends pytorch onnxruntime] [--threads N]
        [--repeats 10] [--repeats-batched 5] [--out-dir docs/benchmarks] [--notes FILE]

Does a model pruned to 50% of its FLOPs run in 50% of the time? For every named model (or
``--config``) the original and a pruned copy are built; FLOPs are counted with
:func:`mmdms.analysis.count_complexity` (mmengine.analysis, one multiply-add = one FLOP) at batch
1; both are timed in eval mode under ``torch.no_grad()`` and, exported to ONNX (TorchScript
exporter, dynamic batch axis), in onnxruntime's CPU execution provider.

**Noise.** CPU timings on a shared machine drift by tens of percent within a minute. The two
models are therefore timed *interleaved* -- one call of each per round, the order alternating
between rounds -- after a warm-up, and the report gives medians, the ratio of medians
(pruned / original) and the spread (min-max) of the per-round ratios: a ratio is only as good
as that spread.

**Which pruned model.** By default every width unit is scaled by one common factor, each width
rounded to a multiple of ``--divisor`` (8), and the factor chosen so that the FLOPs are
``--flops-ratio`` (0.5) of the original (:func:`mmdms.apis.scale_to_budget`); depth and
attention heads are kept. This is the hardware-friendly "same network, thinner" model that
isolates the question (FLOPs vs latency) from search quality: random per-unit structures (as in
``prune_check``) give odd channel counts -- slow paths in oneDNN/MLAS kernels, which block
channels by 8/16 -- and random depth, so their latency says more about the random draw than
about pruning. ``--keep-ratio`` keeps that fraction of every width unit instead (also rounded),
and ``--structure`` benchmarks a searched ``structure.json`` (one model).

Writes ``latency.json``, ``latency.md`` (plus the text of ``--notes``, if given) and
``latency.png`` to ``--out-dir``, each to a temporary name first.
"""
import argparse
import copy
import datetime
import inspect
import json
import os
import os.path as osp
import platform
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from mmengine.model import BaseModel, revert_sync_batchnorm
from mmengine.registry import DefaultScope
from torch.utils._pytree import tree_flatten

from mmdms.analysis import count_complexity
from mmdms.utils import atomic_write, atomic_write_text, load_config

# name -> (scope, config, input size, backbone overrides)
MODELS = {
    'resnet50': ('mmpretrain', 'mmpretrain::resnet/resnet50_8xb32_in1k.py', 224, {}),
    'deit_tiny': ('mmpretrain', 'mmpretrain::deit/deit-tiny_4xb256_in1k.py', 224, {}),
    'yolov8_n': ('mmyolo', 'mmyolo::yolov8/yolov8_n_syncbn_fast_8xb16-500e_coco.py', 640, {}),
    'mobilenet_v2': ('mmpretrain', 'mmpretrain::mobilenet_v2/mobilenet-v2_8xb32_in1k.py', 224,
                     {}),
}


def build_model(scope, config, overrides=None):
    """The original model of ``config`` (random init, eval mode, no SyncBN)."""
    __import__(f'{scope}.models')
    cfg = load_config(config) if isinstance(config, str) else config
    cfg.model.pop('init_cfg', None)
    if overrides:
        cfg.model.backbone.update(overrides)
    model_cfg = cfg.model
    with DefaultScope.overwrite_default_scope(scope):
        from mmengine.registry import MODELS as ROOT
        model = revert_sync_batchnorm(ROOT.build(model_cfg))
    return model.eval()


def _call(model, x):
    return model(x, mode='tensor') if isinstance(model, BaseModel) else model(x)


class TensorMode(torch.nn.Module):
    """``model(x, mode='tensor')`` as a plain forward returning a flat tuple (for ONNX)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return tuple(t for t in tree_flatten(_call(self.model, x))[0]
                     if isinstance(t, torch.Tensor))


def width_structure(model, size, flops_ratio=None, keep_ratio=None, divisor=8):
    """Prune every width unit by one common factor, to multiples of ``divisor``.

    With ``flops_ratio`` the factor is searched so the model has that fraction of the FLOPs
    (:func:`scale_to_budget`, 1% tolerance); with ``keep_ratio`` each unit keeps
    ``keep_ratio * N`` elements rounded to the divisor. The first channels of each unit are
    kept (which ones does not change latency). Depth and attention heads are unchanged.

    Returns:
        ``(structure, info)`` where ``info`` has the reached mutator FLOPs ratio.
    """
    from mmdms.models.mutators import DMSMutator
    from mmdms.models.mutators.budget import (round_to_divisor, scale_to_budget,
                                              set_kept_counts)
    from mmdms.models.units import DTopkChannelUnit
    supernet = copy.deepcopy(model)
    mutator = DMSMutator()
    x = torch.randn(1, 3, size, size)
    mutator.prepare_from_supernet(supernet, lambda: _call(supernet, x))
    units = mutator.units
    full = {i: u.num_elements for i, u in enumerate(units)}
    order = {i: torch.arange(u.num_elements, 0, -1, dtype=torch.float32)
             for i, u in enumerate(units)}  # a strict ranking: keep the first channels
    mutator.set_mode('hard')
    set_kept_counts(mutator, full, order)
    if flops_ratio is not None:
        report = scale_to_budget(mutator, flops_ratio, 'flops', base_counts=full,
                                 divisor=divisor, tolerance=0.01)
        info = dict(mode='flops_ratio', target=flops_ratio, scale=report['scale'],
                    mutator_flops_ratio=report['ratio'])
    else:
        counts = {i: (round_to_divisor(keep_ratio * u.num_elements, u.num_elements, divisor,
                                       u.min_kept) if isinstance(u, DTopkChannelUnit)
                      else u.num_elements) for i, u in enumerate(units)}
        set_kept_counts(mutator, counts)
        info = dict(mode='keep_ratio', target=keep_ratio)
    info['divisor'] = divisor
    return mutator.structure(), info


def export_onnx(model, size, path, opset=17):
    """TorchScript ONNX export with a dynamic batch axis."""
    wrapper = TensorMode(model).eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        outputs = wrapper(x)
    names = [f'output{i}' for i in range(len(outputs))]
    axes = {n: {0: 'batch'} for n in ['input'] + names}
    # torch >= 2.9 defaults to the dynamo exporter (needs onnxscript); use TorchScript's
    kwargs = dict(dynamo=False) if 'dynamo' in inspect.signature(torch.onnx.export).parameters \
        else {}
    torch.onnx.export(wrapper, (x, ), path, input_names=['input'], output_names=names,
                      opset_version=opset, dynamic_axes=axes, **kwargs)


def ort_session(path, threads=None):
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def interleaved(run_a, run_b, repeats, warmup):
    """Time ``run_a`` and ``run_b`` alternately (order swapped every round); seconds lists."""
    for _ in range(warmup):
        run_a()
        run_b()
    times_a, times_b = [], []
    for i in range(repeats):
        pair = [(run_a, times_a), (run_b, times_b)]
        for run, times in (pair if i % 2 == 0 else pair[::-1]):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return times_a, times_b


def summarize(original, pruned):
    ratios = [p / o for o, p in zip(original, pruned)]
    o, p = statistics.median(original), statistics.median(pruned)
    return dict(original_ms=1e3 * o, pruned_ms=1e3 * p, ratio=p / o,
                original_min_ms=1e3 * min(original), pruned_min_ms=1e3 * min(pruned),
                ratio_of_min=min(pruned) / min(original),
                round_ratio_median=statistics.median(ratios), round_ratio_min=min(ratios),
                round_ratio_max=max(ratios), rounds=len(ratios),
                original_all_ms=[1e3 * t for t in original],
                pruned_all_ms=[1e3 * t for t in pruned])


def benchmark_model(name, model, size, structure, info, args, log=print):
    """Measure one model; returns the JSON record."""
    from mmdms.export import apply_structure
    pruned = apply_structure(copy.deepcopy(model), structure).eval()
    x1 = torch.randn(1, 3, size, size)
    with torch.no_grad():
        out_o = [t.shape for t in TensorMode(model)(x1)]
        out_p = [t.shape for t in TensorMode(pruned)(x1)]
    if out_o != out_p:
        raise RuntimeError(f'{name}: pruned outputs {out_p} differ in shape from {out_o}')
    before = count_complexity(model, x1, _call)
    after = count_complexity(pruned, x1, _call)
    widths = [[unit, v['kept'], v['num_elements']] for unit, v in structure['units'].items()
              if not unit.startswith(('depth:', 'heads:'))] if 'units' in structure else []
    record = dict(
        model=name, input_size=size, structure=info,
        flops=dict(original=before['flops'], pruned=after['flops'],
                   ratio=after['flops'] / before['flops']),
        params=dict(original=before['params'], pruned=after['params'],
                    ratio=after['params'] / before['params']),
        widths=widths,
        non_multiple_of_8=sum(1 for _, k, n in widths if k % 8 and k != n),
        latency={})
    log(f'{name} @ {size}: FLOPs {before["flops"] / 1e9:.3f} G -> {after["flops"] / 1e9:.3f} G '
        f'({record["flops"]["ratio"]:.3f}x), params {record["params"]["ratio"]:.3f}x')
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {}
        if 'onnxruntime' in args.backends:
            for key, m in (('original', model), ('pruned', pruned)):
                path = osp.join(tmp, f'{key}.onnx')
                export_onnx(m, size, path)
                sessions[key] = ort_session(path, args.threads)
        for backend in args.backends:
            record['latency'][backend] = {}
            for batch in args.batch_sizes:
                x = torch.randn(batch, 3, size, size)
                repeats = args.repeats if batch == 1 else args.repeats_batched
                if backend == 'pytorch':
                    def run(m, x=x):
                        with torch.no_grad():
                            _call(m, x)

                    run_o, run_p = (lambda: run(model)), (lambda: run(pruned))
                else:
                    feed = {'input': x.numpy()}
                    run_o = (lambda f=feed: sessions['original'].run(None, f))
                    run_p = (lambda f=feed: sessions['pruned'].run(None, f))
                warmup = args.warmup if batch == 1 else args.warmup_batched
                t_o, t_p = interleaved(run_o, run_p, repeats, warmup)
                result = summarize(t_o, t_p)
                record['latency'][backend][str(batch)] = result
                log(f'  {backend:11} batch {batch:3}: {result["original_ms"]:9.1f} ms -> '
                    f'{result["pruned_ms"]:9.1f} ms  ratio {result["ratio"]:.3f}, of minima '
                    f'{result["ratio_of_min"]:.3f} (rounds {result["round_ratio_min"]:.3f}-'
                    f'{result["round_ratio_max"]:.3f})', flush=True)
    return record


def markdown(report, notes=None):
    meta = report['meta']
    lines = [
        '# Latency of pruned vs original models (CPU)', '',
        f'Generated by `tools/analysis_tools/benchmark_latency.py` on {meta["date"]}: '
        f'{meta["cpu"]}, {meta["cpu_count"]} cores, load average {meta["load_before"]} before '
        f'/ {meta["load_after"]} after; torch {meta["torch"]} ({meta["torch_threads"]} threads), '
        f'onnxruntime {meta["onnxruntime"]} (CPU EP, intra-op threads: '
        f'{meta["threads"] or "default"}). Pruned model: {meta["structure"]}. Median of '
        f'{meta["repeats"]} rounds at batch 1, {meta["repeats_batched"]} at larger batches, '
        f'after {meta["warmup"]} (batch 1) / {meta.get("warmup_batched", meta["warmup"])} '
        'warm-up calls; the two models alternate within each round. '
        'Latency ratio = median(pruned) / median(original); the ratio of the minima is less '
        'sensitive to other processes on a shared machine (it estimates the uncontended time).',
        '',
        '| model | input | FLOPs orig → pruned (G) | FLOPs ratio | backend | batch | '
        'original (ms) | pruned (ms) | latency ratio | ratio of minima | '
        'per-round ratio min–max |',
        '|---|---|---|---|---|---|---|---|---|---|---|'
    ]
    for r in report['results']:
        f = r['flops']
        for backend, per_batch in r['latency'].items():
            for batch, t in per_batch.items():
                lines.append(
                    f'| {r["model"]} | {r["input_size"]} | {f["original"] / 1e9:.2f} → '
                    f'{f["pruned"] / 1e9:.2f} | {f["ratio"]:.3f} | {backend} | {batch} | '
                    f'{t["original_ms"]:.1f} | {t["pruned_ms"]:.1f} | **{t["ratio"]:.3f}** | '
                    f'{t["ratio_of_min"]:.3f} | '
                    f'{t["round_ratio_min"]:.3f}–{t["round_ratio_max"]:.3f} |')
    lines += ['', 'Command: `' + meta['command'] + '`', '']
    if notes:
        lines += [notes.rstrip(), '']
    return '\n'.join(lines)


def plot(report, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    labels, ratios, flops, spread = [], [], [], []
    for r in report['results']:
        for backend, per_batch in r['latency'].items():
            for batch, t in per_batch.items():
                labels.append(f'{r["model"]}\n{"ORT" if backend == "onnxruntime" else "PT"} '
                              f'b{batch}')
                ratios.append(t['ratio'])
                flops.append(r['flops']['ratio'])
                spread.append((max(0.0, t['ratio'] - t['round_ratio_min']),
                               max(0.0, t['round_ratio_max'] - t['ratio'])))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels)), 4))
    pos = np.arange(len(labels))
    ax.bar(pos - 0.2, flops, 0.4, label='FLOPs ratio', color='#999999')
    ax.bar(pos + 0.2, ratios, 0.4, label='latency ratio (bars: per-round min-max)',
           color='#3070b0', yerr=np.array(spread).T, capsize=2, error_kw=dict(lw=0.8))
    ax.axhline(1.0, color='k', lw=0.5)
    ax.set_xticks(pos)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel('pruned / original')
    ax.set_title('Pruned vs original: FLOPs and CPU latency')
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=120))
    plt.close(fig)


def print_table(report):
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text is enough
        for r in report['results']:
            for backend, per_batch in r['latency'].items():
                for batch, t in per_batch.items():
                    print(f'{r["model"]:12} {backend:11} b{batch:<3} FLOPs '
                          f'{r["flops"]["ratio"]:.3f} latency {t["ratio"]:.3f}')
        return
    table = Table(title='pruned / original')
    for col in ('model', 'input', 'backend', 'batch', 'orig ms', 'pruned ms', 'FLOPs ratio',
                'latency ratio', 'ratio of min', 'round min-max'):
        table.add_column(col)
    for r in report['results']:
        for backend, per_batch in r['latency'].items():
            for batch, t in per_batch.items():
                table.add_row(r['model'], str(r['input_size']), backend, batch,
                              f'{t["original_ms"]:.1f}', f'{t["pruned_ms"]:.1f}',
                              f'{r["flops"]["ratio"]:.3f}', f'{t["ratio"]:.3f}',
                              f'{t["ratio_of_min"]:.3f}',
                              f'{t["round_ratio_min"]:.3f}-{t["round_ratio_max"]:.3f}')
    Console(width=160).print(table)


def _cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Latency of pruned vs original models (PyTorch, onnxruntime CPU)')
    parser.add_argument('--models', nargs='+', default=['resnet50', 'deit_tiny', 'yolov8_n'],
                        choices=list(MODELS))
    parser.add_argument('--config', help='benchmark this model config instead of --models '
                        '(mmpretrain/mmdet/mmyolo; default_scope decides the package)')
    parser.add_argument('--input-size', type=int,
                        help='square input size (default: 224 classifiers, 640 YOLOv8; '
                        'required with --config)')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--flops-ratio', type=float, default=0.5,
                       help='prune widths uniformly to this fraction of the FLOPs (default)')
    which.add_argument('--keep-ratio', type=float,
                       help='keep this fraction of every width unit instead')
    which.add_argument('--structure', help='benchmark this structure.json (one model)')
    parser.add_argument('--divisor', type=int, default=8,
                        help='round widths to multiples of it (1: no rounding)')
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 32])
    parser.add_argument('--backends', nargs='+', default=['pytorch', 'onnxruntime'],
                        choices=['pytorch', 'onnxruntime'])
    parser.add_argument('--threads', type=int,
                        help='torch.set_num_threads and onnxruntime intra-op threads '
                        '(default: the libraries\' defaults)')
    parser.add_argument('--warmup', type=int, default=3, help='warm-up calls at batch 1')
    parser.add_argument('--warmup-batched', type=int, default=1,
                        help='warm-up calls at batch > 1')
    parser.add_argument('--repeats', type=int, default=10, help='rounds at batch 1')
    parser.add_argument('--repeats-batched', type=int, default=5, help='rounds at batch > 1')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out-dir', default='docs/benchmarks')
    parser.add_argument('--notes', help='markdown file appended to latency.md')
    parser.add_argument('--no-plot', action='store_true')
    parser.add_argument('--render-only', action='store_true',
                        help='measure nothing: rewrite latency.md/.png from the latency.json '
                        'in --out-dir (e.g. after editing --notes)')
    args = parser.parse_args(argv)
    if args.config and not args.input_size:
        parser.error('--config needs --input-size')
    if args.structure and not args.config and len(args.models) != 1:
        parser.error('--structure belongs to one model: pass one of --models (or --config)')
    if args.keep_ratio is not None:
        args.flops_ratio = None
    if args.structure:
        args.flops_ratio = None
    for name in ('flops_ratio', 'keep_ratio'):
        value = getattr(args, name)
        if value is not None and not 0 < value <= 1:
            parser.error(f'--{name.replace("_", "-")} must be in (0, 1], got {value}')
    return args


def main(argv=None):
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return run(args, argv)
    finally:
        torch.set_num_threads(threads)  # callers in the same process keep their setting


def write_reports(report, args):
    notes = None
    if args.notes:
        with open(args.notes) as f:
            notes = f.read()
    atomic_write_text(osp.join(args.out_dir, 'latency.md'), markdown(report, notes))
    if not args.no_plot:
        plot(report, osp.join(args.out_dir, 'latency.png'))


def run(args, argv=None):
    if args.render_only:
        with open(osp.join(args.out_dir, 'latency.json')) as f:
            report = json.load(f)
        write_reports(report, args)
        print_table(report)
        return report
    from mmdms.export import load_structure
    from mmdms.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    if args.config:
        cfg = load_config(args.config)
        scope = cfg.get('default_scope', 'mmpretrain')
        targets = [(osp.splitext(osp.basename(args.config))[0], scope, cfg, args.input_size,
                    {})]
    else:
        targets = [(n, MODELS[n][0], MODELS[n][1], args.input_size or MODELS[n][2],
                    MODELS[n][3]) for n in args.models]
    if args.structure:
        desc = f'the structure {osp.basename(args.structure)}'
    elif args.keep_ratio is not None:
        desc = (f'every width unit keeps {args.keep_ratio} of its channels (multiples of '
                f'{args.divisor}), depth and heads kept')
    else:
        desc = (f'widths scaled by one common factor to {args.flops_ratio} of the FLOPs, '
                f'rounded to multiples of {args.divisor}; depth and heads kept')
    report = dict(meta=dict(
        date=datetime.datetime.now().strftime('%Y-%m-%d %H:%M'), cpu=_cpu_name(),
        cpu_count=os.cpu_count(), torch=torch.__version__, torch_threads=torch.get_num_threads(),
        onnxruntime=_ort_version(), threads=args.threads, warmup=args.warmup,
        warmup_batched=args.warmup_batched,
        repeats=args.repeats, repeats_batched=args.repeats_batched,
        batch_sizes=args.batch_sizes, structure=desc, load_before=_load(),
        command=' '.join(['python tools/analysis_tools/benchmark_latency.py']
                         + list(sys.argv[1:] if argv is None else argv))),
        results=[])
    for name, scope, config, size, overrides in targets:
        torch.manual_seed(args.seed)
        start = time.time()
        model = build_model(scope, config, overrides)
        if args.structure:
            structure, info = load_structure(args.structure), dict(mode='structure',
                                                                   file=args.structure)
        else:
            structure, info = width_structure(model, size, args.flops_ratio, args.keep_ratio,
                                              args.divisor)
        record = benchmark_model(name, model, size, structure, info, args)
        record['seconds'] = round(time.time() - start, 1)
        report['results'].append(record)
    report['meta']['load_after'] = _load()
    os.makedirs(args.out_dir, exist_ok=True)
    atomic_write_text(osp.join(args.out_dir, 'latency.json'), json.dumps(report, indent=1))
    write_reports(report, args)
    print_table(report)
    print(f'written to {args.out_dir}: latency.json, latency.md'
          + ('' if args.no_plot else ', latency.png'))
    return report


def _ort_version():
    try:
        import onnxruntime
        return onnxruntime.__version__
    except ImportError:
        return None


if __name__ == '__main__':
    main()
