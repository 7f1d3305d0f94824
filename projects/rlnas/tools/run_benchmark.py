"""RLNAS vs. baselines on NAS-Bench-Macro (CIFAR-10), end to end and CPU-sized.

    PYTHONPATH=. python projects/rlnas/tools/run_benchmark.py [--work-dir work_dirs/rlnas/benchmark]

Steps (each skipped when its output exists, so a rerun resumes; ``--force`` redoes them):
  1. train the supernet on random labels and, as the control, on true labels (tools/train.py,
     both at once, ``--threads`` each);
  2. at once: one-shot accuracy (BN recalibrated) of ``--oneshot-samples`` random architectures
     on the true-label supernet, and the accuracy-scored evolution under each FLOPs budget;
  3. angle-scored evolution searches (both supernets; no budget, 25th and 50th FLOPs percentile);
  4. report: angles of all 6,561 architectures, Kendall tau / Spearman rho against the
     benchmark's mean_acc next to params, FLOPs and one-shot accuracy, the picks under budgets,
     a scatter plot; small files are copied to ``--results-dir``.
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

CONFIGS = 'projects/rlnas/configs'
LABELS = ('random', 'true')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/rlnas/benchmark')
    parser.add_argument('--results-dir', default='projects/rlnas/results',
                        help='where the small result files (JSON, markdown, PNG) are copied')
    parser.add_argument('--epochs', type=int, default=4, help='supernet training epochs')
    parser.add_argument('--num-per-class', type=int, default=500,
                        help='training images per class for the supernets (5000 = all)')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--lr', type=float, default=0.05)
    parser.add_argument('--label-seed', type=int, default=0)
    parser.add_argument('--seed', type=int, default=0, help='run seed (init, sampling, search)')
    parser.add_argument('--oneshot-samples', type=int, default=50,
                        help='random architectures scored by one-shot accuracy')
    parser.add_argument('--calib-batches', type=int, default=2,
                        help='training batches for BN recalibration per candidate')
    parser.add_argument('--heldout-per-class', type=int, default=30,
                        help='held-out images per class (train images 4500+) for one-shot acc')
    parser.add_argument('--acc-search', default='8,4,4,4,4',
                        help='accuracy-scored evolution: population,top_k,mutations,crossovers,'
                        'generations (CPU-sized; the angle search uses 50,10,25,25,20)')
    parser.add_argument('--budgets', default='25,50', help='FLOPs percentiles of the benchmark')
    parser.add_argument('--threads', type=int, default=1, help='torch threads per process')
    parser.add_argument('--device', default=None,
                        help='device of the one-shot sample (training: what MMEngine picks)')
    parser.add_argument('--force', action='store_true', help='redo steps whose output exists')
    parser.add_argument('--steps', default='train,oneshot,search,report')
    # internal: one process of step 2
    parser.add_argument('--only', choices=['oneshot', 'acc-search'], help=argparse.SUPPRESS)
    return parser.parse_args()


def child_env(args) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO_ROOT + os.pathsep + env.get('PYTHONPATH', '')
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        env[var] = str(args.threads)
    if args.device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    return env


def train_cmd(args, config: str, work_dir: str, options: list) -> list:
    return [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), config,
            '--work-dir', work_dir, '--cfg-options'] + options


def run_parallel(cmds, logs, env):
    """Start every command, wait for all; raise with the log's tail if one fails."""
    procs = []
    for cmd, log in zip(cmds, logs):
        os.makedirs(osp.dirname(log), exist_ok=True)
        print(f'[run] {" ".join(cmd)}\n      > {log}', flush=True)
        procs.append((subprocess.Popen(cmd, stdout=open(log, 'w'), stderr=subprocess.STDOUT,
                                       env=env, cwd=REPO_ROOT), log))
    failed = []
    for proc, log in procs:
        if proc.wait() != 0:
            failed.append(log)
    if failed:
        tails = '\n'.join(f'--- {log}\n' + ''.join(open(log).readlines()[-15:])
                          for log in failed)
        raise RuntimeError(f'{len(failed)} command(s) failed:\n{tails}')


def budgets(args):
    import numpy as np

    from projects.rlnas.rlnas.benchmark import NASBenchMacro
    bench = NASBenchMacro()
    return bench, {f'p{q}': float(np.percentile(bench.flops, int(q)))
                   for q in args.budgets.split(',') if q}


# --- step 1 ---------------------------------------------------------------------------------
def step_train(args, env):
    from projects.rlnas.rlnas.datasets import load_folder_cache
    load_folder_cache(osp.join(REPO_ROOT, 'data/cifar10/train'),
                      osp.join(REPO_ROOT, 'work_dirs/rlnas/cifar10_train.npz'))
    cmds, logs = [], []
    for label in LABELS:
        work_dir = osp.join(args.work_dir, f'supernet_{label}')
        if osp.isfile(osp.join(work_dir, 'final_weights.pth')) and not args.force:
            print(f'[skip] {work_dir} is trained')
            continue
        dataset_key = 'train_dataloader.dataset' + ('.dataset' if label == 'random' else '')
        options = [
            f'max_epochs={args.epochs}', f'train_cfg.max_epochs={args.epochs}',
            f'param_scheduler.end={args.epochs}', f'param_scheduler.T_max={args.epochs}',
            f'{dataset_key}.num_per_class={args.num_per_class}',
            f'train_dataloader.batch_size={args.batch_size}',
            f'optim_wrapper.optimizer.lr={args.lr}', f'randomness.seed={args.seed}'
        ]
        if label == 'random':
            options.append(f'train_dataloader.dataset.seed={args.label_seed}')
        cmds.append(train_cmd(args, f'{CONFIGS}/supernet_nbm_cifar10_{label}-label.py',
                              work_dir, options))
        logs.append(osp.join(args.work_dir, 'logs', f'supernet_{label}.log'))
    run_parallel(cmds, logs, env)


# --- step 2 ---------------------------------------------------------------------------------
def search_options(args, label: str, flops) -> list:
    return [
        f'train_cfg.supernet_weights={args.work_dir}/supernet_{label}/final_weights.pth',
        f'train_cfg.constraints.flops={flops}', f'train_cfg.seed={args.seed}'
    ]


def acc_search_options(args, flops) -> list:
    pop, top_k, mut, cross, gens = (int(x) for x in args.acc_search.split(','))
    return search_options(args, 'true', flops) + [
        f'train_cfg.calib_batches={args.calib_batches}',
        f'train_dataloader.batch_size={args.batch_size}',
        f'train_cfg.val_dataloader.dataset.num_per_class={args.heldout_per_class}',
        f'train_cfg.population_size={pop}', f'train_cfg.top_k={top_k}',
        f'train_cfg.num_mutation={mut}', f'train_cfg.num_crossover={cross}',
        f'train_cfg.max_epochs={gens}'
    ]


def step_oneshot_sample(args):
    """One-shot accuracy of a fixed random sample of architectures (true-label supernet)."""
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from projects.rlnas.rlnas.engine.search_loop import load_state_dict
    from projects.rlnas.rlnas.registry import MODELS
    from projects.rlnas.rlnas.search import OneShotEvaluator, collect_batches
    from projects.rlnas.rlnas.utils import atomic_write_json
    out = osp.join(args.work_dir, 'oneshot_true.json')
    if osp.isfile(out) and not args.force:
        print(f'[skip] {out} exists')
        return
    torch.set_num_threads(args.threads)
    cfg = Config.fromfile(f'{CONFIGS}/search_nbm_cifar10_accuracy.py')
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    model.load_state_dict(
        load_state_dict(f'{args.work_dir}/supernet_true/final_weights.pth'), strict=True)
    if args.device:
        model.to(args.device)
    cfg.train_dataloader.batch_size = args.batch_size
    heldout = cfg.train_cfg.val_dataloader
    heldout.dataset.num_per_class = args.heldout_per_class
    calib = collect_batches(model, Runner.build_dataloader(cfg.train_dataloader, seed=args.seed),
                            args.calib_batches)
    val = collect_batches(model, Runner.build_dataloader(heldout), None)
    evaluator = OneShotEvaluator(model, calib, val)
    rng = np.random.default_rng(args.seed)
    all_archs = [''.join(map(str, a)) for a in np.ndindex(*model.backbone.num_choices)]
    sample = rng.choice(len(all_archs), size=args.oneshot_samples, replace=False)
    scores = {}
    t0 = time.time()
    for n, i in enumerate(sample):
        scores[all_archs[i]] = evaluator(all_archs[i])
        if (n + 1) % 10 == 0:
            print(f'[oneshot] {n + 1}/{len(sample)} ({time.time() - t0:.0f} s)', flush=True)
    atomic_write_json(scores, out)


def step_acc_search(args, env):
    _, flops_budgets = budgets(args)
    for name, flops in flops_budgets.items():
        work_dir = osp.join(args.work_dir, f'search_accuracy_true_{name}')
        if osp.isfile(osp.join(work_dir, 'search_results.json')) and not args.force:
            print(f'[skip] {work_dir} done')
            continue
        run_parallel([train_cmd(args, f'{CONFIGS}/search_nbm_cifar10_accuracy.py', work_dir,
                                acc_search_options(args, flops))],
                     [osp.join(args.work_dir, 'logs', f'search_accuracy_true_{name}.log')], env)


def step_oneshot(args, env):
    """Step 2: the sample and the accuracy searches in two processes."""
    me = [sys.executable, osp.abspath(__file__)] + [a for a in sys.argv[1:]]
    run_parallel([me + ['--only', 'oneshot'], me + ['--only', 'acc-search']],
                 [osp.join(args.work_dir, 'logs', 'oneshot_sample.log'),
                  osp.join(args.work_dir, 'logs', 'acc_search.log')], env)


# --- step 3 ---------------------------------------------------------------------------------
def step_search(args, env):
    _, flops_budgets = budgets(args)
    for label in LABELS:
        for name, flops in [('none', None)] + list(flops_budgets.items()):
            work_dir = osp.join(args.work_dir, f'search_angle_{label}_{name}')
            if osp.isfile(osp.join(work_dir, 'search_results.json')) and not args.force:
                print(f'[skip] {work_dir} done')
                continue
            run_parallel([train_cmd(args, f'{CONFIGS}/search_nbm_cifar10_angle.py', work_dir,
                                    search_options(args, label, flops))],
                         [osp.join(args.work_dir, 'logs', f'search_angle_{label}_{name}.log')],
                         env)


# --- step 4 ---------------------------------------------------------------------------------
def step_report(args):
    from projects.rlnas.rlnas.benchmark.report import write_report
    settings = {k: v for k, v in vars(args).items() if k not in ('steps', 'only', 'force')}
    write_report(args.work_dir, args.results_dir, settings)


def main():
    args = parse_args()
    os.chdir(REPO_ROOT)
    env = child_env(args)
    if args.only == 'oneshot':
        return step_oneshot_sample(args)
    if args.only == 'acc-search':
        return step_acc_search(args, env)
    steps = args.steps.split(',')
    timing_path = osp.join(args.work_dir, 'timing.json')
    timing = json.load(open(timing_path)) if osp.isfile(timing_path) else {}
    for name, fn in [('train', lambda: step_train(args, env)),
                     ('oneshot', lambda: step_oneshot(args, env)),
                     ('search', lambda: step_search(args, env)),
                     ('report', lambda: step_report(args))]:
        if name not in steps:
            continue
        wall0 = time.time()
        usage0 = [resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                      resource.RUSAGE_CHILDREN)]
        print(f'== step {name}', flush=True)
        fn()
        usage1 = [resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                      resource.RUSAGE_CHILDREN)]
        cpu = sum(u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime
                  for u0, u1 in zip(usage0, usage1))
        if name != 'report' and cpu > 1:  # a skipped step keeps its earlier timing
            timing[name] = dict(wall_s=round(time.time() - wall0, 1), cpu_s=round(cpu, 1))
        os.makedirs(args.work_dir, exist_ok=True)
        with open(timing_path, 'w') as f:
            json.dump(timing, f, indent=1)
        print(f'== step {name}: {time.time() - wall0:.0f} s wall, {cpu:.0f} s CPU', flush=True)


if __name__ == '__main__':
    main()
