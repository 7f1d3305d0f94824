"""The DMS search part of a runner config, shared by the classification and detection
experiments: both wrap their supernet in ``DMSAlgorithm`` with the same mutator, structure
optimizer and search hook, built from the experiment config's ``dms`` dict.

``dms`` keys: ``structure_lr``, ``loss_weight``, ``decay_fraction``, ``importance_metric``,
and optionally ``importance_decay`` (0.99), ``prune_depth`` (True), ``lambda_scale`` (the
width masks' temperature multiplier; unset: the mutator's default of 1) and ``fixed_ratios``
(``{unit name pattern: ratio}`` the search does not move; see ``DMSMutator``).
"""
from typing import Sequence


def dms_search_settings(dms: dict, architecture: dict, architecture_optim: dict,
                        lr_schedule: list, target_ratio: float, input_shape: Sequence[int],
                        log_interval: int) -> dict:
    """``model``, ``optim_wrapper``, ``param_scheduler``, ``custom_hooks`` and
    ``model_wrapper_cfg`` of a DMS search phase (to ``update`` a runner config with).

    Args:
        dms: the experiment's DMS settings (see the module docstring).
        architecture: the supernet config.
        architecture_optim: the optim wrapper of the supernet's weights (the experiment's
            ordinary training recipe); the structure parameters get Adam (beta1 0, as DMS).
        lr_schedule: the weights' learning-rate schedulers; the structure lr is constant.
        target_ratio: the FLOPs target as a fraction of the supernet's.
    """
    mutator = dict(type='mmdms.DMSMutator', importance_metric=dms['importance_metric'],
                   importance_decay=dms.get('importance_decay', 0.99),
                   prune_depth=dms.get('prune_depth', True))
    if dms.get('lambda_scale') is not None:
        mutator['channel_unit_cfg'] = dict(lambda_scale=float(dms['lambda_scale']))
    if dms.get('fixed_ratios'):
        mutator['fixed_ratios'] = dict(dms['fixed_ratios'])
    return dict(
        model=dict(type='mmdms.DMSAlgorithm', architecture=architecture, mutator=mutator,
                   target_ratio=target_ratio, resource='flops',
                   loss_weight=dms['loss_weight'], input_shape=tuple(input_shape)),
        optim_wrapper=dict(
            constructor='mmdms.DMSOptimWrapperConstructor', architecture=architecture_optim,
            mutator=dict(optimizer=dict(type='Adam', lr=dms['structure_lr'],
                                        betas=(0.0, 0.999)))),
        param_scheduler=dict(architecture=lr_schedule, mutator=[]),
        custom_hooks=[dict(type='mmdms.DMSSearchHook', decay_fraction=dms['decay_fraction'],
                           interval=log_interval)],
        model_wrapper_cfg=dict(type='mmdms.DMSDistributedDataParallel',
                               find_unused_parameters=False))
