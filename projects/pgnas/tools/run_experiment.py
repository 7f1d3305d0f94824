"""Run the PGNAS CIFAR-10 experiment end to end on CPU and write its table and plot.

Every step is an ordinary ``tools/train.py`` / ``tools/test.py`` command (printed and saved,
so each can be rerun alone); up to ``--jobs`` run at once, each with ``--threads`` threads.

    PYTHONPATH=. python projects/pgnas/tools/run_experiment.py \
        --work-dir work_dirs/pgnas/exp --results-dir projects/pgnas/results

Steps: train the PGNAS supernet (learned p) and the fixed-p baseline supernet (same budget);
search each with 200 candidates (PGNAS: posterior; baselines: uniform random on the same PGNAS
supernet with the cost-matched rate, and on the fixed-p supernet with its own p = 0.1); test
the supernets and the exported best-of-50 / best-of-200 candidates on the CIFAR-10 test set.
``--report-only`` rebuilds the table and plot from an existing work dir.
"""
import argparse
import json
import os
import os.path as osp
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
sys.path.insert(0, REPO)

from projects.pgnas.pgnas.engine.search_loop import summarize  # noqa: E402
from projects.pgnas.pgnas.fileio import (atomic_write, atomic_write_json,  # noqa: E402
                                         atomic_write_text)

CONFIGS = 'projects/pgnas/configs'
SUPERNETS = {
    'pgnas': f'{CONFIGS}/pgnas_supnet-r8-w8_cifar10.py',
    'fixedp': f'{CONFIGS}/fixedp_supnet-r8-w8_cifar10.py',
}
# name -> (search config, supernet it loads, label)
SEARCHES = {
    'pgnas': (f'{CONFIGS}/search_pgnas_supnet-r8-w8_cifar10.py', 'pgnas',
              'PGNAS: posterior-guided (learned p)'),
    'uniform': (f'{CONFIGS}/search_uniform_supnet-r8-w8_cifar10.py', 'pgnas',
                'uniform random, same PGNAS supernet (cost-matched p)'),
    'fixedp': (f'{CONFIGS}/search_fixedp_supnet-r8-w8_cifar10.py', 'fixedp',
               'uniform random predefined dropout (own supernet, p=0.1)'),
}
DEFAULT_EPOCHS = 8


def parse_args():
    parser = argparse.ArgumentParser(description='PGNAS vs random sampling on CIFAR-10 (CPU)')
    parser.add_argument('--work-dir', default='work_dirs/pgnas/exp')
    parser.add_argument('--results-dir', default=None,
                        help='copy the small result files (JSON, markdown, PNG) here')
    parser.add_argument('--epochs', type=int, default=DEFAULT_EPOCHS)
    parser.add_argument('--candidates', type=int, default=200)
    parser.add_argument('--report-at', type=int, nargs='+', default=[50, 200])
    parser.add_argument('--train-per-class', type=int, default=None,
                        help='override the configs (1000); N and l follow')
    parser.add_argument('--heldout-per-class', type=int, default=None)
    parser.add_argument('--test-per-class', type=int, default=None,
                        help='test on a class-balanced subset (default: all 10k)')
    parser.add_argument('--seed', type=int, default=0, help='candidate sampling seed')
    parser.add_argument('--jobs', type=int, default=2, help='steps run at once')
    parser.add_argument('--threads', type=int, default=1, help='torch threads per step')
    parser.add_argument('--skip-existing', action='store_true',
                        help='skip steps whose outputs exist (resume an interrupted run)')
    parser.add_argument('--report-only', action='store_true')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: tiny subsets, 1 epoch, 6 candidates')
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.candidates, args.report_at = 2, 6, [3, 6]
        args.train_per_class = args.train_per_class or 30
        args.heldout_per_class = args.heldout_per_class or 10
        args.test_per_class = args.test_per_class or 10
    if args.epochs < 2:
        parser.error('--epochs must be >= 2 (the schedule has a 1-epoch warm-up)')
    if max(args.report_at) > args.candidates:
        parser.error('--report-at values must not exceed --candidates')
    return args


def data_options(args):
    opts = []
    if args.train_per_class is not None:
        n = 10 * args.train_per_class
        opts += [f'train_dataloader.dataset.train_per_class={args.train_per_class}',
                 f'model.num_train_samples={n}', f'model.length_scale={(5e-4 * n)**0.5:.6f}']
    if args.heldout_per_class is not None:
        for loader in ('train_dataloader', 'val_dataloader'):
            opts.append(f'{loader}.dataset.heldout_per_class={args.heldout_per_class}')
    if args.test_per_class is not None:
        opts.append(f'test_dataloader.dataset.test_per_class={args.test_per_class}')
    return opts


def build_steps(args):
    """``[(name, command, deps, done_marker)]`` of the whole experiment."""
    w, e, steps = args.work_dir, args.epochs, []
    py = 'python'
    for name, config in SUPERNETS.items():
        opts = data_options(args)
        if e != DEFAULT_EPOCHS:
            opts += [f'train_cfg.max_epochs={e}', f'param_scheduler.1.T_max={e - 1}',
                     f'param_scheduler.1.end={e}']
        raw = f'{w}/supernet_{name}/epoch_{e}.pth'
        ckpt = f'{w}/supernet_{name}/supernet_{name}.pth'
        cmd = [py, 'tools/train.py', config, '--work-dir', f'{w}/supernet_{name}']
        steps.append((f'train_{name}', cmd + (['--cfg-options'] + opts if opts else []), [],
                      raw))
        steps.append((f'publish_{name}',
                      [py, 'projects/pgnas/tools/publish_checkpoint.py', raw, ckpt],
                      [f'train_{name}'], ckpt))
        test_cmd = [py, 'tools/test.py', config, ckpt, '--work-dir', f'{w}/test_supernet_{name}']
        test_opts = [o for o in data_options(args) if o.startswith('test_')]
        steps.append((f'test_supernet_{name}',
                      test_cmd + (['--cfg-options'] + test_opts if test_opts else []),
                      [f'publish_{name}'], None))
    report = '[' + ','.join(str(n) for n in args.report_at) + ']'
    for name, (config, supernet, _) in SEARCHES.items():
        # the heldout size override applies to the search loop's dataloader
        opts = [o for o in data_options(args) if not o.startswith('val_')]
        opts += [f'load_from={w}/supernet_{supernet}/supernet_{supernet}.pth',
                 f'train_cfg.num_candidates={args.candidates}', f'train_cfg.report_at={report}',
                 f'train_cfg.seed={args.seed}']
        out = f'{w}/search_{name}'
        steps.append((f'search_{name}',
                      [py, 'tools/train.py', config, '--work-dir', out, '--cfg-options'] + opts,
                      [f'publish_{supernet}'], f'{out}/search_results.json'))
        for n in args.report_at:
            steps.append((f'test_{name}_best_of_{n}',
                          [py, 'tools/test.py', f'{out}/best_of_{n}.py', f'{out}/best_of_{n}.pth',
                           '--work-dir', f'{w}/test_{name}_best_of_{n}'], [f'search_{name}'],
                          None))
    # searches first: the short test steps fill in around them
    order = ('train_', 'publish_', 'search_', 'test_')
    return sorted(steps, key=lambda step: [step[0].startswith(o) for o in order].index(True))


def run_steps(steps, args, log_dir):
    """Run steps respecting deps, ``args.jobs`` at a time; returns per-step timings."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''),
               OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    timings_path = osp.join(args.work_dir, 'timings.json')
    timings = {}
    if osp.isfile(timings_path):
        with open(timings_path) as f:
            timings = json.load(f)
    pending, running, done = list(steps), {}, set()
    os.makedirs(log_dir, exist_ok=True)
    while pending or running:
        for step in list(pending):
            name, cmd, deps, marker = step
            if len(running) >= args.jobs or not all(d in done for d in deps):
                continue
            pending.remove(step)
            if args.skip_existing and name in timings and timings[name]['rc'] == 0 and (
                    marker is None or osp.exists(osp.join(REPO, marker))):
                print(f'[skip] {name}', flush=True)
                done.add(name)
                continue
            log = open(osp.join(log_dir, f'{name}.log'), 'w')
            print(f'[start] {name}: {shlex.join(cmd)}', flush=True)
            cmd = [sys.executable] + cmd[1:]
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
            running[proc.pid] = (name, step, log, time.time())
        if not running:
            if pending:
                raise RuntimeError(f'steps {[s[0] for s in pending]} wait on failed steps')
            break
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        name, step, log, start = running.pop(pid)
        log.close()
        rc = os.waitstatus_to_exitcode(status)
        timings[name] = dict(command='PYTHONPATH=. ' + shlex.join(step[1]), rc=rc,
                             wall_s=round(time.time() - start, 1),
                             cpu_s=round(usage.ru_utime + usage.ru_stime, 1))
        atomic_write_json(timings_path, timings)
        print(f'[done] {name}: rc={rc} wall={timings[name]["wall_s"]}s '
              f'cpu={timings[name]["cpu_s"]}s', flush=True)
        if rc != 0:
            raise RuntimeError(f'step {name} failed (rc={rc}); see {log_dir}/{name}.log')
        done.add(name)
    return timings


_ACC = re.compile(r'Epoch\(test\).*accuracy/top1:\s*([\d.]+)')


def read_test_acc(log_path):
    with open(log_path) as f:
        hits = _ACC.findall(f.read())
    if not hits:
        raise RuntimeError(f'no test accuracy in {log_path}')
    return float(hits[-1])


def load_results(args, log_dir):
    searches = {}
    for name in SEARCHES:
        with open(osp.join(args.work_dir, f'search_{name}', 'search_results.json')) as f:
            searches[name] = json.load(f)
    tests = {}
    for name in SUPERNETS:
        tests[f'supernet_{name}'] = read_test_acc(osp.join(log_dir, f'test_supernet_{name}.log'))
    for name in SEARCHES:
        for n in args.report_at:
            key = f'{name}_best_of_{n}'
            tests[key] = read_test_acc(osp.join(log_dir, f'test_{key}.log'))
    return searches, tests


def make_table(args, searches, tests, timings):
    lines = [
        '| sampler | C | best held-out acc (%) | its test acc (%) | its cost (MACs of gated '
        'convs, x supernet) | its params | candidates: mean ± std held-out acc (%) |',
        '|---|---|---|---|---|---|---|'
    ]
    for name, (_, _, label) in SEARCHES.items():
        res = searches[name]
        for n in args.report_at:
            best = res['best'][str(n)]
            stats = summarize([r['acc'] for r in res['candidates'][:n]])
            lines.append(f'| {label} | {n} | {best["acc"]:.2f} | '
                         f'{tests[f"{name}_best_of_{n}"]:.2f} | {best["cost_ratio"]:.3f} | '
                         f'{best["export"]["params"]:,} | {stats["mean"]:.2f} ± '
                         f'{stats["std"]:.2f} |')
    lines += [
        '', '| supernet (mean network, no mask) | held-out acc (%) | test acc (%) |',
        '|---|---|---|'
    ]
    for name in SUPERNETS:
        search = 'pgnas' if name == 'pgnas' else 'fixedp'
        lines.append(f'| {name} | {searches[search]["supernet_heldout_acc"]:.2f} | '
                     f'{tests[f"supernet_{name}"]:.2f} |')
    return '\n'.join(lines) + '\n'


def candidate_breakdown(args, searches):
    """Why the samplers differ: regenerate every candidate's masks from its seed and count
    the channels it drops from *essential* units (learned p < 0.5 in the PGNAS supernet)."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    from projects.pgnas.pgnas.models import sample_candidate
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(SUPERNETS['pgnas'])
    model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    out = {}
    for name, (_, supernet, _) in SEARCHES.items():
        ckpt = osp.join(args.work_dir, f'supernet_{supernet}', f'supernet_{supernet}.pth')
        model.load_state_dict(torch.load(ckpt, weights_only=True)['state_dict'])
        essential = [n for n, p in searches['pgnas']['drop_rates'].items() if p < 0.5]
        res = searches[name]
        rate = res['drop_rate'] if res['sampler'] == 'uniform' else None
        dropped, accs = [], []
        for rec in res['candidates']:
            cand = sample_candidate(model, res['seed'], rec['index'], rate)
            dropped.append(sum(int((~cand[n]).sum()) for n in essential))
            accs.append(rec['acc'])
        d, a = torch.tensor(dropped, dtype=torch.float), torch.tensor(accs)
        corr = float(torch.corrcoef(torch.stack([d, a]))[0, 1]) if d.std() > 0 else None
        by_count = {}
        for k in sorted(set(dropped)):
            sel = [x for x, n in zip(accs, dropped) if n == k]
            by_count[str(k)] = dict(n=len(sel), mean_acc=round(sum(sel) / len(sel), 2))
        out[name] = dict(mean_dropped_essential=round(float(d.mean()), 2),
                         corr_acc_vs_dropped_essential=None if corr is None else round(corr, 3),
                         acc_by_dropped_essential=by_count)
    return out


def make_plot(args, searches, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    colors = dict(pgnas='tab:red', uniform='tab:blue', fixedp='tab:green')
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    accs_all = [r['acc'] for res in searches.values() for r in res['candidates']]
    bins = [min(accs_all) + i * (max(accs_all) - min(accs_all) + 1e-9) / 40 for i in range(41)]
    for name, (_, _, label) in SEARCHES.items():
        recs = searches[name]['candidates']
        accs = [r['acc'] for r in recs]
        axes[0].hist(accs, bins=bins, alpha=0.5, color=colors[name], label=label)
        best, curve = -1., []
        for a in accs:
            best = max(best, a)
            curve.append(best)
        axes[1].plot(range(1, len(curve) + 1), curve, color=colors[name], label=label)
        axes[2].scatter([r['cost_ratio'] for r in recs], accs, s=8, alpha=0.6,
                        color=colors[name], label=label)
    axes[0].set(xlabel='held-out top-1 of a candidate (%)', ylabel='candidates',
                title=f'candidate accuracies (C={args.candidates}, no fine-tuning)')
    axes[1].set(xlabel='candidates evaluated', ylabel='best held-out top-1 so far (%)',
                title='best of first C', xscale='log')
    for n in args.report_at:
        axes[1].axvline(n, color='gray', lw=0.5, ls='--')
    axes[2].set(xlabel='gated-conv MACs / supernet', ylabel='held-out top-1 (%)',
                title='accuracy vs candidate cost')
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format='png'))
    plt.close(fig)


def write_report(args, log_dir):
    searches, tests = load_results(args, log_dir)
    with open(osp.join(args.work_dir, 'timings.json')) as f:
        timings = json.load(f)
    report_dir = osp.join(args.work_dir, 'report')
    table = make_table(args, searches, tests, timings)
    total_cpu = sum(t['cpu_s'] for t in timings.values())
    run_path = osp.join(args.work_dir, 'run.json')
    run = json.load(open(run_path)) if osp.isfile(run_path) else {}
    summary = dict(
        args={k: v for k, v in vars(args).items()},
        test_acc=tests,
        searches={
            name: dict(label=SEARCHES[name][2], drop_rate=res['drop_rate'],
                       supernet_heldout_acc=res['supernet_heldout_acc'],
                       search_seconds=res['search_seconds'],
                       best={n: {k: v for k, v in b.items() if k != 'export'}
                             for n, b in res['best'].items()},
                       stats={str(n): summarize([r['acc'] for r in res['candidates'][:n]])
                              for n in args.report_at},
                       heldout_accs=[r['acc'] for r in res['candidates']],
                       cost_ratios=[round(r['cost_ratio'], 4) for r in res['candidates']])
            for name, res in searches.items()
        },
        learned_drop_rates=searches['pgnas']['drop_rates'],
        breakdown=candidate_breakdown(args, searches),
        timings=timings,
        total_cpu_s=round(total_cpu, 1),
        total_wall_s=run.get('wall_s'))
    atomic_write_json(osp.join(report_dir, 'summary.json'), summary)
    atomic_write_text(osp.join(report_dir, 'table.md'), table)
    make_plot(args, searches, osp.join(report_dir, 'candidates.png'))
    print(table)
    print(json.dumps(summary['breakdown'], indent=1))
    print(f'total CPU time of all steps: {total_cpu:.0f}s')
    if args.results_dir:
        os.makedirs(args.results_dir, exist_ok=True)
        for fname in ('summary.json', 'table.md', 'candidates.png'):
            shutil.copyfile(osp.join(report_dir, fname), osp.join(args.results_dir, fname))


def main():
    args = parse_args()
    os.chdir(REPO)
    log_dir = osp.join(args.work_dir, 'logs')
    if not args.report_only:
        start = time.time()
        steps = build_steps(args)
        timings = run_steps(steps, args, log_dir)
        wall = time.time() - start
        cpu = sum(t['cpu_s'] for t in timings.values())
        atomic_write_json(osp.join(args.work_dir, 'run.json'),
                          dict(wall_s=round(wall, 1), cpu_s=round(cpu, 1), jobs=args.jobs,
                               threads=args.threads, argv=sys.argv))
        print(f'all steps done in {wall:.0f}s wall ({cpu:.0f}s CPU)')
    write_report(args, log_dir)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f'driver itself: {usage.ru_utime + usage.ru_stime:.1f}s CPU')


if __name__ == '__main__':
    main()
