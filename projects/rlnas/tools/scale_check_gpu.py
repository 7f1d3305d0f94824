"""Supplementary, larger-budget version of the benchmark for a machine with a GPU.

The CPU benchmark (run_benchmark.py) can only afford a few epochs on 5k images. This script asks
whether RLNAS's ranking improves with a real budget: same space, model classes, random labels,
angle scorer, one-shot evaluator and evolution search, but a plain PyTorch loop on GPU-resident
tensors (no MMEngine Runner, no mmpretrain), trained on 45k images with 5k held out.

    python projects/rlnas/tools/scale_check_gpu.py --cifar-dir data/cifar10 --out OUT_DIR

It writes OUT_DIR/scale_check.json (correlations, picks, timings) and the angle table.
"""
import argparse
import json
import math
import os
import os.path as osp
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

MEAN = torch.tensor([125.307, 122.961, 113.8575]).view(1, 3, 1, 1)
STD = torch.tensor([51.5865, 50.847, 51.255]).view(1, 3, 1, 1)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--cifar-dir', default='data/cifar10')
    p.add_argument('--bench', default=None, help='nas-bench-macro_cifar10.json')
    p.add_argument('--out', required=True)
    p.add_argument('--epochs', type=int, default=30)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--lr', type=float, default=0.05)
    p.add_argument('--heldout-per-class', type=int, default=500)
    p.add_argument('--oneshot-samples', type=int, default=1000)
    p.add_argument('--calib-images', type=int, default=1024)
    p.add_argument('--budgets', default='25,50')
    p.add_argument('--search-epochs', type=int, default=20, help='evolution generations')
    p.add_argument('--max-train', type=int, default=None, help='cap training images (smoke)')
    p.add_argument('--runs', default='random:5e-4,true:5e-4',
                   help='supernets to train, label:weight_decay; the first true-label run '
                   'gives one-shot accuracy')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args()


def load_split(cifar_dir, heldout_per_class, device):
    from projects.rlnas.rlnas.datasets.cached_folder import _decode_folder
    images, labels, classes, _ = _decode_folder(osp.join(cifar_dir, 'train'))
    images = torch.from_numpy(images[..., ::-1].copy()).permute(0, 3, 1, 2)  # BGR -> RGB, NCHW
    labels = torch.from_numpy(labels)
    held = torch.zeros(len(labels), dtype=torch.bool)
    for c in range(len(classes)):  # the last images of every class, as the CPU config
        held[torch.nonzero(labels == c).view(-1)[-heldout_per_class:]] = True
    x = ((images.float() - MEAN) / STD).to(device)
    return x[~held], labels[~held].to(device), x[held], labels[held].to(device), len(classes)


def augment(x):
    """Random crop 32 with padding 4 and horizontal flip, per sample, on the GPU."""
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n, ), device=x.device)
    dy = torch.randint(0, 9, (n, ), device=x.device)
    base = torch.arange(32, device=x.device)
    rows = (dy[:, None] + base[None]).view(n, 1, 32, 1).expand(n, x.shape[1], 32, 32)
    cols = (dx[:, None] + base[None]).view(n, 1, 1, 32).expand(n, x.shape[1], 32, 32)
    out = padded[torch.arange(n, device=x.device)[:, None, None, None],
                 torch.arange(x.shape[1], device=x.device)[None, :, None, None], rows, cols]
    flip = torch.rand(n, device=x.device) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def build_model(seed, device):
    from mmengine.config import Config

    from projects.rlnas.rlnas.registry import MODELS
    space = Config.fromfile(osp.join(REPO_ROOT, 'projects/rlnas/configs/_base_/spaces/'
                                     'nas_bench_macro.py'))
    torch.manual_seed(seed)
    model = MODELS.build(dict(type='rlnas.SPOSClassifier', backbone=space.supernet,
                              num_classes=10, channels_last=True,
                              data_preprocessor=dict(type='BaseDataPreprocessor')))
    return model.to(device)


def train_supernet(model, x, y, args, weight_decay):
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                          weight_decay=weight_decay)
    steps_per_epoch = len(x) // args.batch_size
    total = max(1, steps_per_epoch * args.epochs)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    model.train()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x), device=x.device)
        running = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch_size:(i + 1) * args.batch_size]
            arch = model.backbone.sample_arch()
            with torch.autocast('cuda', dtype=torch.bfloat16, enabled=x.is_cuda):
                loss = F.cross_entropy(model.logits(augment(x[idx]), arch), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            running += loss.item() if i % 50 == 0 else 0
        mean_loss = running / math.ceil(steps_per_epoch / 50)
        print(f'  epoch {epoch + 1}/{args.epochs} loss~{mean_loss:.3f}', flush=True)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def main():
    args = parse_args()
    from projects.rlnas.rlnas.benchmark import NASBenchMacro, rank_correlations, ties_at_max
    from projects.rlnas.rlnas.datasets import random_labels
    from projects.rlnas.rlnas.search import (EvolutionSearcher, LayerwiseAngleScorer,
                                             LayerwiseComplexity, OneShotEvaluator)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    os.makedirs(args.out, exist_ok=True)
    timing = {}
    t0 = time.time()
    bench = NASBenchMacro(args.bench)
    x, y, xv, yv, num_classes = load_split(args.cifar_dir, args.heldout_per_class, device)
    if args.max_train:
        x, y = x[:args.max_train], y[:args.max_train]
    timing['data_s'] = time.time() - t0
    y_random = torch.from_numpy(random_labels(len(y), num_classes, args.seed)).to(device)
    print(f'train {len(x)}, held-out {len(xv)}, device {device}', flush=True)

    scorers, models, variants = {}, {}, {}
    archs = bench.arch_tuples()
    for run in args.runs.split(','):
        label, wd = run.split(':')
        name = f'{label} labels, wd {wd}'
        targets = y_random if label == 'random' else y
        t = time.time()
        model = build_model(args.seed, device)  # same W0 for every run
        w0 = state(model)
        print(f'supernet on {name}', flush=True)
        train_supernet(model, x, targets, args, float(wd))
        model0 = build_model(args.seed, device)
        model0.load_state_dict(w0)
        for include_fixed in (True, False):
            for weight_free in ('tensor', 'drop'):
                scorer = LayerwiseAngleScorer(model0, model, include_fixed, weight_free)
                key = f'fixed={include_fixed}, weight_free={weight_free}'
                variants.setdefault(name, {})[key] = rank_correlations(
                    scorer.score_many(archs), bench.mean_acc)
                if include_fixed and weight_free == 'tensor':
                    scorers[name] = scorer
        models[name] = model
        timing[f'train {name} s'] = time.time() - t
    angles = {name: s.score_many(archs) for name, s in scorers.items()}
    rand_name = next(n for n in scorers if n.startswith('random'))
    true_name = next(n for n in scorers if n.startswith('true'))
    angles['random'], angles['true'] = angles[rand_name], angles[true_name]
    scorers['random'], scorers['true'] = scorers[rand_name], scorers[true_name]
    models['true'] = models[true_name]
    per_choice = {name: dict(fixed=list(s.fixed), choice=[c.tolist() for c in s.choice])
                  for name, s in scorers.items() if name not in ('random', 'true')}

    t = time.time()
    model = models['true']
    gen = torch.Generator(device='cpu').manual_seed(args.seed)
    calib_idx = torch.randperm(len(x), generator=gen)[:args.calib_images].to(device)
    calib = [(x[calib_idx[i:i + 256]], None) for i in range(0, args.calib_images, 256)]
    val = [(xv[i:i + 1000], yv[i:i + 1000]) for i in range(0, len(xv), 1000)]
    plain_evaluator = OneShotEvaluator(model, calib, val)

    def evaluator(arch):
        with torch.autocast('cuda', dtype=torch.bfloat16, enabled=x.is_cuda):
            return plain_evaluator(arch)
    rng = np.random.default_rng(args.seed)
    sample = rng.choice(len(bench), size=min(args.oneshot_samples, len(bench)), replace=False)
    oneshot = {}
    for i in sample:
        oneshot[bench.archs[i]] = evaluator(bench.archs[i])
    timing['oneshot_sample_s'] = time.time() - t
    acc = bench.mean_acc
    scores = {'angle, random labels (RLNAS)': angles['random'],
              'angle, true labels': angles['true'], 'params': bench.params,
              'FLOPs': bench.flops}
    corr_all = {n: rank_correlations(s, acc) for n, s in scores.items()}
    corr_sample = {n: rank_correlations(s[sample], acc[sample]) for n, s in scores.items()}
    corr_sample['one-shot accuracy, true labels (SPOS)'] = rank_correlations(
        list(oneshot.values()), acc[sample])

    def dump(**extra):
        result = dict(settings=vars(args), num_archs=len(bench), correlations_all=corr_all,
                      correlations_sample=corr_sample, sample_size=len(oneshot), timing=timing,
                      angle_variants=variants, angle_stats=per_choice,
                      device=torch.cuda.get_device_name() if device == 'cuda' else 'cpu',
                      **extra)
        with open(osp.join(args.out, 'scale_check.json'), 'w') as f:
            json.dump(result, f, indent=1)
    dump()
    np.savez(osp.join(args.out, 'scale_check_angles.npz'), archs=np.array(bench.archs),
             **{k.replace(' ', '_').replace(',', ''): v for k, v in angles.items()})
    complexity = LayerwiseComplexity(models['true'].cpu())
    models['true'].to(device)
    top1 = {n + ', exhaustive': bench.lookup(bench.archs[int(np.argmax(s))])
            for n, s in scores.items() if n.startswith('angle')}
    top1[f'one-shot accuracy, best of {len(oneshot)} sampled'] = bench.lookup(
        max(oneshot, key=oneshot.get))
    budgets = {}
    cache = dict(oneshot)
    for q in args.budgets.split(','):
        t = time.time()
        flops = float(np.percentile(bench.flops, int(q)))
        within = bench.flops <= flops
        picks = {}
        for name, fn in (('angle, random labels (evolution)', scorers['random'].score),
                         ('angle, true labels (evolution)', scorers['true'].score),
                         ('one-shot accuracy, true labels (evolution)',
                          lambda a: cache.setdefault(''.join(map(str, a)),
                                                     evaluator(''.join(map(str, a)))))):
            searcher = EvolutionSearcher([3] * 8, fn,
                                         lambda a: complexity(a)['flops'] <= flops,
                                         seed=args.seed, max_epochs=args.search_epochs)
            best = searcher.run()[0]
            picks[name] = dict(bench.lookup(best), evaluated=len(searcher.scores))
        ties = ties_at_max(bench.flops, within)
        picks['max FLOPs under budget'] = dict(
            bench.lookup(bench.archs[ties[0]]), tied=len(ties),
            tied_mean_acc=float(acc[ties].mean()),
            tied_rank_range=[int(bench.ranks[ties].min()), int(bench.ranks[ties].max())])
        picks['oracle (best under budget)'] = bench.best_under(flops)
        budgets[f'p{q}'] = dict(flops=flops, num_within=int(within.sum()), picks=picks)
        timing[f'search_p{q}_s'] = time.time() - t
        dump(top1=top1, budgets=budgets)
    timing['total_s'] = time.time() - t0
    dump(top1=top1, budgets=budgets)
    print(json.dumps(dict(corr_all=corr_all, corr_sample=corr_sample, timing=timing), indent=1))


if __name__ == '__main__':
    main()
