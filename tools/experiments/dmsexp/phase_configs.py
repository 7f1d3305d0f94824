"""MMEngine configs for one training phase of an experiment arm.

Every phase of every arm shares the recipe of the experiment config: optimizer, batch size,
augmentation, and the cosine learning-rate curve over the arm's ``total_iters``
(``OffsetCosineLR``: a phase that continues training enters the curve where the previous one
left it; a model trained from scratch gets the whole curve over its own iterations).
"""
import copy
import os.path as osp
from typing import Optional

from mmengine.config import Config, ConfigDict

import mmdms.baselines  # noqa: F401  (registers OffsetCosineLR for the runners built here)

from .search_settings import dms_search_settings


def _plain(value):
    return value.to_dict() if isinstance(value, ConfigDict) else copy.deepcopy(value)


def dataloader(exp: Config, subset: str, ann_file: str, classes, train: bool) -> dict:
    base = _plain(exp.train_dataloader if train else exp.test_dataloader)
    base.update(num_workers=0, persistent_workers=False)
    if train:
        base['batch_size'] = exp.batch_size
    base['dataset'].update(data_root=exp.data_root, data_prefix=subset, ann_file=ann_file,
                           metainfo=dict(classes=list(classes)))
    return base


def phase_config(exp: Config, work_dir: str, seed: int, iters: int, model: dict,
                 splits: dict, test: bool, offset: int = 0, total: Optional[int] = None,
                 search: Optional[dict] = None) -> Config:
    """A complete Runner config.

    Args:
        exp: the experiment config (``configs/experiments/*.py``).
        model: the model config (an ``architecture``, a ``mmdms.PrunedModel`` or, with
            ``search``, the architecture to wrap in ``DMSAlgorithm``).
        splits: ``dict(train=(ann_file, classes), test=(ann_file, classes))``.
        offset, total: where this phase enters the cosine learning-rate curve of
            ``total`` iterations (default: a fresh curve over ``iters``).
        search: ``dict(target_ratio=...)`` makes this a DMS search phase.
    """
    total = iters if total is None else total
    if offset + iters > total:
        raise ValueError(f'phase of {iters} iterations at offset {offset} overruns the '
                         f'{total}-iteration schedule')
    lr = [dict(type='OffsetCosineLR', total=total, offset=offset, eta_min=exp.eta_min,
               by_epoch=False)]
    optimizer = _plain(exp.optimizer)
    cfg = dict(
        default_scope='mmdms',
        custom_imports=dict(imports=['mmdms.baselines'], allow_failed_imports=False),
        work_dir=work_dir,
        randomness=dict(seed=seed, deterministic=False),
        train_dataloader=dataloader(exp, 'train', *splits['train'], train=True),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters + 1),
        val_cfg=None, val_dataloader=None, val_evaluator=None,
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=exp.log_interval),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', by_epoch=False,
                            interval=exp.checkpoint_interval, max_keep_ckpts=1,
                            save_last=True),
            sampler_seed=dict(type='DistSamplerSeedHook')),
        custom_hooks=[],
        log_processor=dict(by_epoch=False),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'),
                     mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0)),
        log_level='INFO',
        load_from=None,
        resume=False)
    if test:
        cfg.update(test_dataloader=dataloader(exp, 'test', *splits['test'], train=False),
                   test_cfg=dict(), test_evaluator=_plain(exp.test_evaluator))
    if search is None:
        cfg.update(model=_plain(model),
                   optim_wrapper=dict(type='OptimWrapper', optimizer=optimizer),
                   param_scheduler=lr)
    else:
        cfg.update(dms_search_settings(
            exp.dms, _plain(model), dict(optimizer=optimizer), lr, search['target_ratio'],
            exp.input_shape, exp.log_interval))
    # no yapf formatting: MMEngine formats the config on every runner start, dump and
    # checkpoint (~1 s of CPU each), which adds up over the ~100 phases of a table
    return Config(cfg, format_python_code=False)


def pruned_model(exp: Config, structure_file: str) -> dict:
    """The supernet architecture pruned to ``structure_file`` (original classes)."""
    return dict(type='mmdms.PrunedModel', architecture=_plain(exp.architecture),
                structure=osp.abspath(structure_file))
