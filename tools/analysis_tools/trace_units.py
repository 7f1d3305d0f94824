"""Trace a model built from a config and show the prunable units that DMS would search.

Usage::

    python tools/analysis_tools/trace_units.py CONFIG [--input-shape 1 3 224 224]
        [--scope auto|mmpretrain|mmdet|mmyolo] [--cfg-options k=v ...] [--out table.json]

``CONFIG`` is a local config file or a package path such as
``mmpretrain::resnet/resnet50_8xb32_in1k.py`` or
``mmyolo::yolov8/yolov8_n_syncbn_fast_8xb16-500e_coco.py``.
The model is built without pretrained weights (``pretrained`` and checkpoint ``init_cfg`` entries
are removed), traced once with :class:`mmdms.models.DMSMutator`, and the script prints

* the unit table: one row per channel unit (width) and block unit (depth) with its size and the
  layers it touches (producers, consumers and followers such as norms);
* the frozen report: every channel group that cannot be pruned, with the reason;
* totals and the trace time.

The helpers here (config loading, scope detection, model building, example inputs, the call that
runs a detector in ``tensor`` mode) are shared with ``prune_zoo.py``.
"""
import argparse
import copy
import json
import sys
import time
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

SCOPES = ('mmpretrain', 'mmdet', 'mmyolo')
DETECTION_SCOPES = ('mmdet', 'mmyolo')
DEFAULT_CLS_SIZE = 64  # classifiers run at 64x64 unless they need their native size
DEFAULT_DET_SIZE = 256

# ----------------------------------------------------------------------------- configs & scope


def import_scope(scope: str) -> None:
    """Import the package so that its models are registered."""
    if scope == 'mmpretrain':
        import mmpretrain.models  # noqa: F401
    elif scope == 'mmdet':
        import mmdet.models  # noqa: F401
    elif scope == 'mmyolo':
        import mmdet.models  # noqa: F401
        import mmyolo.models  # noqa: F401
    else:
        raise ValueError(f'unknown scope {scope!r}; expected one of {SCOPES}')


def detect_scope(cfg, config_path: str = '') -> str:
    """Package prefix (``mmyolo::``), then ``default_scope``, then whichever registry knows
    the model type; ``mmpretrain`` if nothing says otherwise."""
    if '::' in config_path:
        package = config_path.split('::', 1)[0]
        if package in SCOPES:
            return package
    scope = cfg.get('default_scope', None)
    if scope in SCOPES:
        return scope
    model_type = cfg.get('model', {}).get('type', None)
    if isinstance(model_type, str):
        import importlib
        for candidate in SCOPES:
            try:
                registry = importlib.import_module(f'{candidate}.registry').MODELS
                import_scope(candidate)
            except ImportError:
                continue
            if model_type in registry.module_dict:
                return candidate
    return 'mmpretrain'


def strip_pretrained(obj: Any) -> Any:
    """Remove ``pretrained`` keys and ``init_cfg`` entries that would load a checkpoint
    (``Pretrained``, ``torchvision://``, ``open-mmlab://``, ...): no weights are downloaded."""
    if isinstance(obj, dict):
        for key in list(obj.keys()):
            value = obj[key]
            if key == 'pretrained' or key == 'checkpoint':
                obj.pop(key)
            elif key == 'init_cfg' and ('checkpoint' in str(value) or 'Pretrained' in str(value)):
                obj.pop(key)
            else:
                strip_pretrained(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            strip_pretrained(value)
    return obj


def load_model_config(config: str, cfg_options: Optional[dict] = None):
    """Load a local or ``pkg::`` config and merge ``cfg_options`` (``a.b.c=value`` keys)."""
    from mmdms.utils import load_config
    cfg = load_config(config)
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    return cfg


def build_model(config: str, scope: str = 'auto', cfg_options: Optional[dict] = None):
    """Build ``cfg.model`` of ``config`` in ``scope`` without pretrained weights.

    Returns ``(model, scope, cfg)``; the model is in eval mode with plain BatchNorm.
    """
    import mmengine
    from mmengine.registry import MODELS, DefaultScope
    cfg = load_model_config(config, cfg_options)
    if scope == 'auto':
        scope = detect_scope(cfg, config)
    import_scope(scope)
    # keep the ConfigDict: mmdet/mmyolo read e.g. ``train_cfg.rpn`` as attributes
    model_cfg = strip_pretrained(copy.deepcopy(cfg.model))
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
    model = mmengine.model.revert_sync_batchnorm(model)
    model.eval()  # some mmpretrain modules' train() returns None: do not chain
    return model, scope, cfg


# ----------------------------------------------------------------------------- inputs & calls


def _pipeline_size(pipeline) -> Optional[int]:
    size = None
    for t in pipeline or []:
        kind = t.get('type', '') if isinstance(t, dict) else ''
        if kind.endswith('CenterCrop') and t.get('crop_size') is not None:
            size = t['crop_size']
        elif kind in ('Resize', 'ResizeEdge', 'mmpretrain.Resize') and size is None:
            size = t.get('scale', t.get('edge'))
    if isinstance(size, (list, tuple)):
        size = max(size)
    return int(size) if isinstance(size, (int, float)) else None


def native_input_size(cfg) -> int:
    """The resolution a classifier was trained at: ``img_size``/``input_size`` of the backbone,
    else the crop size of the test pipeline, else 224."""
    backbone = cfg.model.get('backbone', {}) or {}
    for key in ('img_size', 'input_size', 'image_size'):
        value = backbone.get(key, None)
        if isinstance(value, (list, tuple)):
            value = max(value)
        if isinstance(value, int):
            return value
    candidates = []
    for key in ('test_pipeline', 'val_pipeline'):
        if key in cfg:
            candidates.append(cfg[key])
    for key in ('test_dataloader', 'val_dataloader'):
        try:
            candidates.append(cfg[key]['dataset']['pipeline'])
        except (KeyError, TypeError):
            pass
    for pipeline in candidates:
        size = _pipeline_size(pipeline)
        if size:
            return size
    return 224


def is_two_stage(model) -> bool:
    return hasattr(model, 'rpn_head') or hasattr(model, 'roi_head')


def make_call(model, scope: str, input_shape: Sequence[int],
              two_stage: str = 'fixed_proposals') -> Optional[Callable]:
    """How to run ``model`` on a batch tensor (``None``: ``prune_check``'s default,
    ``model(x, mode='tensor')``).

    Two-stage detectors need data samples with image metas even in tensor mode, because the RPN
    predicts proposals (sort, top-k, NMS). ``two_stage``:

    * ``'fixed_proposals'`` (default): backbone + neck, the raw RPN head outputs, and the RoI
      head on 64 fixed proposals of all sizes. Every layer runs, and the outputs do not depend on
      the order of tied RPN scores (an untrained RPN has many exact ties, and a 1e-7 difference
      between two equivalent models reorders its top-k/NMS, so ``'tensor'`` outputs are not
      comparable between a masked and an exported model).
    * ``'tensor'``: ``model(x, data_samples, mode='tensor')`` with ``DetDataSample`` metas.
    """
    if scope not in DETECTION_SCOPES or not is_two_stage(model):
        return None
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    n, h, w = int(input_shape[0]), int(input_shape[-2]), int(input_shape[-1])
    meta = dict(img_shape=(h, w), batch_input_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                scale_factor=(1.0, 1.0))
    samples = [DetDataSample(metainfo=meta) for _ in range(n)]
    if two_stage == 'tensor':

        def call(m, x):
            return m(x, samples, mode='tensor')

        return call
    # 64 square boxes inside the image, sides from 6% to 94% of it: at >= 480x480 inputs they
    # reach all four RoI levels of mmdet's SingleRoIExtractor (finest_scale 56: level 3 takes
    # boxes of >= 448 px), as COCO-sized images do
    side = torch.linspace(0.06, 0.94, 64) * min(h, w)
    u, v = torch.meshgrid(torch.linspace(0, 1, 8), torch.linspace(0, 1, 8), indexing='ij')
    x0, y0 = u.reshape(-1) * (w - side), v.reshape(-1) * (h - side)
    boxes = torch.stack([x0, y0, x0 + side, y0 + side], -1)
    proposals = []
    for _ in range(n):
        inst = InstanceData()
        inst.bboxes = boxes.clone()
        proposals.append(inst)

    def call(m, x):
        feats = m.extract_feat(x)
        rpn_outs = m.rpn_head(feats) if getattr(m, 'with_rpn', False) else ()
        return rpn_outs, m.roi_head.forward(feats, proposals, samples)

    return call


def run_call(model, call, x):
    import torch
    from mmengine.model import BaseModel
    with torch.no_grad():
        if call is not None:
            return call(model, x)
        if isinstance(model, BaseModel):
            return model(x, mode='tensor')
        return model(x)


POS_EMBED_NAMES = ('pos_embed', 'pos_embedding', 'position_embedding', 'absolute_pos_embed')


def absolute_position_embedding(model) -> Optional[str]:
    """Name of an absolute position embedding, if the model has one. Such models run at
    their native size: off-size inputs interpolate the embedding into a plain tensor, which
    is not what the model computes at its trained resolution."""
    import itertools
    for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
        # the tensor itself (1, tokens, C) -- learned or a fixed sinusoid table -- not a
        # module called pos_embed (conv position encodings run at any size)
        if name.rsplit('.', 1)[-1] in POS_EMBED_NAMES and tensor.dim() >= 2:
            return name
    return None


def resolve_input_shape(model, cfg, scope: str, requested: Optional[Sequence[int]] = None,
                        seed: int = 0, two_stage: str = 'fixed_proposals'
                        ) -> Tuple[Tuple[int, ...], Optional[Callable], str]:
    """Pick the example input: ``requested``, else for detectors 256x256; for classifiers
    their native size when they have an absolute position embedding or cannot run at 64x64,
    else 64x64.

    Returns ``(shape, call, note)``; ``note`` says why a size was chosen.
    """
    import torch
    if requested:
        shape = tuple(int(s) for s in requested)
        return shape, make_call(model, scope, shape, two_stage), 'requested'
    if scope in DETECTION_SCOPES:
        shape = (1, 3, DEFAULT_DET_SIZE, DEFAULT_DET_SIZE)
        return shape, make_call(model, scope, shape, two_stage), 'detector default'
    pos_embed = absolute_position_embedding(model)
    if pos_embed is not None:
        native = native_input_size(cfg)
        return (1, 3, native, native), None, (f'native size: absolute position embedding '
                                              f'{pos_embed!r}')
    small = (1, 3, DEFAULT_CLS_SIZE, DEFAULT_CLS_SIZE)
    gen = torch.Generator().manual_seed(seed)
    try:
        run_call(model, None, torch.randn(small, generator=gen))
        return small, None, 'classifier default'
    except Exception as e:  # fixed-resolution model (token MLPs, fixed position biases, ...)
        native = native_input_size(cfg)
        shape = (1, 3, native, native)
        return shape, None, (f'native size: does not run at {DEFAULT_CLS_SIZE}x'
                             f'{DEFAULT_CLS_SIZE} ({type(e).__name__}: {str(e)[:120]})')


def example_input(shape: Sequence[int], seed: int = 0):
    import torch
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- tracing


def unit_rows(mutator) -> List[dict]:
    """The mutator's unit table with, per channel unit, every layer whose parameters it
    slices (producers, consumers and followers such as norms and biases)."""
    graph = mutator.graph
    touched: Dict[int, set] = {}
    for slot in graph.trace.slots:
        roots = graph.roots(slot.nodes).tolist()
        module = slot.name.rsplit('.', 1)[0] if '.' in slot.name else slot.name
        for root in set(roots):
            element = graph.element_of_root.get(root)
            if element is not None:
                touched.setdefault(element[0], set()).add(module)
    rows = []
    channel_index = 0
    for row in mutator.unit_table():
        row = dict(row)
        if row['kind'] == 'channel':
            row['producers'] = list(row.get('layers', []))
            row['layers'] = sorted(touched.get(channel_index, set()) | set(row['producers']))
            channel_index += 1
        rows.append(row)
    return rows


def trace_model(model, x, call: Optional[Callable] = None) -> dict:
    """Trace ``model`` on ``x`` with a fresh :class:`DMSMutator`; return the tables as data."""
    import torch
    from mmdms.models import DMSMutator

    if call is None:
        from mmengine.model import BaseModel
        if isinstance(model, BaseModel):
            call = lambda m, inputs: m(inputs, mode='tensor')  # noqa: E731
        else:
            call = lambda m, inputs: m(inputs)  # noqa: E731
    model.eval()
    mutator = DMSMutator()
    start = time.time()
    with torch.no_grad():
        mutator.prepare_from_supernet(model, lambda: call(model, x))
    trace_seconds = time.time() - start
    units = unit_rows(mutator)
    frozen = [dict(group=f['group'], size=int(f['size']), reason=f['reason'],
                   producers=list(f.get('producers', []))) for f in mutator.graph.frozen_report()]
    trace = mutator.graph.trace
    channel_units = [u for u in units if u['kind'] == 'channel']
    block_units = [u for u in units if u['kind'] == 'block']
    reasons = Counter(f['reason'] for f in frozen)
    hook_error = None
    if hasattr(mutator, 'remove_hooks'):
        try:
            mutator.remove_hooks()
        except Exception as e:  # report it, the tables are still valid
            hook_error = f'DMSMutator.remove_hooks failed: {type(e).__name__}: {e}'
    return dict(
        remove_hooks_error=hook_error,
        trace_seconds=trace_seconds,
        num_channel_units=len(channel_units),
        num_block_units=len(block_units),
        num_frozen_groups=len(frozen),
        prunable_channels=sum(u['size'] for u in channel_units),
        frozen_channels=sum(f['size'] for f in frozen),
        removable_blocks=sum(u['size'] for u in block_units),
        num_traced_ops=int(getattr(trace, 'num_ops', 0)),
        unsupported_ops=dict(getattr(trace, 'unsupported_ops', {}) or {}),
        frozen_reasons=[dict(reason=r, groups=n) for r, n in reasons.most_common()],
        units=units,
        frozen=frozen)


# ----------------------------------------------------------------------------- output


def atomic_write(path: str, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``
    (``mmdms.utils.atomic_write_text``: a reader never sees a half-written file)."""
    from mmdms.utils import atomic_write_text
    atomic_write_text(path, text)


def _short_layers(layers: List[str], limit: int = 4) -> str:
    if len(layers) <= limit:
        return ', '.join(layers)
    return ', '.join(layers[:limit]) + f', ... (+{len(layers) - limit})'


def print_report(result: dict, max_rows: int = 0, file=None) -> None:
    """Print the unit table, the frozen report and totals (``rich`` tables if installed)."""
    units, frozen = result['units'], result['frozen']
    if max_rows:
        units, frozen = units[:max_rows], frozen[:max_rows]
    title = f"{result.get('config', '')}  input {tuple(result.get('input_shape', ()))}"
    totals = (f"{result['num_channel_units']} channel units ({result['prunable_channels']} "
              f"channels), {result['num_block_units']} block units "
              f"({result['removable_blocks']} blocks), {result['num_frozen_groups']} frozen "
              f"groups ({result['frozen_channels']} channels); traced "
              f"{result['num_traced_ops']} ops in {result['trace_seconds']:.2f} s")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        Console = None
    if Console is not None:
        stream = file or sys.stdout
        console = Console(file=stream, width=None if stream.isatty() else 160)
        table = Table(title=f'Units: {title}', show_lines=False)
        for col in ('unit', 'kind', 'size', 'layers touched'):
            table.add_column(col, overflow='fold')
        for u in units:
            table.add_row(u['unit'], u['kind'], str(u['size']),
                          f"{len(u['layers'])}: {_short_layers(u['layers'])}")
        console.print(table)
        table = Table(title='Frozen groups')
        for col in ('group', 'size', 'reason'):
            table.add_column(col, overflow='fold')
        for f in frozen:
            table.add_row(f['group'], str(f['size']), str(f['reason']))
        console.print(table)
        if result.get('unsupported_ops'):
            console.print(f"unsupported ops: {result['unsupported_ops']}")
        if result.get('remove_hooks_error'):
            console.print(result['remove_hooks_error'])
        console.print(totals)
        return
    out = file or sys.stdout
    print(f'Units: {title}', file=out)
    for u in units:
        print(f"  {u['unit']:<50} {u['kind']:<8} {u['size']:>6}  {len(u['layers'])}: "
              f"{_short_layers(u['layers'])}", file=out)
    print('Frozen groups:', file=out)
    for f in frozen:
        print(f"  {f['group']:<50} {f['size']:>6}  {f['reason']}", file=out)
    if result.get('unsupported_ops'):
        print(f"unsupported ops: {result['unsupported_ops']}", file=out)
    if result.get('remove_hooks_error'):
        print(result['remove_hooks_error'], file=out)
    print(totals, file=out)


# ----------------------------------------------------------------------------- CLI


def parse_cfg_options(items: Optional[Sequence[str]]) -> dict:
    """``key=value`` pairs; values parsed as Python literals where possible."""
    import ast
    options = {}
    for item in items or []:
        key, _, value = item.partition('=')
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return options


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Show the prunable units of a model config.')
    parser.add_argument('config', help='config file or package path (mmpretrain::...)')
    parser.add_argument('--input-shape', type=int, nargs='+', default=None,
                        help='example input shape, e.g. 1 3 224 224 (default: 64x64 for '
                        'classifiers, or their native size when they need it; 256x256 for '
                        'detectors)')
    parser.add_argument('--scope', default='auto', choices=('auto', ) + SCOPES)
    parser.add_argument('--cfg-options', nargs='+', default=None, metavar='KEY=VALUE',
                        help='override config entries, e.g. model.backbone.arch=31B')
    parser.add_argument('--two-stage-call', choices=('fixed_proposals', 'tensor'),
                        default='fixed_proposals', help='how two-stage detectors are run (see '
                        'make_call)')
    parser.add_argument('--out', default=None, help='write the tables as JSON here')
    parser.add_argument('--max-rows', type=int, default=0, help='print at most this many rows '
                        'per table (0: all; the JSON always has all)')
    parser.add_argument('--quiet', action='store_true', help='do not print the tables')
    args = parser.parse_args(argv)
    if args.input_shape is not None and len(args.input_shape) not in (3, 4):
        parser.error('--input-shape takes 3 (C H W) or 4 (N C H W) numbers')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch
    torch.manual_seed(0)
    cfg_options = parse_cfg_options(args.cfg_options)
    model, scope, cfg = build_model(args.config, args.scope, cfg_options)
    requested = args.input_shape
    if requested is not None and len(requested) == 3:
        requested = [1] + list(requested)
    shape, call, note = resolve_input_shape(model, cfg, scope, requested,
                                            two_stage=args.two_stage_call)
    x = example_input(shape)
    result = dict(config=args.config, scope=scope, input_shape=list(shape), input_note=note,
                  cfg_options=cfg_options)
    result.update(trace_model(model, x, call))
    if not args.quiet:
        print_report(result, args.max_rows)
    if args.out:
        atomic_write(args.out, json.dumps(result, indent=1) + '\n')
    return result


if __name__ == '__main__':
    main()
