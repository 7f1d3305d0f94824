"""Export one architecture of a search space as a standalone model + config for retraining."""
import os.path as osp
from typing import Optional

from mmengine.config import Config

from .models.arch import arch_to_str
from .registry import MODELS
from .utils import REPO_ROOT, atomic_save, atomic_write_json, atomic_write_text

DEFAULT_RETRAIN_CONFIG = osp.join(REPO_ROOT, 'projects/rlnas/configs/retrain_nbm_cifar10.py')
_SPACE_KEYS = ('layers', 'candidate_ops', 'stem', 'head_channels', 'in_channels')


def export_subnet(supernet_config: str, arch, out_dir: str, weights: Optional[str] = None,
                  retrain_config: Optional[str] = None) -> dict:
    """Write ``subnet_<arch>.py`` (the retrain config with ``fixed_arch``), ``subnet_<arch>.json``
    (arch, FLOPs, params) and, with ``weights`` (the trained supernet), ``subnet_<arch>.pth``:
    the supernet's weights along the path, loadable with ``load_from`` (BN statistics are the
    supernet's mix of paths: retrain, or at least recalibrate BN, before trusting them).

    Returns the paths written.
    """
    from mmengine.registry import init_default_scope

    from .engine.search_loop import load_state_dict
    from .search import LayerwiseComplexity
    sup_cfg = Config.fromfile(supernet_config)
    init_default_scope(sup_cfg.get('default_scope', 'mmpretrain'))
    supernet = MODELS.build(sup_cfg.model)
    arch = supernet.backbone.parse(arch)
    name = arch_to_str(arch, supernet.backbone.num_choices)

    cfg = Config.fromfile(retrain_config or DEFAULT_RETRAIN_CONFIG)
    for key in _SPACE_KEYS:  # the retrain config must describe the same space
        if cfg.model.backbone.get(key) != sup_cfg.model.backbone.get(key):
            raise ValueError(f'the retrain config and the supernet config differ in the search '
                             f'space ({key}); export needs the same space')
    cfg.model.backbone.fixed_arch = name
    cfg.arch = name
    cfg.work_dir = osp.join('work_dirs', 'rlnas', f'retrain_{name}')

    paths = dict(config=osp.join(out_dir, f'subnet_{name}.py'),
                 info=osp.join(out_dir, f'subnet_{name}.json'))
    subnet = MODELS.build(cfg.model)
    cost = LayerwiseComplexity(supernet)(arch) if supernet.backbone.num_layers else {}
    if weights is not None:
        supernet.load_state_dict(load_state_dict(weights), strict=True)
        state = supernet.subnet_state_dict(arch)
        subnet.load_state_dict(state, strict=True)  # proves the names and shapes match
        paths['weights'] = osp.join(out_dir, f'subnet_{name}.pth')
        atomic_save(dict(state_dict=state, meta=dict(arch=name, source=osp.abspath(weights))),
                    paths['weights'])
    atomic_write_text(f'# exported by projects/rlnas: arch {name}\n' + cfg.pretty_text,
                      paths['config'])
    atomic_write_json(dict(arch=name, choices=[supernet.backbone.choice_names[i][c]
                                               for i, c in enumerate(arch)], **cost,
                           supernet_config=supernet_config, weights=weights), paths['info'])
    return paths
