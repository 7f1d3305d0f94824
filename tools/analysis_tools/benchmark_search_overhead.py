"""Per-iteration time of a DMS search step vs plain training of the same model, in one run.

Both sides run forward + backward of the same surrogate loss (mean square of the raw network
outputs, so detectors need no annotations); the DMS side adds the soft masks, the resource loss,
the importance update and the ratio clamp -- everything the search adds per iteration. Steps
alternate (plain, DMS, plain, ...) so machine noise hits both alike; the ratio of medians is
reported.

    python tools/analysis_tools/benchmark_search_overhead.py [--models resnet50 deit_tiny yolov8_n]
        [--repeats 5] [--out docs/benchmarks/search_overhead]
"""
import argparse
import copy
import json
import os
import statistics
import time

import torch
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from torch.utils._pytree import tree_flatten

from mmdms.models import DMSMutator
from mmdms.utils import atomic_write_text, load_config

MODELS = {
    'resnet50': ('mmpretrain', 'mmpretrain::resnet/resnet50_8xb32_in1k.py', (8, 3, 224, 224)),
    'deit_tiny': ('mmpretrain', 'mmpretrain::deit/deit-tiny_4xb256_in1k.py', (8, 3, 224, 224)),
    'yolov8_n': ('mmyolo', 'mmyolo::yolov8/yolov8_n_syncbn_fast_8xb16-500e_coco.py',
                 (2, 3, 640, 640)),
}


def build(scope, config):
    __import__(f'{scope}.models')
    cfg = load_config(config)
    with DefaultScope.overwrite_default_scope(scope):
        from mmengine.registry import MODELS as ROOT
        model = revert_sync_batchnorm(ROOT.build(cfg.model))
    model.train()
    return model


def surrogate_loss(outputs):
    leaves = [t for t in tree_flatten(outputs)[0] if isinstance(t, torch.Tensor)]
    return sum(t.float().pow(2).mean() for t in leaves)


def timed(step):
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def benchmark(name, repeats, warmup=1):
    scope, config, shape = MODELS[name]
    torch.manual_seed(0)
    plain = build(scope, config)
    searched = copy.deepcopy(plain)
    x = torch.randn(*shape)
    mutator = DMSMutator()
    searched.eval()
    mutator.prepare_from_supernet(searched, lambda: searched(x[:1], mode='tensor'))
    searched.train()
    for unit in mutator.units:  # mid-search state: ranked importances, some pruning
        unit.tracker.importance.copy_(torch.rand(unit.num_elements))
        unit.ratio.data.fill_(0.2)
    original = mutator.original_resources['flops']

    def plain_step():
        plain.zero_grad(set_to_none=True)
        surrogate_loss(plain(x, mode='tensor')).backward()

    def dms_step():
        searched.zero_grad(set_to_none=True)
        mutator.zero_grad(set_to_none=True)
        loss = surrogate_loss(searched(x, mode='tensor'))
        soft = mutator.resources()['flops']
        loss = loss + torch.clamp(torch.log(soft / (0.5 * original)), min=0)
        loss.backward()
        mutator.update_importance()
        mutator.clamp_ratios()

    for _ in range(warmup):
        plain_step()
        dms_step()
    plain_times, dms_times = [], []
    for _ in range(repeats):
        plain_times.append(timed(plain_step))
        dms_times.append(timed(dms_step))
    p, d = statistics.median(plain_times), statistics.median(dms_times)
    # the ratio of the minima estimates the uncontended ratio on a shared, noisy machine
    return dict(model=name, input=list(shape), plain_s=p, dms_s=d, ratio=d / p,
                ratio_of_minima=min(dms_times) / min(plain_times),
                plain_all=plain_times, dms_all=dms_times)


def _fmt_load(load) -> str:
    """The load average, or 'n/a' where the platform has no ``os.getloadavg``."""
    return 'n/a' if load is None else f'{load:.2f}'


def main():
    parser = argparse.ArgumentParser(description='DMS search step vs plain training step')
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--out', default='docs/benchmarks/search_overhead')
    args = parser.parse_args()
    load_before = os.getloadavg()[0] if hasattr(os, 'getloadavg') else None
    rows = []
    for name in args.models:
        rows.append(benchmark(name, args.repeats))
        r = rows[-1]
        print(f'{name:10} {str(tuple(r["input"])):18} plain {r["plain_s"]:.3f}s  '
              f'dms {r["dms_s"]:.3f}s  ratio {r["ratio"]:.3f}  '
              f'(minima {r["ratio_of_minima"]:.3f})', flush=True)
    lines = ['| model | input | plain step (s) | DMS step (s) | DMS / plain (medians) | '
             'DMS / plain (minima) |', '|---|---|---|---|---|---|']
    lines += [f'| {r["model"]} | {tuple(r["input"])} | {r["plain_s"]:.3f} | {r["dms_s"]:.3f} | '
              f'{r["ratio"]:.3f} | {r["ratio_of_minima"]:.3f} |' for r in rows]
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else None
    meta = dict(threads=torch.get_num_threads(), torch=torch.__version__, repeats=args.repeats,
                load_average_1min=load, load_average_1min_before=load_before,
                date=time.strftime('%Y-%m-%dT%H:%M:%S'))
    header = ['# DMS search step vs plain training step', '',
              f'Generated {meta["date"]} by `tools/analysis_tools/benchmark_search_overhead.py '
              f'--repeats {args.repeats}` (torch {meta["torch"]}, {meta["threads"]} threads, '
              f'1-min load average {_fmt_load(load_before)} before, {_fmt_load(load)} after). '
              'Steps alternate '
              'plain/DMS; target: DMS / plain <= 1.15.', '']
    atomic_write_text(args.out + '.json', json.dumps(dict(meta=meta, rows=rows), indent=1))
    atomic_write_text(args.out + '.md', '\n'.join(header + lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
