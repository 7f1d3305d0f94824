"""Issue #8, investigation of table 1: one-factor-at-a-time variants of the CIFAR-10 DMS_np
experiment (search cost, searched structure alone, depth pruning, search length, structure
lr, resource-loss weight, importance EMA), at one budget, resumable:

    python tools/experiments/cifar10_dms_ablation.py \\
        --work-dir work_dirs/exp_cifar10_ablation --reference-work-dir work_dirs/exp_cifar10_v2
    python tools/experiments/cifar10_dms_ablation.py --smoke      # CI size

Every variant is an ordinary run of ``dmsexp.arms.Experiment`` in ``WORK_DIR/<variant>``
with the variant's overrides merged into the main experiment config (so a variant keeps the
settings it was started with, like the main driver's work dirs). The table compares each
variant with the main experiment's runs of the same budget and seeds (the reference rows)
and is written to the ``cifar10_ablation`` section of ``docs/results.md``, with
``docs/results/cifar10_ablation.{json,png}`` (``--smoke``: in the work dir). Variants are
listed in ``configs/experiments/cifar10_dms_ablation.py``.
"""
import argparse
import os.path as osp
import sys

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
sys.path[:0] = [REPO, HERE]

import torch  # noqa: E402

from cifar10_dms_vs_baselines import run_head, run_line  # noqa: E402
from dmsexp import ablation, report  # noqa: E402
from dmsexp.arms import ARMS, FIXED_SETTINGS, Experiment  # noqa: E402
from dmsexp.data import write_split  # noqa: E402
from dmsexp.driver import check_settings, make_logger, open_work_dir  # noqa: E402
from mmdms.utils import register_all_modules, setup_torch_load  # noqa: E402

CONFIG = osp.join(REPO, 'configs', 'experiments', 'cifar10_dms_ablation.py')
SMOKE_CONFIG = osp.join(REPO, 'configs', 'experiments', 'cifar10_dms_ablation_smoke.py')


SPEC = dict(
    title='CIFAR-10: why DMS_np retrained from scratch loses (investigation)',
    metric='top1', metric_label='top-1 (%)', digits=2, baseline_arm='uniform', baseline_label='uniform',
    arm_labels=report.ARM_LABELS,
    extra_columns=(('FLOPs ratio', lambda r: f'{r["flops_ratio"]:.3f}'),
                   ('blocks kept (last seed)', ablation.blocks_kept)))


def parse_args():
    return ablation.add_ablation_args(
        argparse.ArgumentParser(description='CIFAR-10: why DMS_np loses -- '
                                'one-factor-at-a-time variants (issue #8)'),
        work_dir='exp_cifar10_ablation', section='cifar10_ablation').parse_args()


def load_ablation(args):
    cfg = ablation.load_ablation(args, CONFIG, SMOKE_CONFIG, ARMS)
    if not osp.isabs(cfg.data_root):
        cfg.data_root = osp.join(REPO, cfg.data_root)
    return cfg


def write_reports(args, cfg, work_dir: str, pending: int, log) -> None:
    budget = float(cfg.budgets[0])

    def at_budget(runs):
        return [r for r in runs if r['budget'] == budget]
    reference = (at_budget(report.load_results(osp.abspath(args.reference_work_dir)))
                 if args.reference_work_dir else [])
    ablation.write_report(
        args, cfg, ablation.AblationSpec(
            intro=f'One factor at a time against the main experiment\'s settings, at '
            f'{budget:g} of the supernet\'s FLOPs. Single-seed differences below ~1 point are '
            'within the seed noise of the main table.', **SPEC),
        section='cifar10_ablation', driver='tools/experiments/cifar10_dms_ablation.py',
        repo=REPO, work_dir=work_dir, reference_runs=reference,
        variant_runs=lambda name: at_budget(report.load_results(osp.join(work_dir, name))),
        pending=pending, xlabel='CIFAR-10 test top-1 (%)',
        run_keys=('seed', 'top1', 'flops_ratio', 'params', 'structure'), log=log,
        budget=budget)


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    setup_torch_load()
    torch.set_num_threads(args.threads)
    cfg = load_ablation(args)
    work_dir = open_work_dir(args, 'exp_cifar10_ablation', REPO)
    log = make_logger(work_dir, tag='ablation')
    split_dir = osp.join(work_dir, 'splits')
    splits = dict(train=write_split(cfg.data_root, 'train', cfg.train_per_class, split_dir),
                  test=write_split(cfg.data_root, 'test', cfg.test_per_class, split_dir))
    budget = float(cfg.budgets[0])

    def open_variant(variant, exp, vdir):
        check_settings(vdir, exp, FIXED_SETTINGS)
        return Experiment(exp, vdir, splits, make_logger(vdir, tag='ablation'))

    ablation.run_variants(
        args, cfg, work_dir, log, open_variant=open_variant,
        keys=lambda v: [(arm, budget, s) for s in ablation.variant_seeds(cfg, v)
                        for arm in v['arms']],
        describe=run_head, run_line=run_line,
        write_reports=lambda pending: write_reports(args, cfg, work_dir, pending, log))

if __name__ == '__main__':
    main()
