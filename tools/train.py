"""Train (search with DMS, retrain, or train anything MMEngine builds) from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options k=v ...] [--launcher pytorch]
"""
import argparse
import os
import os.path as osp
import sys

# the repo root, so configs can `custom_imports` the packages under projects/
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmdms.utils import (add_safe_checkpoint_hook, init_cpu_distributed,  # noqa: E402
                         register_all_modules,
                         setup_torch_load)


def enable_amp(cfg: Config) -> None:
    """``--amp``: AmpOptimWrapper for the weights. A DMS search config keeps two wrappers
    (``DMSOptimWrapperConstructor``): AMP goes on the weights' one; the search step unscales
    the mask and ratio gradients itself (see ``dms_train_step``)."""
    optim = cfg.optim_wrapper
    if optim.get('constructor') in ('DMSOptimWrapperConstructor',
                                    'mmdms.DMSOptimWrapperConstructor'):
        optim = optim.get('architecture') or optim['mutator']
    if optim.get('type', 'OptimWrapper') in ('OptimWrapper', 'AmpOptimWrapper'):
        optim['type'] = 'AmpOptimWrapper'
        optim.setdefault('loss_scale', 'dynamic')
    else:
        raise ValueError(f'--amp: optim_wrapper type {optim["type"]!r} is not OptimWrapper; '
                         'set an AMP wrapper in the config instead')


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model with MMEngine (mmdms)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or from the latest one in the work dir '
        'when no path is given')
    parser.add_argument('--amp', action='store_true', help='enable automatic mixed precision')
    parser.add_argument('--no-validate', action='store_true', help='skip validation')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, e.g. train_cfg.max_epochs=2')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg, args):
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        enable_amp(cfg)
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    add_safe_checkpoint_hook(cfg)
    return cfg


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    setup_torch_load()
    cfg = merge_args(Config.fromfile(args.config), args)
    init_cpu_distributed(cfg.launcher)
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
