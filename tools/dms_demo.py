"""Main job of the quick start: a real DMS search on CIFAR-10 on CPU, then export and test.

Equivalent to::

    python tools/train.py configs/dms/resnet_dms_cifar10.py --work-dir WORK
    python tools/export_pruned.py configs/dms/resnet_dms_cifar10.py WORK/iter_N.pth \\
        --out-dir WORK/export
    python tools/test.py WORK/export/pruned_config.py WORK/export/pruned.pth

and prints target vs reached FLOPs, params and accuracy (supernet vs exported model).
"""
import argparse
import json
import os.path as osp
import time

from mmengine.config import Config
from mmengine.runner import Runner

from mmdms.export import export_pruned
from mmdms.utils import add_safe_checkpoint_hook, register_all_modules, setup_torch_load

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'dms', 'resnet_dms_cifar10.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'dms_demo'))
    parser.add_argument('--iters', type=int, default=300, help='search iterations')
    parser.add_argument('--target', type=float, default=0.5, help='FLOPs target ratio')
    parser.add_argument('--test-images', type=int, default=None,
                        help='evaluate on the first N test images (default: all 10,000)')
    return parser.parse_args()


def run_search(args) -> str:
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = args.work_dir
    cfg.model.target_ratio = args.target
    cfg.train_cfg.max_iters = args.iters
    cfg.train_cfg.val_interval = args.iters + 1  # the exported model is evaluated instead
    cfg.param_scheduler.architecture[0].T_max = args.iters
    cfg.default_hooks.checkpoint.interval = args.iters
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    add_safe_checkpoint_hook(cfg)
    Runner.from_cfg(cfg).train()
    return osp.join(args.work_dir, f'iter_{args.iters}.pth')


def run_test(config: str, checkpoint: str, work_dir: str, test_images) -> float:
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    cfg.load_from = checkpoint
    if test_images:
        cfg.test_dataloader.dataset.indices = test_images
    metrics = Runner.from_cfg(cfg).test()
    return float(metrics['accuracy/top1'])


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    setup_torch_load()
    start = time.time()
    checkpoint = run_search(args)
    search_seconds = time.time() - start
    export_dir = osp.join(args.work_dir, 'export')
    summary = export_pruned(CONFIG, checkpoint, export_dir)
    accuracy = run_test(osp.join(export_dir, 'pruned_config.py'),
                        osp.join(export_dir, 'pruned.pth'), osp.join(args.work_dir, 'test'),
                        args.test_images)
    o, e = summary['original'], summary['exported']
    rows = [
        ('FLOPs (M, 32x32)', f'{o["flops"] / 1e6:.2f}', f'{e["flops"] / 1e6:.2f}',
         f'{summary["exported_flops_ratio"]:.3f} (target {args.target:.3f})'),
        ('params (M)', f'{o["params"] / 1e6:.3f}', f'{e["params"] / 1e6:.3f}',
         f'{summary["exported_params_ratio"]:.3f}'),
        ('top-1 (%)', '-', f'{accuracy:.2f}', f'after {args.iters} search iterations'),
    ]
    print('\nDMS on CIFAR-10 (mmpretrain ResNet-18 CIFAR, 16 base channels), CPU')
    print(f'{"":18}{"supernet":>12}{"exported":>12}   ratio / note')
    for name, a, b, c in rows:
        print(f'{name:18}{a:>12}{b:>12}   {c}')
    kept = [(u['unit'], u['kept'], u['size']) for u in summary['units']]
    print('kept per unit: ' + ', '.join(f'{n.split(".")[-2] if "." in n else n}:{k}/{s}'
                                        for n, k, s in kept[:12]) + (' ...' if len(kept) > 12
                                                                     else ''))
    print(f'search {search_seconds / 60:.1f} min, total {(time.time() - start) / 60:.1f} min')
    print(f'plot: {osp.join(export_dir, "structure.png")}')
    result = dict(summary=summary, accuracy=accuracy, search_seconds=search_seconds)
    with open(osp.join(args.work_dir, 'demo_result.json'), 'w') as f:
        json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
