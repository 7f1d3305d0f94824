"""Export a DMS search checkpoint as an ordinary model: weights, structure, config, summary."""
import copy
import json
import os
import os.path as osp
import tempfile
from typing import Optional

import torch
from mmengine.config import Config

from mmdms.utils.fileio import atomic_write, atomic_write_text
from .structure import save_structure


class ExportError(RuntimeError):
    """The checkpoint or output folder cannot produce an export; nothing was written."""


def check_writable(out_dir: str) -> None:
    try:
        os.makedirs(out_dir, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out_dir, prefix='.probe', delete=True)
        probe.close()
    except OSError as e:
        raise ExportError(f'cannot write to --out-dir {out_dir!r}: {e.strerror}') from None


def load_dms_state(algorithm, checkpoint_path: str) -> dict:
    """Load a search checkpoint into ``algorithm``, with errors that name what is missing."""
    from mmdms.utils import setup_torch_load
    if not osp.isfile(checkpoint_path):
        raise ExportError(f'checkpoint {checkpoint_path!r} does not exist')
    setup_torch_load()
    try:
        checkpoint = torch.load(checkpoint_path, map_location='cpu')
    except Exception as e:  # noqa: BLE001 -- report any unreadable file the same way
        raise ExportError(f'cannot read checkpoint {checkpoint_path!r}: {e}') from None
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ExportError(f'{checkpoint_path!r} holds no state_dict')
    if not any(k.startswith('mutator.') and k.endswith('.ratio') for k in state):
        raise ExportError(f'{checkpoint_path!r} has no DMS state (no "mutator.*.ratio" keys): '
                          'export needs a checkpoint written by a DMS search')
    missing, unexpected = algorithm.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ExportError(f'{checkpoint_path!r} does not match the config: missing keys '
                          f'{missing[:5]}{"..." if len(missing) > 5 else ""}, unexpected keys '
                          f'{unexpected[:5]}{"..." if len(unexpected) > 5 else ""}')
    return checkpoint


def pruned_config(search_cfg: Config, structure_file: str = 'structure.json') -> Config:
    """A config that rebuilds the pruned model from the original one plus the structure JSON,
    for retraining (tools/train.py), testing (tools/test.py) and deployment."""
    cfg = copy.deepcopy(search_cfg)
    architecture = copy.deepcopy(search_cfg.model.architecture)
    scope = search_cfg.get('default_scope')
    if isinstance(architecture, dict) and '_scope_' not in architecture and scope \
            and scope != 'mmdms' and '.' not in str(architecture.get('type', '')):
        architecture['_scope_'] = scope
    cfg.model = dict(
        type='mmdms.PrunedModel',
        architecture=architecture,
        structure='{{fileDirname}}/' + structure_file)
    optim = search_cfg.get('optim_wrapper', {})
    if optim.get('constructor') == 'DMSOptimWrapperConstructor':
        arch = copy.deepcopy(optim.get('architecture', {}))
        arch.setdefault('type', 'OptimWrapper')
        cfg.optim_wrapper = arch
    schedulers = search_cfg.get('param_scheduler')
    if isinstance(schedulers, dict) and 'architecture' in schedulers:
        cfg.param_scheduler = schedulers['architecture']
    cfg.custom_hooks = [h for h in search_cfg.get('custom_hooks', [])
                        if h.get('type') != 'DMSSearchHook']
    cfg.pop('model_wrapper_cfg', None)
    for key in ('target_ratio', 'structure_lr', 'resource_loss_weight', 'search_iters',
                'architecture'):
        cfg.pop(key, None)
    cfg.load_from = None
    cfg.resume = False
    return cfg


def export_pruned(config: str, checkpoint: str, out_dir: str,
                  input_shape: Optional[tuple] = None) -> dict:
    """Write ``pruned.pth``, ``structure.json``, ``pruned_config.py``, ``summary.json`` and
    ``structure.png`` to ``out_dir``; every file is written to a temporary name first."""
    from mmdms.analysis import count_complexity
    from mmdms.engine.hooks import structure_summary
    from mmdms.registry import MODELS
    from mmdms.utils import register_all_modules
    from mmdms.visualization import plot_structure

    register_all_modules(init_default_scope=False)
    check_writable(out_dir)
    cfg = Config.fromfile(config)
    if cfg.model.get('type') not in ('DMSAlgorithm', 'mmdms.DMSAlgorithm'):
        raise ExportError(f'{config!r} does not describe a DMS search (model.type is '
                          f'{cfg.model.get("type")!r}, expected DMSAlgorithm)')
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmdms')):
        algorithm = MODELS.build(cfg.model)
    meta = load_dms_state(algorithm, checkpoint).get('meta', {})
    algorithm.eval()
    structure = algorithm.structure()
    pruned = algorithm.export_architecture().eval()

    shape = tuple(input_shape or algorithm.input_shape)
    call = algorithm._call_tensor
    before = count_complexity(algorithm.unmasked_architecture().eval(), torch.randn(*shape),
                              lambda m, x: call(m, x))
    after = count_complexity(pruned, torch.randn(*shape), lambda m, x: call(m, x))
    summary = structure_summary(algorithm)
    summary.update(
        checkpoint=osp.abspath(checkpoint), input_shape=list(shape),
        original=dict(flops=before['flops'], params=before['params']),
        exported=dict(flops=after['flops'], params=after['params']),
        exported_flops_ratio=after['flops'] / before['flops'],
        exported_params_ratio=after['params'] / before['params'],
        search_iter=meta.get('iter'))

    save_structure(structure, osp.join(out_dir, 'structure.json'))
    atomic_write(osp.join(out_dir, 'pruned.pth'), lambda p: torch.save(
        dict(state_dict=pruned.state_dict(), meta=dict(exported_from=osp.basename(checkpoint))),
        p))
    atomic_write(osp.join(out_dir, 'pruned_config.py'),
                  lambda p: pruned_config(cfg).dump(p))

    atomic_write_text(osp.join(out_dir, 'summary.json'), json.dumps(summary, indent=1))
    plot_structure(summary, osp.join(out_dir, 'structure.png'), title='Exported structure')
    return summary

