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
import math
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
# name -> (training config, label)
SUPERNETS = {
    'pgnas': (f'{CONFIGS}/pgnas_supnet-r8-w8_cifar10.py', 'PGNAS (learned p, p_logit lr x30)'),
    'fixedp': (f'{CONFIGS}/fixedp_supnet-r8-w8_cifar10.py', 'fixed p = 0.1'),
}
# variants of the PGNAS supernet: name -> (training config, label). ``--variant NAME...`` trains
# supernet ``pgnas_NAME`` and searches it with ``NAME_pgnas`` (posterior) and ``NAME_uniform``
# (cost-matched uniform), reported as the pair ``NAME_pgnas`` - ``NAME_uniform``
VARIANTS = {
    'plr10': (f'{CONFIGS}/pgnas-plr10_supnet-r8-w8_cifar10.py', 'p_logit lr x10'),
    'kl10': (f'{CONFIGS}/pgnas-kl10_supnet-r8-w8_cifar10.py', 'KL weight x10'),
}
DEFAULT_VARIANT = 'plr10'  # what a bare ``--variant`` means
SUPERNETS.update({f'pgnas_{v}': (config, f'VARIANT: PGNAS with {label}')
                  for v, (config, label) in VARIANTS.items()})
VARIANT_SUPERNETS = tuple(f'pgnas_{v}' for v in VARIANTS)
# name -> (search config, supernet it loads, label, sampler of the reference posterior)
SEARCHES = {
    'pgnas': (f'{CONFIGS}/search_pgnas_supnet-r8-w8_cifar10.py', 'pgnas',
              'PGNAS: posterior-guided (learned p)', 'pgnas'),
    'uniform': (f'{CONFIGS}/search_uniform_supnet-r8-w8_cifar10.py', 'pgnas',
                'uniform random, same PGNAS supernet (cost-matched p)', 'pgnas'),
    'fixedp': (f'{CONFIGS}/search_fixedp_supnet-r8-w8_cifar10.py', 'fixedp',
               'uniform random predefined dropout (own supernet, p=0.1)', 'pgnas'),
}
for _v, (_, _label) in VARIANTS.items():
    SEARCHES[f'{_v}_pgnas'] = (f'{CONFIGS}/search_pgnas_supnet-r8-w8_cifar10.py', f'pgnas_{_v}',
                               f'VARIANT {_label}: posterior-guided', f'{_v}_pgnas')
    SEARCHES[f'{_v}_uniform'] = (f'{CONFIGS}/search_uniform_supnet-r8-w8_cifar10.py',
                                 f'pgnas_{_v}', f'VARIANT {_label}: uniform, cost-matched',
                                 f'{_v}_pgnas')


def variant_searches(variant):
    return (f'{variant}_pgnas', f'{variant}_uniform')


VARIANT_SEARCHES = tuple(n for v in VARIANTS for n in variant_searches(v))
MAIN_SEARCHES = ('pgnas', 'uniform', 'fixedp')
# paired comparisons reported per seed: (a, b) -> a's best minus b's best
PAIRS = (('pgnas', 'uniform'), ('pgnas', 'fixedp')) + tuple(
    variant_searches(v) for v in VARIANTS)
DEFAULT_EPOCHS = 8


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='PGNAS vs random sampling on CIFAR-10 (CPU)')
    parser.add_argument('--work-dir', default='work_dirs/pgnas/exp')
    parser.add_argument('--results-dir', default=None,
                        help='copy the small result files (JSON, markdown, PNG) here')
    parser.add_argument('--supernet-dir', action='append', default=[],
                        help='reuse the published supernets (supernet_NAME/supernet_NAME.pth, '
                        'logs/test_supernet_NAME.log) found in this earlier work dir instead '
                        'of training them; repeatable. Missing ones are trained in --work-dir')
    parser.add_argument('--epochs', type=int, default=DEFAULT_EPOCHS)
    parser.add_argument('--candidates', type=int, default=200)
    parser.add_argument('--report-at', type=int, nargs='+', default=[50, 200])
    parser.add_argument('--test-at', type=int, nargs='+', default=None,
                        help='test the best-of-C winners only for these C (default: all of '
                        '--report-at)')
    parser.add_argument('--train-per-class', type=int, default=None,
                        help='override the configs (1000); N and l follow')
    parser.add_argument('--heldout-per-class', type=int, default=None)
    parser.add_argument('--heldout-extra-per-class', type=int, default=None,
                        help='extra held-out images per class taken after the train slice '
                        '(searches only; the training subset is unchanged)')
    parser.add_argument('--test-per-class', type=int, default=None,
                        help='test on a class-balanced subset (default: all 10k)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0],
                        help='candidate sampling seeds; each search runs once per seed')
    parser.add_argument('--variant', nargs='*', default=None, metavar='NAME',
                        help='also train these PGNAS supernet variants (pgnas_NAME; one of '
                        f'{", ".join(VARIANTS)}) and search each (NAME_pgnas: posterior, '
                        'NAME_uniform: cost-matched uniform) with --variant-seeds; a bare '
                        f'--variant means {DEFAULT_VARIANT}')
    parser.add_argument('--variant-seeds', type=int, nargs='+', default=[0],
                        help='the sampling seeds of the variant searches')
    parser.add_argument('--searches', nargs='+', default=None, choices=list(SEARCHES),
                        help='run only these searches (e.g. to split one experiment over two '
                        'driver processes sharing --work-dir); the report covers them all')
    parser.add_argument('--jobs', type=int, default=2, help='steps run at once')
    parser.add_argument('--threads', type=int, default=1, help='torch threads per step')
    parser.add_argument('--skip-existing', action='store_true',
                        help='skip steps whose outputs exist (resume an interrupted run)')
    parser.add_argument('--report-only', action='store_true')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: tiny subsets, 2 epochs, 6 candidates')
    args = parser.parse_args(argv)
    if args.variant is None:
        args.variant = []
    elif not args.variant:
        args.variant = [DEFAULT_VARIANT]
    unknown = [v for v in args.variant if v not in VARIANTS]
    if unknown:
        parser.error(f'unknown --variant {", ".join(unknown)}; choose from '
                     f'{", ".join(VARIANTS)}')
    args.variant = list(dict.fromkeys(args.variant))
    if args.quick:
        args.epochs, args.candidates, args.report_at = 2, 6, [3, 6]
        args.train_per_class = args.train_per_class or 30
        args.heldout_per_class = args.heldout_per_class or 10
        args.test_per_class = args.test_per_class or 10
    if args.epochs < 2:
        parser.error('--epochs must be >= 2 (the schedule has a 1-epoch warm-up)')
    if max(args.report_at) > args.candidates:
        parser.error('--report-at values must not exceed --candidates')
    args.test_at = args.report_at if args.test_at is None else args.test_at
    if not set(args.test_at) <= set(args.report_at):
        parser.error('--test-at values must be among --report-at')
    return args


def active_supernets(args):
    variants = {f'pgnas_{v}' for v in args.variant}
    return [n for n in SUPERNETS if n not in VARIANT_SUPERNETS or n in variants]


def active_searches(args, only=None):
    """``[(search, seed)]``: the main searches for every seed, the variant's for
    ``--variant-seeds``; ``only``: restrict to these search names."""
    runs = [(name, s) for s in args.seeds for name in MAIN_SEARCHES]
    runs += [(name, s) for s in args.variant_seeds for v in args.variant
             for name in variant_searches(v)]
    return [r for r in runs if only is None or r[0] in only]


def search_dir(args, name, seed):
    return f'{args.work_dir}/search_{name}_seed{seed}'


def supernet_home(args, name):
    """The work dir whose ``supernet_NAME`` is used: the first ``--supernet-dir`` holding a
    published checkpoint, else ``--work-dir`` (trained there)."""
    for d in args.supernet_dir:
        if osp.isfile(osp.join(REPO, d, f'supernet_{name}', f'supernet_{name}.pth')):
            return d
    return args.work_dir


def supernet_ckpt(args, name):
    return f'{supernet_home(args, name)}/supernet_{name}/supernet_{name}.pth'


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


def same_winner(search_out, n, other_n):
    """A check run just before a test step: when the best of ``n`` is the same candidate as
    the best of ``other_n`` (already tested), the exported models are identical, so the
    earlier test's result is reused instead of running ``tools/test.py`` again."""

    def check():
        with open(osp.join(REPO, search_out, 'search_results.json')) as f:
            best = json.load(f)['best']
        return best[str(n)]['index'] == best[str(other_n)]['index']

    return check


def build_steps(args):
    """``[(name, command, deps, done_marker, reuse)]`` of the whole experiment; ``reuse`` is
    None or ``(step, check)``: copy that step's log instead of running when ``check()``."""
    w, e, steps = args.work_dir, args.epochs, []
    py = 'python'
    searches = active_searches(args, getattr(args, 'searches', None))
    needed = {SEARCHES[name][1] for name, _ in searches}
    for name in active_supernets(args):
        if supernet_home(args, name) != w or name not in needed:
            continue  # reused from --supernet-dir, or not searched by this invocation
        config = SUPERNETS[name][0]
        opts = data_options(args)
        if e != DEFAULT_EPOCHS:
            opts += [f'train_cfg.max_epochs={e}', f'param_scheduler.1.T_max={e - 1}',
                     f'param_scheduler.1.end={e}']
        raw = f'{w}/supernet_{name}/epoch_{e}.pth'
        ckpt = f'{w}/supernet_{name}/supernet_{name}.pth'
        cmd = [py, 'tools/train.py', config, '--work-dir', f'{w}/supernet_{name}']
        steps.append((f'train_{name}', cmd + (['--cfg-options'] + opts if opts else []), [],
                      raw, None))
        steps.append((f'publish_{name}',
                      [py, 'projects/pgnas/tools/publish_checkpoint.py', raw, ckpt],
                      [f'train_{name}'], ckpt, None))
        test_cmd = [py, 'tools/test.py', config, ckpt, '--work-dir', f'{w}/test_supernet_{name}']
        test_opts = [o for o in data_options(args) if o.startswith('test_')]
        steps.append((f'test_supernet_{name}',
                      test_cmd + (['--cfg-options'] + test_opts if test_opts else []),
                      [f'publish_{name}'], None, None))
    report = '[' + ','.join(str(n) for n in args.report_at) + ']'
    for name, seed in searches:
        config, supernet = SEARCHES[name][:2]
        # the heldout size overrides apply to the search loop's dataloader
        opts = [o for o in data_options(args) if not o.startswith('val_')]
        if args.heldout_extra_per_class is not None:
            opts.append('train_dataloader.dataset.heldout_extra_per_class='
                        f'{args.heldout_extra_per_class}')
        opts += [f'load_from={supernet_ckpt(args, supernet)}',
                 f'train_cfg.num_candidates={args.candidates}', f'train_cfg.report_at={report}',
                 f'train_cfg.seed={seed}']
        out = search_dir(args, name, seed)
        tag = f'{name}_seed{seed}'
        deps = [f'publish_{supernet}'] if supernet_home(args, supernet) == w else []
        steps.append((f'search_{tag}',
                      [py, 'tools/train.py', config, '--work-dir', out, '--cfg-options'] + opts,
                      deps, f'{out}/search_results.json', None))
        tested = []
        for n in sorted(args.test_at, reverse=True):  # the largest C first
            reuse = None
            if tested:
                reuse = (f'test_{tag}_best_of_{tested[0]}', same_winner(out, n, tested[0]))
            steps.append((f'test_{tag}_best_of_{n}',
                          [py, 'tools/test.py', f'{out}/best_of_{n}.py', f'{out}/best_of_{n}.pth',
                           '--work-dir', f'{w}/test_{tag}_best_of_{n}'],
                          [f'search_{tag}'] + ([reuse[0]] if reuse else []), None, reuse))
            tested.append(n)
    # supernets, then searches (main before variant), then tests: short steps fill in around
    order = ('train_', 'publish_', 'test_supernet', 'search_', 'test_')

    def key(step):
        return ([step[0].startswith(o) for o in order].index(True),
                any(v in step[0] for v in VARIANT_SEARCHES))

    return sorted(steps, key=key)


def _merge_timing(path, name, entry):
    """Re-read and update ``timings.json`` (another driver may share the work dir)."""
    timings = {}
    if osp.isfile(path):
        with open(path) as f:
            timings = json.load(f)
    timings[name] = entry
    atomic_write_json(path, timings)
    return timings


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
            name, cmd, deps, marker, reuse = step
            if len(running) >= args.jobs or not all(d in done for d in deps):
                continue
            pending.remove(step)
            if args.skip_existing and name in timings and timings[name]['rc'] == 0 and (
                    marker is None or osp.exists(osp.join(REPO, marker))):
                print(f'[skip] {name}', flush=True)
                done.add(name)
                continue
            if args.skip_existing and marker is not None and osp.exists(osp.join(REPO, marker)):
                # finished, but not under this driver (e.g. it outlived a crashed driver):
                # the marker is written last and atomically, so the step is complete
                timings = _merge_timing(timings_path, name, dict(
                    command='PYTHONPATH=. ' + shlex.join(cmd), rc=0, wall_s=None, cpu_s=None,
                    note='finished outside the driver; not timed'))
                print(f'[skip] {name} (output exists, not timed)', flush=True)
                done.add(name)
                continue
            if reuse is not None and reuse[1]():
                shutil.copyfile(osp.join(log_dir, f'{reuse[0]}.log'),
                                osp.join(log_dir, f'{name}.log'))
                timings = _merge_timing(timings_path, name, dict(
                    command='PYTHONPATH=. ' + shlex.join(cmd), rc=0, wall_s=0., cpu_s=0.,
                    same_result_as=reuse[0]))
                print(f'[same] {name}: same candidate as {reuse[0]}, result reused',
                      flush=True)
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
        timings = _merge_timing(timings_path, name, dict(
            command='PYTHONPATH=. ' + shlex.join(step[1]), rc=rc,
            wall_s=round(time.time() - start, 1),
            cpu_s=round(usage.ru_utime + usage.ru_stime, 1)))
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
    """``searches[(name, seed)]``: search_results.json; ``tests[key]``: test top-1;
    ``missing``: planned searches / tests with no result (not run, or not finished)."""
    searches, tests, missing = {}, {}, []
    for name, seed in active_searches(args):
        path = osp.join(search_dir(args, name, seed), 'search_results.json')
        if not osp.isfile(path):
            missing.append(f'search_{name}_seed{seed}')
            continue
        with open(path) as f:
            searches[name, seed] = json.load(f)
    for name in active_supernets(args):
        home = supernet_home(args, name)
        tests[f'supernet_{name}'] = read_test_acc(
            osp.join(home, 'logs', f'test_supernet_{name}.log'))
    for name, seed in searches:
        for n in args.test_at:
            key = f'{name}_seed{seed}_best_of_{n}'
            try:
                tests[key] = read_test_acc(osp.join(log_dir, f'test_{key}.log'))
            except (OSError, RuntimeError):
                missing.append(f'test_{key}')
    return searches, tests, missing


def mean_std(values):
    """``(mean, sample std or None)`` of a list."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    st = summarize(values)
    return st['mean'], (st['std'] if len(values) > 1 else None)


def fmt_ms(values, digits=2):
    m, s = mean_std(values)
    if m is None:
        return 'n/a'
    return f'{m:.{digits}f}' + ('' if s is None else f' ± {s:.{digits}f}')


def fmt_list(values, digits=2, signed=False):
    spec = f'+.{digits}f' if signed else f'.{digits}f'
    return ' / '.join('–' if v is None else format(v, spec) for v in values)


def quantile(sorted_vals, q):
    """Linear-interpolated quantile of an ascending list."""
    pos = q * (len(sorted_vals) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (pos - lo) * (sorted_vals[hi] - sorted_vals[lo])


def expected_best_of(values, c):
    """E[max of c candidates drawn without replacement from ``values``] (exact order
    statistic: the k-th smallest of N is the max with probability C(k-1, c-1) / C(N, c))."""
    vals, n = sorted(values), len(values)
    total = math.comb(n, c)
    return sum(v * (math.comb(k - 1, c - 1) / total) for k, v in enumerate(vals, 1) if k >= c)


def pooled_stats(accs, c):
    vals = sorted(accs)
    st = summarize(vals)
    return dict(n=len(vals), mean=st['mean'], std=st['std'], min=vals[0],
                p05=quantile(vals, 0.05), median=quantile(vals, 0.5),
                p95=quantile(vals, 0.95), max=vals[-1],
                expected_best_of_c=expected_best_of(vals, c) if c <= len(vals) else None)


def aggregate(args, searches, tests):
    """Per (search, C): per-seed winners, their mean ± std, the pooled candidate
    distribution; per pair and C: per-seed paired differences."""
    names = [n for n in SEARCHES if any(k[0] == n for k in searches)]
    agg = {}
    for name in names:
        seeds = [s for (n, s) in searches if n == name]
        agg[name] = {}
        for c in args.report_at:
            per_seed = []
            for s in seeds:
                best = searches[name, s]['best'][str(c)]
                per_seed.append(dict(
                    seed=s, index=best['index'], heldout_acc=best['acc'],
                    test_acc=tests.get(f'{name}_seed{s}_best_of_{c}'),
                    cost_ratio=best['cost_ratio'],
                    params=best.get('export', {}).get('params')))
            pooled = [r['acc'] for s in seeds for r in searches[name, s]['candidates'][:c]]
            agg[name][str(c)] = dict(
                per_seed=per_seed,
                heldout_mean_std=mean_std([p['heldout_acc'] for p in per_seed]),
                test_mean_std=mean_std([p['test_acc'] for p in per_seed]),
                cost_mean=mean_std([p['cost_ratio'] for p in per_seed])[0],
                pooled=pooled_stats(pooled, c))
    paired = {}
    for a, b in PAIRS:
        if a not in agg or b not in agg:
            continue
        for c in args.report_at:
            pa = {p['seed']: p for p in agg[a][str(c)]['per_seed']}
            pb = {p['seed']: p for p in agg[b][str(c)]['per_seed']}
            seeds = sorted(set(pa) & set(pb))
            dh = [pa[s]['heldout_acc'] - pb[s]['heldout_acc'] for s in seeds]
            dt = [None if pa[s]['test_acc'] is None or pb[s]['test_acc'] is None else
                  pa[s]['test_acc'] - pb[s]['test_acc'] for s in seeds]
            paired[f'{a}-{b}@{c}'] = dict(
                a=a, b=b, c=c, seeds=seeds, heldout_diff=dh, test_diff=dt,
                heldout_diff_mean_std=mean_std(dh), test_diff_mean_std=mean_std(dt),
                heldout_wins=sum(d > 0 for d in dh), heldout_ties=sum(d == 0 for d in dh),
                test_wins=sum(d is not None and d > 0 for d in dt))
    return agg, paired


def make_table(args, searches, tests, agg, paired, missing=(), breakdown=None):
    heldout_n = {searches[k]['heldout_size'] for k in searches if 'heldout_size' in searches[k]}
    seeds = ', '.join(str(s) for s in args.seeds)
    lines = [
        f'Candidate sampling seeds: {seeds} ({args.candidates} candidates each; C = 50 is the '
        'first 50). Held-out: '
        + (', '.join(f'{n:,}' for n in sorted(heldout_n)) or '?') + ' images carved from the '
        'training folder, disjoint from the 10k training subset. Test: CIFAR-10 test set '
        f'({"all 10,000" if args.test_per_class is None else args.test_per_class * 10}), '
        'exported static winners through tools/test.py. "a ± b" = mean ± sample std over '
        'seeds; per-seed values in seed order.', '']
    if missing:
        lines += ['Not run / not finished (left out of every number below): '
                  + ', '.join(missing) + '.', '']
    lines += [
        '| sampler | C | best-of-C held-out acc (%): mean ± std | per seed | its test acc '
        '(%): mean ± std | per seed | its cost (x supernet), mean | pooled candidates: '
        'mean ± std | p5 / median / p95 / max | E[best of C] from pooled |',
        '|---|---|---|---|---|---|---|---|---|---|'
    ]
    for name, per_c in agg.items():
        for c in args.report_at:
            a = per_c[str(c)]
            ps, pool = a['per_seed'], a['pooled']
            ebc = pool['expected_best_of_c']
            lines.append(
                f'| {SEARCHES[name][2]} | {c} | {fmt_ms([p["heldout_acc"] for p in ps])} | '
                f'{fmt_list([p["heldout_acc"] for p in ps])} | '
                f'{fmt_ms([p["test_acc"] for p in ps])} | '
                f'{fmt_list([p["test_acc"] for p in ps])} | {a["cost_mean"]:.3f} | '
                f'{pool["mean"]:.2f} ± {pool["std"]:.2f} (n={pool["n"]}) | '
                f'{pool["p05"]:.2f} / {pool["median"]:.2f} / {pool["p95"]:.2f} / '
                f'{pool["max"]:.2f} | ' + ('n/a' if ebc is None else f'{ebc:.2f}') + ' |')
    lines += [
        '', 'Paired by seed (same seed, same held-out split): best-of-C of a minus best-of-C '
        'of b, in points.', '',
        '| a − b | C | held-out diff per seed | mean ± std | a wins / ties (held-out) | '
        'test diff per seed | mean ± std | a wins (test) |', '|---|---|---|---|---|---|---|---|'
    ]
    for p in paired.values():
        n = len(p['seeds'])
        has_test = any(d is not None for d in p['test_diff'])
        lines.append(
            f'| {p["a"]} − {p["b"]} | {p["c"]} | {fmt_list(p["heldout_diff"], signed=True)} | '
            f'{fmt_ms(p["heldout_diff"])} | {p["heldout_wins"]}/{n} wins, {p["heldout_ties"]} '
            f'ties | {fmt_list(p["test_diff"], signed=True)} | {fmt_ms(p["test_diff"])} | '
            + (f'{p["test_wins"]}/{n}' if has_test else 'n/a') + ' |')
    if breakdown:
        lines += [
            '', 'Why the distributions differ (all candidates, pooled over seeds): channels '
            'a candidate drops from the *essential* units (learned p < 0.5 in the reference '
            'posterior named in the row).', '',
            '| sampler | candidates | essential units (reference posterior) | essential '
            'channels dropped (mean) | corr(held-out acc, that count) | mean acc with 0 / '
            '1-2 / 3-5 / 6+ such drops (n) |',
            '|---|---|---|---|---|---|'
        ]
        for name, b in breakdown.items():
            cells = []
            for lo, hi in ((0, 0), (1, 2), (3, 5), (6, 10**6)):
                sel = [(v['n'], v['mean_acc']) for k, v in b['acc_by_dropped_essential'].items()
                       if lo <= int(k) <= hi]
                n = sum(x[0] for x in sel)
                cells.append('–' if n == 0 else
                             f'{sum(x[0] * x[1] for x in sel) / n:.2f} ({n})')
            corr = b['corr_acc_vs_dropped_essential']
            lines.append(f'| {SEARCHES[name][2]} | {b["n"]} | {b["essential_units"]} '
                         f'({SEARCHES[name][3]}) | {b["mean_dropped_essential"]:.2f} '
                         f'| {"n/a" if corr is None else f"{corr:.2f}"} | '
                         + ' / '.join(cells) + ' |')
    if heldout_n:
        n = min(heldout_n)
        lines += ['', f'Held-out noise: one candidate\'s accuracy on {n:,} images has a binomial '
                  f'standard error of {100 * (0.53 * 0.47 / n) ** 0.5:.2f} points at 53%.']
    lines += [
        '', '| supernet (mean network, no mask) | held-out acc (%) | test acc (%) |',
        '|---|---|---|'
    ]
    for name in active_supernets(args):
        search = next((k for k in searches if SEARCHES[k[0]][1] == name), None)
        held = '' if search is None else f'{searches[search]["supernet_heldout_acc"]:.2f}'
        lines.append(f'| {SUPERNETS[name][1]} | {held} | {tests[f"supernet_{name}"]:.2f} |')
    rates = {SUPERNETS[SEARCHES[k[0]][1]][1]: searches[k]['drop_rates'] for k in searches
             if searches[k]['sampler'] == 'posterior' and k[1] == args.seeds[0]}
    if rates:
        lines += ['', 'Learned drop rates p per branch (k1 / k3 / k3d2):', '',
                  '| mixed op | ' + ' | '.join(rates) + ' |',
                  '|---|' + '---|' * len(rates)]
        units = list(next(iter(rates.values())))
        ops = list(dict.fromkeys(u.split('.branches.')[0] for u in units))
        for op in ops:
            cells = []
            for r in rates.values():
                cells.append(' / '.join(f'{r[u]:.3f}' for u in units
                                        if u.startswith(op + '.branches.')))
            lines.append(f'| {op.replace("backbone.", "")} | ' + ' | '.join(cells) + ' |')
        for label, r in rates.items():
            lines.append(f'| {label}: units with p <= 0.04 | '
                         f'{sum(v <= 0.04 for v in r.values())} of {len(r)} |')
    return '\n'.join(lines) + '\n'


def candidate_breakdown(args, searches):
    """Why the samplers differ: regenerate every candidate's masks from its seed and count
    the channels it drops from *essential* units (learned p < 0.5 in the reference PGNAS
    supernet), pooled over seeds."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    from projects.pgnas.pgnas.models import sample_candidate
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(SUPERNETS['pgnas'][0])
    model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    out = {}
    for name in SEARCHES:
        keys = [k for k in searches if k[0] == name]
        if not keys:
            continue
        supernet, ref = SEARCHES[name][1], SEARCHES[name][3]
        ref_key = next(k for k in searches if k[0] == ref)
        essential = [n for n, p in searches[ref_key]['drop_rates'].items() if p < 0.5]
        model.load_state_dict(
            torch.load(osp.join(REPO, supernet_ckpt(args, supernet)),
                       weights_only=True)['state_dict'])
        dropped, accs = [], []
        for key in keys:
            res = searches[key]
            rate = res['drop_rate'] if res['sampler'] == 'uniform' else None
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
        out[name] = dict(essential_units=len(essential),
                         reference_posterior=ref,
                         mean_dropped_essential=round(float(d.mean()), 2),
                         corr_acc_vs_dropped_essential=None if corr is None else round(corr, 3),
                         acc_by_dropped_essential=by_count, n=len(accs))
    return out


COLORS = dict(pgnas='tab:red', uniform='tab:blue', fixedp='tab:green', plr10_pgnas='tab:purple',
              plr10_uniform='tab:cyan', kl10_pgnas='tab:orange', kl10_uniform='tab:olive')


def make_plot(args, searches, agg, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(14, 9.5))
    ax_hist, ax_curve, ax_best, ax_cost = axes.flat
    accs_all = [r['acc'] for res in searches.values() for r in res['candidates']]
    lo, hi = min(accs_all), max(accs_all)
    bins = [lo + i * (hi - lo + 1e-9) / 40 for i in range(41)]
    names = list(agg)
    for name in names:
        keys = sorted(k for k in searches if k[0] == name)
        color, label = COLORS[name], SEARCHES[name][2]
        ls = '--' if name in VARIANT_SEARCHES else '-'
        pooled = [r['acc'] for k in keys for r in searches[k]['candidates']]
        ax_hist.hist(pooled, bins=bins, density=True, histtype='step', lw=1.8, ls=ls,
                     color=color, label=f'{label} (n={len(pooled)})')
        for i, k in enumerate(keys):
            accs = [r['acc'] for r in searches[k]['candidates']]
            best, curve = -1., []
            for a in accs:
                best = max(best, a)
                curve.append(best)
            ax_curve.plot(range(1, len(curve) + 1), curve, color=color, ls=ls, lw=1.2,
                          alpha=0.8, label=label if i == 0 else None)
            ax_cost.scatter([r['cost_ratio'] for r in searches[k]['candidates']], accs, s=5,
                            alpha=0.35, color=color, label=label if i == 0 else None)
    for supernet in dict.fromkeys(SEARCHES[k[0]][1] for k in searches):
        key = next(k for k in searches if SEARCHES[k[0]][1] == supernet)
        ax_hist.axvline(searches[key]['supernet_heldout_acc'], color='k', lw=0.8,
                        ls='--' if supernet == 'pgnas' else ':')
    # per-seed winners: held-out (filled) and test (hollow), per sampler and C
    width = 0.8 / max(len(args.report_at), 1)
    for i, name in enumerate(names):
        for j, c in enumerate(args.report_at):
            x = i + (j - (len(args.report_at) - 1) / 2) * width
            ps = agg[name][str(c)]['per_seed']
            held = [p['heldout_acc'] for p in ps]
            test = [p['test_acc'] for p in ps if p['test_acc'] is not None]
            ax_best.scatter([x - 0.06] * len(held), held, color=COLORS[name], s=25)
            ax_best.hlines(sum(held) / len(held), x - 0.15, x + 0.03, color=COLORS[name])
            if test:
                ax_best.scatter([x + 0.06] * len(test), test, facecolors='none',
                                edgecolors=COLORS[name], s=25)
                ax_best.hlines(sum(test) / len(test), x - 0.03, x + 0.15, color=COLORS[name],
                               ls=':')
            ax_best.annotate(f'C={c}', (x, 0), xycoords=('data', 'axes fraction'),
                             ha='center', va='bottom', fontsize=7)
    ax_best.set_xticks(range(len(names)))
    ax_best.set_xticklabels([n.replace('_', '\n') for n in names], fontsize=8)
    ax_best.set(ylabel='top-1 (%)',
                title='best-of-C per seed: held-out (filled) / its test acc (hollow); '
                'lines = means')
    ax_hist.set(xlabel='held-out top-1 of a candidate (%)', ylabel='density',
                title=f'candidate accuracies, pooled over seeds {args.seeds} (no fine-tuning);'
                '\nblack: supernet mean network (dashed PGNAS, dotted fixed p)')
    ax_curve.set(xlabel='candidates evaluated', ylabel='best held-out top-1 so far (%)',
                 title='best of first C, one line per seed', xscale='log')
    for n in args.report_at:
        ax_curve.axvline(n, color='gray', lw=0.5, ls='--')
    ax_cost.set(xlabel='gated-conv MACs / supernet', ylabel='held-out top-1 (%)',
                title='accuracy vs candidate cost (all seeds)')
    ax_hist.legend(fontsize=7, loc='upper left')
    ax_curve.legend(fontsize=7, loc='lower right')
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format='png'))
    plt.close(fig)


def write_report(args, log_dir):
    searches, tests, missing = load_results(args, log_dir)
    if not any(k[0] == 'pgnas' for k in searches):
        raise RuntimeError('no PGNAS search results yet')
    with open(osp.join(args.work_dir, 'timings.json')) as f:
        timings = json.load(f)
    # timings of the steps of this run, plus those of supernets reused from --supernet-dir
    names = {s[0] for s in build_steps(argparse.Namespace(**dict(vars(args), searches=None)))}
    run_timings = {k: v for k, v in timings.items() if k in names}
    reused = {}
    for name in active_supernets(args):
        home = supernet_home(args, name)
        if home != args.work_dir and osp.isfile(osp.join(home, 'timings.json')):
            with open(osp.join(home, 'timings.json')) as f:
                other = json.load(f)
            for step in (f'train_{name}', f'publish_{name}', f'test_supernet_{name}'):
                if step in other:
                    reused[step] = dict(other[step], reused_from=home)
    agg, paired = aggregate(args, searches, tests)
    report_dir = osp.join(args.work_dir, 'report')
    breakdown = candidate_breakdown(args, searches)
    table = make_table(args, searches, tests, agg, paired, missing, breakdown)
    run_cpu = sum(t['cpu_s'] or 0 for t in run_timings.values())
    reused_cpu = sum(t['cpu_s'] or 0 for t in reused.values())
    run_path = osp.join(args.work_dir, 'run.json')
    run = json.load(open(run_path)) if osp.isfile(run_path) else {}
    runs = run.get('runs', [run] if run else [])
    starts = [r['start'] for r in runs if 'start' in r]
    summary = dict(
        args={k: v for k, v in vars(args).items()},
        test_acc=tests,
        missing=missing,
        aggregate=agg,
        paired=paired,
        searches={
            f'{name}_seed{seed}': dict(
                label=SEARCHES[name][2], seed=seed, supernet=SEARCHES[name][1],
                drop_rate=res['drop_rate'], heldout_size=res.get('heldout_size'),
                supernet_heldout_acc=res['supernet_heldout_acc'],
                search_seconds=res['search_seconds'],
                best={n: {k: v for k, v in b.items() if k != 'export'}
                      for n, b in res['best'].items()},
                heldout_accs=[r['acc'] for r in res['candidates']],
                cost_ratios=[round(r['cost_ratio'], 4) for r in res['candidates']])
            for (name, seed), res in searches.items()
        },
        learned_drop_rates={SEARCHES[k[0]][1]: res['drop_rates'] for k, res in searches.items()
                            if res['sampler'] == 'posterior' and k[1] == args.seeds[0]},
        breakdown=breakdown,
        timings=run_timings,
        reused_supernet_timings=reused,
        total_cpu_s=round(run_cpu, 1),
        reused_supernet_cpu_s=round(reused_cpu, 1),
        driver_runs=runs,
        # from the first driver's start to the last one's end (they may overlap)
        total_wall_s=(round(max(r['end'] for r in runs) - min(starts), 1) if starts else
                      (runs[0].get('wall_s') if runs else None)))
    # the summary is committed: paths inside the checkout (recorded step commands of a run
    # started with an absolute --work-dir) are written relative to it
    atomic_write_json(osp.join(report_dir, 'summary.json'),
                      json.loads(json.dumps(summary).replace(REPO + os.sep, '')))
    atomic_write_text(osp.join(report_dir, 'table.md'), table)
    make_plot(args, searches, agg, osp.join(report_dir, 'candidates.png'))
    print(table)
    print(f'CPU time of this run\'s steps: {run_cpu:.0f}s; reused supernet steps: '
          f'{reused_cpu:.0f}s')
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
        names = {s[0] for s in steps}
        ok = False
        try:
            timings = run_steps(steps, args, log_dir)
            ok = True
        finally:
            # one entry per driver invocation (several may share a work dir), also when a
            # step failed, so total_wall_s spans every invocation
            timings_path = osp.join(args.work_dir, 'timings.json')
            timings = json.load(open(timings_path)) if osp.isfile(timings_path) else {}
            wall = time.time() - start
            cpu = sum(t['cpu_s'] or 0 for k, t in timings.items() if k in names)
            run_path = osp.join(args.work_dir, 'run.json')
            runs = json.load(open(run_path)) if osp.isfile(run_path) else {}
            runs = runs.get('runs', []) if 'runs' in runs else ([runs] if runs else [])
            runs.append(dict(start=round(start, 1), end=round(time.time(), 1),
                             wall_s=round(wall, 1), cpu_s=round(cpu, 1), jobs=args.jobs,
                             threads=args.threads, argv=sys.argv, completed=ok))
            atomic_write_json(run_path, dict(runs=runs))
        print(f'all steps done in {wall:.0f}s wall ({cpu:.0f}s CPU)')
        if args.searches is not None:
            print('--searches given: run --report-only without it once every part is done')
            return
    write_report(args, log_dir)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f'driver itself: {usage.ru_utime + usage.ru_stime:.1f}s CPU')


if __name__ == '__main__':
    main()
