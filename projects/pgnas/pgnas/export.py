"""Export a candidate as a physically smaller static model: config + checkpoint + structure.

The static backbone is the same SupNet-R built without dropout gates; the candidate's masks
become an mmdms pruning structure (kept input channels per branch), applied with
:func:`mmdms.export.apply_structure`; branches left without input are deleted. The exported
config embeds the structure, so ``tools/test.py CONFIG CHECKPOINT`` rebuilds the small model
and loads the checkpoint directly.
"""
import copy
import os.path as osp
import pprint
from typing import Optional, Tuple

import torch
from mmengine.config import Config, ConfigDict
from torch import nn

from mmdms.export import save_structure

from .fileio import atomic_write, atomic_write_text
from .models.candidates import Candidate, candidate_to_structure
from .registry import MODELS

# Keys of a training/search config that a test-only config must not carry.
_TRAIN_ONLY_KEYS = ('train_cfg', 'train_dataloader', 'optim_wrapper', 'param_scheduler',
                    'val_cfg', 'val_dataloader', 'val_evaluator', 'heldout_dataloader',
                    'load_from', 'resume', 'auto_scale_lr')


def static_model_cfg(model_cfg: dict, structure: Optional[dict]) -> ConfigDict:
    """The model config of the static form (``structure=None``: static, full size)."""
    cfg = ConfigDict(copy.deepcopy(dict(model_cfg)))
    cfg.backbone = ConfigDict(dict(cfg.backbone))
    cfg.backbone.pop('dropout_cfg', None)
    if structure is None:
        cfg.backbone.pop('structure', None)
        cfg.backbone.static = True
    else:
        cfg.backbone.pop('static', None)
        cfg.backbone.structure = structure
    return cfg


def build_static_candidate(supernet: nn.Module, candidate: Candidate,
                           model_cfg: dict) -> Tuple[nn.Module, dict]:
    """``(static_model, structure)``: the candidate with dropped channels/branches removed.

    Built full-size and static, loaded with the supernet's weights (gates dropped), then
    sliced to the structure: in eval mode it computes what ``supernet`` computes with the
    candidate's masks fixed.
    """
    structure = candidate_to_structure(candidate)
    static = MODELS.build(static_model_cfg(model_cfg, None))
    state = {k: v for k, v in supernet.state_dict().items() if '.dropout.' not in k}
    missing, unexpected = static.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith('.in_index')]
    if missing or unexpected:
        raise RuntimeError(f'supernet and static model differ: missing {missing[:5]}, '
                           f'unexpected {unexpected[:5]}')
    static.backbone.apply_structure(structure)
    param = next(supernet.parameters())
    return static.to(param.device).train(supernet.training), structure


def make_test_config(cfg: Config, model_cfg: ConfigDict) -> Config:
    """A test-only copy of ``cfg`` whose model is ``model_cfg``."""
    out = copy.deepcopy(cfg._cfg_dict.to_dict())
    for key in _TRAIN_ONLY_KEYS:
        out.pop(key, None)
    out['model'] = model_cfg.to_dict()
    return Config(out)


def config_text(cfg: Config) -> str:
    """A Python config file for ``cfg`` (plain literals; mmengine's ``pretty_text`` runs
    yapf, which takes seconds on an embedded structure)."""
    lines = ['# Exported by projects/pgnas: the static (pruned) best candidate.\n']
    for key, value in cfg.to_dict().items():
        lines.append(f'{key} = {pprint.pformat(value, width=100, sort_dicts=False)}\n')
    text = ''.join(lines)
    compile(text, '<exported config>', 'exec')  # fail here, not at test time
    return text


def export_candidate(supernet: nn.Module, candidate: Candidate, cfg: Config, out_dir: str,
                     name: str, meta: Optional[dict] = None) -> dict:
    """Write ``{name}.py`` (test config), ``{name}.pth`` and ``{name}_structure.json``.

    Returns the paths and the static model's parameter count.
    """
    static, structure = build_static_candidate(supernet, candidate, cfg.model)
    config = make_test_config(cfg, static_model_cfg(cfg.model, structure))
    paths = {k: osp.join(out_dir, f'{name}{ext}')
             for k, ext in (('config', '.py'), ('checkpoint', '.pth'),
                            ('structure', '_structure.json'))}
    state = {k: v.detach().cpu() for k, v in static.state_dict().items()}
    checkpoint = dict(state_dict=state, meta=dict(meta or {}))
    atomic_write(paths['checkpoint'], lambda tmp: torch.save(checkpoint, tmp))
    atomic_write_text(paths['config'], config_text(config))
    save_structure(structure, paths['structure'])
    paths['params'] = int(sum(p.numel() for p in static.parameters()))
    return paths
