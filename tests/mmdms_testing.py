"""Helpers shared by the test suite (a uniquely named module: the projects' test folders have
their own conftest.py, so importing "conftest" by name would be ambiguous)."""
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def tiny_search_cfg(work_dir, max_iters=4, batch_size=4):
    """The CIFAR-10 search config shrunk to seconds: 8 base channels, tiny batches, no val."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'dms', 'resnet_dms_cifar10.py'))
    cfg.work_dir = str(work_dir)
    backbone = cfg.model.architecture.backbone
    backbone.stem_channels = backbone.base_channels = 8
    cfg.model.architecture.head.in_channels = 64
    cfg.train_dataloader.batch_size = batch_size
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_dataloader.dataset.data_root = osp.join(REPO, 'data', 'cifar10')
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
    cfg.param_scheduler.architecture[0].T_max = max_iters
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=2)
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = [dict(type='DMSSearchHook', interval=1, plot=False),
                        dict(type='mmdms.SafeCheckpointHook')]
    cfg.randomness = dict(seed=0, deterministic=False)
    return cfg


def build_from_config(config, scope='mmpretrain', edit=None):
    """A model from an OpenMMLab config (``mmpretrain::...``) without pretrained weights, in
    eval mode; ``edit(cfg.model)`` may shrink it first."""
    import importlib

    from mmengine.registry import MODELS, DefaultScope

    from mmdms.utils import load_config
    importlib.import_module(f'{scope}.models')
    cfg = load_config(config)
    cfg.model.pop('init_cfg', None)
    if edit is not None:
        edit(cfg.model)
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg.model).eval()


def hard_flops_after_keeping_half(model, x, seed=0):
    """Trace ``model``, keep half of every unit (random importance), and return the resource
    model's hard FLOPs, mmengine's count of the exported model, and the supernet's FLOPs."""
    import copy

    import torch

    from mmdms.analysis import count_complexity
    from mmdms.export import apply_structure
    from mmdms.models import DMSMutator
    torch.manual_seed(seed)
    original = copy.deepcopy(model).eval()
    model.eval()
    mutator = DMSMutator()
    mutator.prepare_from_supernet(model, lambda: model(x))
    for unit in mutator.units:
        unit.keep(max(unit.min_kept, unit.num_elements // 2), torch.rand(unit.num_elements))
    mutator.set_mode('hard')
    predicted = float(mutator.resources(hard=True)['flops'])
    exported = apply_structure(original, mutator.structure()).eval()
    counted = count_complexity(exported, x, lambda m, inp: m(inp))['flops']
    return predicted, counted, mutator.original_resources['flops'], exported
