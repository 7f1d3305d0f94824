"""Export a DMS search checkpoint as an ordinary model: weights, structure, config, summary."""
import copy
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Optional

import torch
from mmengine.config import Config

from mmdms.utils.fileio import atomic_write_text
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
    own = algorithm.state_dict()
    mismatched = [f'{k}: {tuple(v.shape)} in the checkpoint, {tuple(own[k].shape)} in the '
                  'config' for k, v in state.items()
                  if k in own and hasattr(v, 'shape') and v.shape != own[k].shape]
    if mismatched:
        raise ExportError(f'{checkpoint_path!r} does not match the config: {len(mismatched)} '
                          f'tensors have other shapes, e.g. {"; ".join(mismatched[:3])}')
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


def parse_budget(value) -> float:
    """``0.5``, ``'50%'`` (fractions of the supernet) or ``'4.1G'``/``'300M'`` (absolute)."""
    text = str(value).strip()
    scale = {'%': 0.01, 'K': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12}.get(text[-1:].upper())
    try:
        number = float(text[:-1] if scale else text) * (scale or 1.0)
    except ValueError:
        raise ExportError(f'cannot read the budget {value!r}: use a fraction (0.5), a '
                          'percentage (50%) or an absolute count (4.1G, 300M)') from None
    if number <= 0:
        raise ExportError(f'the budget must be positive, got {value!r}')
    return number


def fit_structure(algorithm, target_flops=None, divisor: int = 1,
                  tolerance: float = 0.01) -> Optional[dict]:
    """Rescale the searched widths to ``target_flops`` and/or round them to ``divisor``.

    Returns the :func:`scale_to_budget` report (None when neither option is given).
    """
    from mmdms.models.mutators import BudgetError, round_to_multiples, scale_to_budget
    mutator = algorithm.mutator
    mutator.set_mode('hard')
    try:
        if target_flops is None:
            if divisor > 1:
                round_to_multiples(mutator, divisor)
            return None
        target = parse_budget(target_flops)
        original = mutator.original_resources['flops']
        ratio = target if target <= 1.0 else target / original
        if ratio > 1.0:
            raise ExportError(f'--target-flops {target_flops} is more than the supernet\'s '
                              f'{original / 1e6:.2f} MFLOPs at input {algorithm.input_shape}')
        return scale_to_budget(mutator, ratio, 'flops', divisor=divisor, tolerance=tolerance)
    except BudgetError as e:
        raise ExportError(str(e)) from None


def _write_all(out_dir: str, writers: dict) -> None:
    """Write every file into a staging folder inside ``out_dir``, then move them into place:
    a failure in any writer leaves ``out_dir`` as it was (no partial export)."""
    staging = tempfile.mkdtemp(prefix='.export-', dir=out_dir)
    try:
        for name, write in writers.items():
            write(osp.join(staging, name))
        for name in writers:
            os.replace(osp.join(staging, name), osp.join(out_dir, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export_pruned(config: str, checkpoint: str, out_dir: str,
                  input_shape: Optional[tuple] = None, target_flops=None,
                  divisor: int = 1, tolerance: float = 0.01) -> dict:
    """Write ``pruned.pth``, ``structure.json``, ``pruned_config.py``, ``summary.json`` and
    ``structure.png`` to ``out_dir`` -- all or nothing.

    Args:
        target_flops: rescale the searched widths to this budget before export: a fraction
            of the supernet's FLOPs (``0.5``, ``'50%'``) or an absolute count (``'4.1G'``),
            reached within ``tolerance`` (relative) where the widths allow it.
        divisor: round every width to a multiple of it (e.g. 8 for hardware efficiency).
    """
    from mmdms.analysis import count_complexity
    from mmdms.engine.hooks import structure_summary
    from mmdms.models.mutators import resource_ratio
    from mmdms.registry import MODELS
    from mmdms.utils import register_all_modules
    from mmdms.visualization import plot_structure

    register_all_modules(init_default_scope=False)
    if divisor < 1:
        raise ExportError(f'--divisor must be >= 1, got {divisor}')
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
    searched_ratio = resource_ratio(algorithm.mutator, 'flops')
    fit = fit_structure(algorithm, target_flops, divisor, tolerance)
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
        searched_flops_ratio=searched_ratio, divisor=divisor,
        search_iter=meta.get('iter'))
    if fit is not None:
        summary.update(target_flops_ratio=fit['target_ratio'], width_scale=fit['scale'],
                       within_tolerance=fit['within_tolerance'])

    _write_all(out_dir, {
        'structure.json': lambda p: save_structure(structure, p),
        'pruned.pth': lambda p: torch.save(
            dict(state_dict=pruned.state_dict(),
                 meta=dict(exported_from=osp.basename(checkpoint))), p),
        'pruned_config.py': lambda p: pruned_config(cfg).dump(p),
        'summary.json': lambda p: atomic_write_text(p, json.dumps(summary, indent=1)),
        'structure.png': lambda p: plot_structure(summary, p, title='Exported structure'),
    })
    return summary
