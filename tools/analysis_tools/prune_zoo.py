"""Run ``mmdms.apis.prune_check`` over a zoo of configs and write a pass/weak/fail table.

Usage::

    python tools/analysis_tools/prune_zoo.py [--models all|mmpretrain|mmdet|mmyolo|NAMES|FILE]
        [--out-dir docs] [--keep-ratio 0.5] [--timeout-per-model 300] [--update]

For every model: build it from its config (no pretrained weights), trace it, keep a random
``keep_ratio`` of every unit, export the pruned model and compare it with the hard-masked
supernet. Writes ``OUT_DIR/prune_zoo.json`` and ``OUT_DIR/prune_zoo.md`` (atomically, after
every model, so a killed sweep leaves a valid partial table).

Status per model:

* ``fail``: building, tracing, pruning, exporting or running the pruned model raised, the run
  timed out or crashed, or the exported model disagrees with the masked supernet
  (``max_abs_diff > 1e-4 * max(1, output_scale)``);
* ``weak``: correct, but pruning at ``keep_ratio`` 0.5 does not cut FLOPs to <= 0.5x, or more
  than half of the executed conv/linear layers are untouched (frozen), or no unit was found;
* ``pass``: otherwise.

Each model runs in a forked child (the heavy imports happen once, in the parent), so a crash or
a timeout only fails that model. ``--isolation none`` runs in-process (try/except only).
"""
import argparse
import datetime
import json
import os
import os.path as osp
import sys
import time
import traceback
from collections import Counter
from typing import List

HERE = osp.dirname(osp.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import trace_units as tu  # noqa: E402
import zoo_models  # noqa: E402

OUTPUT_REASON = 'reaches a model output'
DIFF_RTOL = 1e-4
MAX_FLOPS_RATIO = 0.5
MAX_UNTOUCHED = 0.5
REPO_ROOT = osp.dirname(osp.dirname(HERE))

# ----------------------------------------------------------------------------- one model


def _where(exc: BaseException) -> dict:
    """Where ``exc`` was raised: the chain of frames inside the mmdms package (outermost
    first, e.g. which forward of ``prune_check`` ran the failing model) and the innermost
    frame overall (the line that raised)."""
    frames = traceback.extract_tb(exc.__traceback__)
    info = {}
    marker = f'{os.sep}mmdms{os.sep}'
    chain = []
    for frame in frames:
        if marker in frame.filename:
            path = frame.filename[frame.filename.rindex(marker) + 1:]
            chain.append(f'{path}:{frame.lineno} in {frame.name}: {frame.line}')
    if chain:
        info['mmdms_frame'] = chain[-1]
        info['mmdms_frames'] = chain[-4:]
    if frames:
        last = frames[-1]
        path = last.filename
        for prefix in ('site-packages' + os.sep, REPO_ROOT + os.sep):
            if prefix in path:
                path = path[path.index(prefix) + len(prefix):]
        info['innermost_frame'] = f'{path}:{last.lineno} in {last.name}: {last.line}'
    return info


def randomize_layer_scales(model, seed: int = 0) -> List[str]:
    """Give tiny constant per-channel scales (layer scale / ``gamma`` initialised to 1e-5 or
    1e-6) random values in [0.5, 1.5], so that every residual branch visibly contributes to the
    output. Returns the names changed."""
    import torch
    gen = torch.Generator().manual_seed(seed + 1)
    changed = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() != 1 or p.numel() < 2 or not p.dtype.is_floating_point:
                continue
            first = float(p[0])
            if 0 < abs(first) <= 1e-3 and bool((p == first).all()):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
                changed.append(name)
    return changed


def randomize_masked_forward_params(model, seed: int = 0) -> List[str]:
    """Give constant per-channel parameters (GRN's zero-initialised ``gamma``/``beta``, HorNet
    LayerNorm's ones and zeros) of modules with a masked forward (``MASKED_FORWARDS``) random
    values in [0.5, 1.5]: a zero or constant parameter hides a wrongly sliced or wrongly
    masked channel from the exactness check. Returns the names changed."""
    import torch
    from mmdms.registry import MASKED_FORWARDS
    gen = torch.Generator().manual_seed(seed + 2)
    changed = []
    with torch.no_grad():
        for prefix, module in model.named_modules():
            if MASKED_FORWARDS.get(type(module).__name__) is None:
                continue
            for name, p in module.named_parameters(recurse=False):
                if p.dim() == 1 and p.numel() >= 2 and p.dtype.is_floating_point and \
                        bool((p == p[0]).all()):
                    p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
                    changed.append(f'{prefix}.{name}' if prefix else name)
    return changed


def executed_layers(model, x, call) -> List[str]:
    """Names of the conv/linear layers (and ``nn.MultiheadAttention`` blocks, which use their
    projection weights directly) that run in one forward."""
    from torch import nn
    kinds = (nn.modules.conv._ConvNd, nn.Linear, nn.MultiheadAttention)
    seen, handles = [], []
    inside_mha = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            inside_mha.update(n for n, _ in module.named_modules(prefix=name) if n != name)
    for name, module in model.named_modules():
        if isinstance(module, kinds) and name not in inside_mha:
            handles.append(module.register_forward_hook(
                lambda m, a, o, name=name: seen.append(name)))
    try:
        tu.run_call(model, call, x)
    finally:
        for h in handles:
            h.remove()
    return sorted(set(seen))


def untouched_layers(layers: List[str], structure: dict) -> List[str]:
    """Executed conv/linear layers whose parameters the structure leaves at full size."""
    sliced = {name.rsplit('.', 1)[0] for name in structure.get('slots', {})}
    removed = structure.get('removed_blocks', [])
    out = []
    for layer in layers:
        if any(s == layer or s.startswith(layer + '.') for s in sliced):
            continue
        if any(layer == b or layer.startswith(b + '.') for b in removed):
            continue
        out.append(layer)
    return out


# Known root causes, matched against a record's error, raising line and frozen reasons. Each
# weak/failed model lists the causes that match it; the markdown groups models by cause.
# (id, kind, pattern, title, explanation)
CAUSES = [
    ('export-identity-signature', 'fail', r'Identity\.forward\(\)',
     'removed block replaced by a plain nn.Identity (fixed in 5d6ebb6 by RemovedBlock)',
     '`mmdms/export/structure.py` `apply_structure` replaces a removed residual block by '
     '`nn.Identity()` (or deletes it from an `nn.Sequential`), but these blocks are called with '
     'more arguments (`block(x, hw_shape)` in Swin/MixMIM, `fusion_block(x, fusion_features=..., '
     'out_conv2=False)` in Conformer, `attn_mask=`): the exported model raises TypeError. A '
     'removed block needs a stand-in that accepts `(x, *args, **kwargs)` and returns `x` (the '
     'tracer already checks that the block returns the single tensor `x + f(x)`).'),
    ('masked-layernorm-signature', 'fail', r'_masked_layer_norm.*unexpected keyword',
     'masked LayerNorm forward drops the module\'s extra arguments',
     '`mmdms/models/mutators/dms_mutator.py` `_masked_layer_norm` installs `forward(self, x)`; '
     'mmpretrain\'s `LayerNorm2d.forward(x, data_format=...)` is called as '
     '`norm(x, data_format=\'channel_last\')` (EdgeNeXt, ConvNeXt blocks), so the hard-masked '
     'supernet raises TypeError. The replacement must accept `(x, *args, **kwargs)`.'),
    ('export-shape-arithmetic', 'fail',
     r'is invalid for input of size|to have \d+ channels, but got|mat1 and mat2 shapes cannot',
     'exported model: a reshape/split got a size that does not match the pruned tensor',
     'Sizes read from tensors (`x.shape`, `size()`) and plain ints (module attributes) that '
     'size a channel dim are checked by `mmdms/models/tracing/size_rules.py`; a failure here '
     'means an int reached a shape op by a path the size tags do not follow (`int(C)`, '
     '`0.5 * C`, `math.sqrt(C)`, a size stored before the trace): see the raising line.'),
    ('invisible-extension-op', 'fail', r'roi_extractor|roi_align|RoIAlign',
     'an extension op the tracer cannot see: channel counts disagree after export',
     'Module outputs that no traced torch function computed (mmcv ops are '
     '`autograd.Function`s with C++ kernels) either pass channels through (known channel-wise '
     'ops such as `RoIAlign`, `ChannelTracer` `CHANNELWISE_EXTENSIONS`) or freeze their '
     'inputs; a failure here means such an op was called outside an `nn.Module` (no hook sees '
     'its output).'),
    ('order-dependent-outputs', 'fail', r'disagrees with the masked supernet',
     'outputs differ between the masked supernet and the exported model',
     'For Faster R-CNN in tensor mode the outputs are RoI-head results on proposals picked by '
     'top-k/NMS; the untrained RPN has exactly tied scores and a 1e-7 difference reorders them, '
     'so the two models score different boxes. The RoI head agrees to 1e-7 on identical '
     'proposals (see the `faster-rcnn-r50` row, run on fixed proposals).'),
    ('build-or-forward', 'fail', r'^(build|forward): ', 'model does not build or run',
     'Not an mmdms problem: the config cannot be built or run with the chosen input.'),
    ('timeout-or-crash', 'fail', r'timeout: |worker died', 'timeout or crash', ''),
    ('group-conv', 'limit', r'group conv with groups=',
     'grouped conv with one input or output channel per group is frozen',
     'Grouped convs are pruned per group position (`ChannelTracer._grouped_conv`: position j '
     'of every group is one element, so `groups` stays); a conv with one input or one output '
     'channel per group (channel multiplier) cannot keep its groups equal and is frozen.'),
    ('group-norm', 'limit', r'group_norm \(num_groups=1\)',
     'GroupNorm with one group freezes its channels',
     'GroupNorm(g > 1) prunes whole groups (the exporter updates `num_groups`); GN(1) in '
     'PoolFormer/RIFormer normalises over all channels of the residual stream and needs '
     'statistics over the kept channels only, a masked forward in the mutator like '
     '`_masked_layer_norm`.'),
    ('layer-norm-outside-forward', 'limit',
     r'layer_norm weight .* applied outside a standard layer_norm module forward',
     'a layer_norm applied outside a LayerNorm forward the tracer can follow',
     'A LayerNorm subclass whose forward only permutes around `F.layer_norm` (mmpretrain '
     '`LayerNorm2d`, channels-first) is a masked consumer (`_masked_permuted_layer_norm`); '
     'other code applying a norm weight (extra ops, another layout on the way out, a weight '
     'read by another module) stays frozen.'),
    ('linear-outside-forward', 'limit',
     r'linear weight .* applied outside a standard linear module forward',
     'a weight applied outside its module\'s forward, in a way that cannot be masked',
     '`F.linear(x, self.qkv.weight, bias)` in the parent\'s forward (BEiT, SwinV2, '
     'EfficientNetV2) reads `W * m` while that forward runs (`_swap_in_masked_weights`); a '
     'weight that is tied, applied by several modules or read by other ops stays frozen.'),
    ('channel-reduction', 'limit', r'(mean|sum|norm|var|std|amax|amin) reduces over a channel dim',
     'a reduction over channels freezes them',
     'A reduction over channels is accepted only inside a module with a registered masked '
     'forward (`MASKED_FORWARDS`: ConvNeXt-V2 GRN, HorNet\'s channels-first LayerNorm), which '
     'takes its statistics over the kept channels. Still frozen: e.g. mmdet\'s '
     '`SingleRoIExtractor` DDP trick `roi_feats + feats[i].sum() * 0.` (the product is zero, '
     'but the freeze happens at the sum).'),
    ('unequal-split', 'limit', r'split into unequal pieces', 'split into unequal pieces',
     '`torch.split(x, sizes)` into unequal pieces is pruned piece by piece when `sizes` are '
     'plain ints of a module with an export adapter that updates them (HorNet `gnConv.dims`); '
     'otherwise (no adapter, `chunk`, sizes read from tensors) it is frozen.'),
    ('channel-dim-split', 'limit', r'(view|reshape|unflatten) splits a channel dim',
     'reshape C -> (a, b, ...) into attention heads or frozen channels',
     'A split into two dims `(groups, C / groups)` is pruned per position (channel shuffle, '
     'per-group layouts), unless it feeds attention heads or channels frozen anyway. Fused qkv '
     '`(3, heads, head_dim)` is frozen as channels, but its heads are pruned whole when they '
     'reach `scaled_dot_product_attention` or `q @ k^T` ... `attn @ v` (head units); YOLO head '
     'reshapes (model outputs) stay frozen.'),
    ('size-read-from-tensor', 'limit', r'size read from a tensor',
     'a size read from a tensor sizes other channels',
     'Attention code that computes the head size as `C // num_heads` from `x.shape` (Swin/'
     'MixMIM `WindowMSA`, DaViT, HiViT, Twins, XCiT) or reshapes the attention output to '
     '`(B, N, C)` with `C` read from its input (`BEiTAttention` in BEiT/EVA, HiViT) ties the '
     'embedding width to `heads * head_dim` of qkv, which stays whole: the size rules freeze '
     'the embedding and drop the head units (MLP widths stay prunable). The exported model '
     'would crash on that reshape otherwise; only a change of the model code (`-1`) lifts it.'),
    ('constant-size', 'limit', r'gives a channel dim the constant size',
     'a plain int (module attribute) sizes a channel dim',
     '`torch.split(x, self.width, 1)` (Res2Net) and similar: the exported model keeps the '
     'attribute, so the channels are frozen unless the module has an export adapter that '
     'updates it (`mmdms/export/adapters.py`: C2f, VAN, MultiheadAttention).'),
    ('fixed-size-buffer', 'limit', r'written by __setitem__ where the target holds no channels',
     'channels written into a buffer of fixed size',
     "mmdet's `SingleRoIExtractor` allocates `roi_feats` with its `out_channels` attribute and "
     'fills it with `roi_feats[inds] = ...`: the FPN width is frozen. An adapter would need '
     'the FPN width, which the extractor module does not hold.'),
    ('channel-softmax', 'limit', r'softmax over a channel dim', 'softmax over channels',
     'ResNeSt rSoftmax (over the radix groups) and the YOLOv8 DFL head (over the bins): the '
     'normalisation spans channels, which are frozen.'),
    ('token-mixing', 'limit', r'linear over token positions|contracts dim \d+, which holds no',
     'token-mixing layers',
     'A linear over the token dim of `(B, C, T)` (MLP-Mixer, RepMLP) passes the channels '
     'through; its own width counts tokens and is not pruned (expected).'),
    ('collapsed-to-one-channel', 'limit', r'a single channel cannot be pruned',
     'a unit with a single element',
     'Channels coupled so tightly (shared positions across groups, shuffles, ...) that a '
     'group has one element left: units keep at least one, so it is frozen.'),
    ('padded-channels', 'limit', r'channel mixes prunable and fixed values',
     'spatial F.pad marks padded positions as fixed channels',
     '`ChannelTracer._shape` pads the shadow with -1 (`F.pad(shadow, pad, value=UNLABELLED)`); '
     'the next conv\'s `_channel_vector` sees labelled and unlabelled values at one channel '
     'position and freezes it (EfficientNet TF-"same" padding before every depthwise conv). '
     'Padding only spatial dims should replicate the channel labels.'),
    ('unsupported-op', 'limit', r"unsupported op '", 'unsupported ops freeze their inputs',
     'e.g. `conv_transpose2d` (YOLOv6 neck), `multi_head_attention_forward` (nn.MultiheadAttention'
     ' in TNT), `unfold`, `normalize`, `einsum`, and cross-covariance attention (XCiT '
     '`q^T k` over tokens) -- plain `q @ k^T` ... `attn @ v` attention is supported.'),
    ('attention-fixed-bias', 'limit', r'attention heads whose scores are',
     'attention scores combined with a fixed-size tensor spanning the heads',
     'A relative position bias gathered from a `(table, heads)` parameter (Swin, BEiT, HiViT) '
     'reaches the scores as a plain tensor with one slice per head: removing a head would need '
     'the table sliced too, so those heads stay (no head unit).'),
    ('selection-by-position', 'limit', r'selects a subset of channels by position',
     'x[:, :c] / x[:, c:] freezes',
     'CSPNet and ShuffleNet-V2 split channels by slicing (`c = C // 2 (+ C % 2)` from '
     '`x.shape`); slices are not yet treated like `chunk(2)`.'),
    ('fixed-size-tensor', 'limit', r'combined element-wise with a fixed-size tensor',
     'added to a tensor without channel labels',
     'e.g. a position embedding that reaches the add as an interpolated/derived tensor '
     '(`_free_param_for_shape` labels a parameter only when it has a single non-singleton '
     'dim), TNT pixel embeddings.'),
]


def match_causes(rec: dict) -> List[str]:
    import re
    failed = rec.get('status') == 'fail'
    if failed:  # a failure by what raised (or the comparison), not by what was frozen
        texts = [str(rec.get('reason', '')), str(rec.get('error', '')),
                 str(rec.get('innermost_frame', ''))]
    else:
        texts = [r['reason'] for r in rec.get('frozen_reasons', [])]
    blob = '\n'.join(texts)
    found = []
    for cid, kind, pattern, _, _ in CAUSES:
        if cid == 'build-or-forward':
            if rec.get('status') == 'fail' and rec.get('stage') in ('build', 'forward'):
                found.append(cid)
            continue
        if (kind == 'fail') != (rec.get('status') == 'fail'):
            continue  # failures by their error, weak models by their frozen reasons
        if re.search(pattern, blob, flags=re.M):
            found.append(cid)
    return found


def reason_kinds(frozen_reasons: List[dict]) -> List[tuple]:
    """Frozen reasons without their location and sizes, with group counts, most common first
    (``reaches a model output`` left out): ``[('group conv with groups=32', 16), ...]``."""
    import re
    counts = Counter()
    for entry in frozen_reasons:
        reason = entry['reason']
        if reason == OUTPUT_REASON:
            continue
        kind = re.sub(r" \([^()]* in [^()]*\)$", '', reason)  # "(op in 'module')"
        kind = kind.split(';')[0]
        kind = re.sub(r"\(in \d+, out \d+\)", '', kind)
        kind = re.sub(r"\(\d+(?:, \d+)*\)", '(...)', kind)
        if not kind.startswith('unsupported op'):  # keep op names, drop parameter names
            kind = re.sub(r"'[^']*'", "'...'", kind)
        counts[kind.strip()] += entry.get('groups', 1)
    return counts.most_common()


def classify(rec: dict) -> None:
    """Set ``status`` and ``reason`` of a finished record."""
    if rec.get('status') == 'fail':
        return
    tol = DIFF_RTOL * max(1.0, rec['output_scale'])
    rec['tolerance'] = tol
    kinds = reason_kinds(rec['frozen_reasons'])
    top = '; '.join(f'{n} x {kind}' for kind, n in kinds[:3])
    if not rec['max_abs_diff'] <= tol:
        rec['status'] = 'fail'
        rec['reason'] = (f"exported model disagrees with the masked supernet: max_abs_diff "
                         f"{rec['max_abs_diff']:.3g} > {tol:.3g}")
        return
    weak = []
    if rec['num_channel_units'] + rec['num_block_units'] + rec['num_head_units'] == 0:
        weak.append('no prunable unit')
    if rec['flops_ratio'] > MAX_FLOPS_RATIO:
        weak.append(f"FLOPs ratio {rec['flops_ratio']:.3f} > {MAX_FLOPS_RATIO}")
    if rec['untouched_fraction'] > MAX_UNTOUCHED:
        weak.append(f"{rec['num_untouched_layers']}/{rec['num_layers']} conv/linear layers "
                    'untouched')
    if weak:
        rec['status'] = 'weak'
        rec['reason'] = '; '.join(weak) + (f' -- frozen: {top}' if top else '')
    else:
        rec['status'] = 'pass'
        rec['reason'] = f'frozen: {top}' if top else ''


def check_model(entry: dict, keep_ratio: float = 0.5, seed: int = 0,
                randomize: bool = True) -> dict:
    """Build, trace, prune and compare one zoo entry; never raises."""
    import torch
    start = time.time()
    rec = dict(name=entry['name'], config=entry['config'], status='fail', reason='',
               note=entry.get('note', ''))
    if entry.get('cfg_options'):
        rec['cfg_options'] = entry['cfg_options']
    stage = 'build'
    try:
        torch.manual_seed(seed)
        model, scope, cfg = tu.build_model(entry['config'], entry.get('scope', 'auto'),
                                           entry.get('cfg_options'))
        rec['scope'] = scope
        rec['model_params'] = int(sum(p.numel() for p in model.parameters()))
        stage = 'forward'
        shape, call, note = tu.resolve_input_shape(model, cfg, scope, entry.get('input_shape'),
                                                   seed, entry.get('two_stage_call',
                                                                   'fixed_proposals'))
        rec['input_shape'], rec['input_note'] = list(shape), note
        x = tu.example_input(shape, seed)
        layers = executed_layers(model, x, call)
        if randomize:
            rec['randomized_layer_scales'] = len(randomize_layer_scales(model, seed))
            rec['randomized_masked_params'] = len(randomize_masked_forward_params(model, seed))
        stage = 'prune_check'
        from mmdms.apis import prune_check
        result = prune_check(model, x, keep_ratio=keep_ratio, seed=seed, call=call)
        stage = 'report'
        frozen = Counter(result.get('frozen', []))
        untouched = untouched_layers(layers, result.get('structure', {}))
        rec.update(
            num_channel_units=int(result.get('num_channel_units', 0)),
            num_block_units=int(result.get('num_block_units', 0)),
            num_head_units=int(result.get('num_head_units', 0)),
            num_frozen_groups=sum(frozen.values()),
            frozen_reasons=[dict(reason=r, groups=n) for r, n in frozen.most_common()],
            max_abs_diff=float(result['max_abs_diff']),
            output_scale=float(result.get('output_scale', 0.0)),
            unpruned_diff=float(result.get('unpruned_diff', float('nan'))),
            flops_ratio=float(result['flops_ratio']),
            params_ratio=float(result['params_ratio']),
            flops=[float(v) for v in result.get('flops', ())],
            params=[float(v) for v in result.get('params', ())],
            trace_seconds=float(result.get('trace_seconds', float('nan'))),
            num_layers=len(layers),
            num_untouched_layers=len(untouched),
            untouched_fraction=len(untouched) / max(1, len(layers)),
            untouched_layers=untouched[:50],
            removed_blocks=len(result.get('structure', {}).get('removed_blocks', [])),
        )
        rec['status'] = 'ok'
        classify(rec)
    except Exception as e:  # one model's failure must not stop the sweep
        rec['status'] = 'fail'
        rec['stage'] = stage
        message = str(e).strip().splitlines()[0] if str(e).strip() else ''
        rec['error'] = f'{type(e).__name__}: {message}'[:500]
        rec.update(_where(e))
        rec['traceback'] = traceback.format_exc()[-4000:]
        # the innermost mmdms line that is not the call lambda says which step failed
        # (e.g. prune_check's forward of the exported model); then the line that raised
        steps = [f for f in rec.get('mmdms_frames', []) if ' in <lambda>' not in f]
        where = steps[-1] if steps else rec.get('innermost_frame', '')
        rec['reason'] = f"{stage}: {rec['error'][:240]}" + (f' @ {where}' if where else '')
        if steps and rec.get('innermost_frame') and rec['innermost_frame'] != where:
            rec['reason'] += f"; raised at {rec['innermost_frame']}"
    rec['seconds'] = time.time() - start
    return rec


def trace_benchmark(entry: dict) -> dict:
    """Time the trace alone (DMSMutator.prepare_from_supernet), cold and warm."""
    import copy
    start = time.time()
    rec = dict(name=entry['name'], config=entry['config'], input_shape=entry['input_shape'],
               limit_seconds=entry['limit_seconds'])
    try:
        model, _, _ = tu.build_model(entry['config'])
        x = tu.example_input(entry['input_shape'])
        cold = tu.trace_model(copy.deepcopy(model), x)
        warm = tu.trace_model(copy.deepcopy(model), x)
        rec.update(trace_seconds=cold['trace_seconds'], warm_trace_seconds=warm['trace_seconds'],
                   num_channel_units=cold['num_channel_units'],
                   num_block_units=cold['num_block_units'], num_traced_ops=cold['num_traced_ops'])
        rec['ok'] = cold['trace_seconds'] < entry['limit_seconds']
    except Exception as e:
        rec.update(ok=False, error=f'{type(e).__name__}: {e}'[:500], **_where(e))
    try:
        rec['load_average'] = list(os.getloadavg())
    except OSError:
        pass
    rec['seconds'] = time.time() - start
    return rec


# ----------------------------------------------------------------------------- isolation


def _child(fn, args, conn, threads=1):
    try:
        import torch
        torch.set_num_threads(threads)
        conn.send(fn(*args))
    except BaseException as e:  # pragma: no cover - last resort
        conn.send(dict(status='fail', reason=f'worker error: {type(e).__name__}: {e}'))
    finally:
        conn.close()


def run_isolated(fn, args, timeout: float, isolation: str = 'fork', threads: int = 1) -> dict:
    """``fn(*args)`` in a forked child with a timeout; a crash or timeout becomes a record.

    The child runs ``threads`` torch threads. Keep 1 unless the parent has never run a torch
    op: after a fork, OpenMP's thread pool of a parent that computed is gone and a
    multi-threaded op in the child deadlocks.
    """
    if isolation == 'none':
        return fn(*args)
    import multiprocessing as mp
    ctx = mp.get_context('fork')
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, args, send, threads), daemon=True)
    start = time.time()
    proc.start()
    send.close()
    result = None
    try:
        if recv.poll(timeout):
            try:
                result = recv.recv()
            except EOFError:
                result = None
        else:
            proc.kill()
            result = dict(status='fail', reason=f'timeout: no result after {timeout:.0f} s',
                          error='timeout')
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
        recv.close()
    if result is None:
        code = proc.exitcode
        what = f'killed by signal {-code}' if code is not None and code < 0 else f'exit code {code}'
        result = dict(status='fail', reason=f'worker died ({what}), e.g. out of memory',
                      error=f'worker died ({what})')
    result.setdefault('seconds', time.time() - start)
    return result


def preload() -> None:
    """Import everything the children need once, before forking (no torch compute here)."""
    for scope in tu.SCOPES:
        try:
            tu.import_scope(scope)
        except ImportError:
            pass
    import mmdms.apis  # noqa: F401
    import mmdms.models  # noqa: F401


# ----------------------------------------------------------------------------- reports


def summarize(records: List[dict]) -> dict:
    counts = Counter(r.get('status', 'fail') for r in records)
    return dict(total=len(records), **{k: counts.get(k, 0) for k in ('pass', 'weak', 'fail')})


def _fmt(value, spec):
    if value is None or (isinstance(value, float) and value != value):
        return '-'
    return format(value, spec)


def _md_escape(text: str) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def render_markdown(report: dict) -> str:
    s = report['summary']
    lines = [
        '# Prune zoo: `prune_check` over the model zoo', '',
        f"Generated {report['generated']} by `tools/analysis_tools/prune_zoo.py` "
        f"(keep_ratio {report['keep_ratio']}, seed {report['seed']}; torch "
        f"{report['versions'].get('torch', '?')}, CPU; mmdms at git "
        f"{report.get('source', {}).get('git_head', '?')} + working tree, sources sha1 "
        f"{report.get('source', {}).get('mmdms_sources_sha1', '?')}). Machine-readable: "
        '`prune_zoo.json`.', '',
        f"**{s['pass']} pass, {s['weak']} weak, {s['fail']} fail** of {s['total']} models.", '',
        'Each model is built from its config without pretrained weights, traced, every unit '
        f"keeps a random {report['keep_ratio']:.0%} of its channels/blocks, the exported model is "
        'built by `apply_structure` and compared with the hard-masked supernet on one random '
        'input (norm statistics, tiny layer-scale constants and constant per-channel '
        'parameters of modules with a masked forward, such as GRN, randomised first, so that '
        'every channel and branch contributes).', '',
        '* **fail**: an exception (stage and the raising line are given), a timeout/crash, or '
        f'`max_abs_diff > {DIFF_RTOL:g} * max(1, output_scale)`;',
        f'* **weak**: correct, but FLOPs ratio > {MAX_FLOPS_RATIO} at keep_ratio 0.5, or more than '
        f'{MAX_UNTOUCHED:.0%} of the executed conv/linear layers untouched, or no unit;',
        '* **pass**: otherwise. `reason` lists the most common frozen reasons besides '
        '"reaches a model output".', '',
    ]
    bench = report.get('trace_benchmark')
    if bench:
        if 'trace_seconds' in bench:
            load = bench.get('load_average')
            lines += [f"**Trace time** {bench['name']} (`{bench['config']}`, input "
                      f"{tuple(bench['input_shape'])}): **{bench['trace_seconds']:.2f} s** cold, "
                      f"{bench.get('warm_trace_seconds', float('nan')):.2f} s warm "
                      f"(limit {bench['limit_seconds']:.0f} s: "
                      f"{'ok' if bench.get('ok') else 'TOO SLOW'}; load average "
                      f"{', '.join(f'{v:.1f}' for v in load) if load else '?'} on a shared "
                      'machine).', '']
        else:
            lines += [f"**Trace time** {bench['name']}: failed: {bench.get('error', '?')}", '']
    lines += [
        '| model | config | status | reason | #ch | #blk | #head | #frozen | FLOPs ratio | '
        'params ratio | max_abs_diff | input | time (s) |',
        '|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|']
    for r in report['models']:
        shape = r.get('input_shape')
        lines.append('| ' + ' | '.join([
            r['name'], f"`{r['config']}`", f"**{r['status']}**" if r['status'] != 'pass'
            else 'pass', _md_escape(r.get('reason', ''))[:300],
            str(r.get('num_channel_units', '-')), str(r.get('num_block_units', '-')),
            str(r.get('num_head_units', '-')), str(r.get('num_frozen_groups', '-')),
            _fmt(r.get('flops_ratio'), '.3f'), _fmt(r.get('params_ratio'), '.3f'),
            _fmt(r.get('max_abs_diff'), '.2g'),
            f'{shape[-2]}x{shape[-1]}' if shape else '-', _fmt(r.get('seconds'), '.1f')
        ]) + ' |')
    details = [r for r in report['models'] if r['status'] != 'pass']
    if details:
        lines += ['', '## Root causes', '',
                  'Failed models are matched against known causes by their error and raising '
                  'line, weak and passing models by their frozen reasons; a model can have '
                  'several.', '']
        for cid, kind, _, title, text in CAUSES:
            hit = [r for r in details if cid in r.get('causes', [])]
            also = [r['name'] for r in report['models']
                    if r['status'] == 'pass' and cid in match_causes(r)]
            if not hit and not also:
                continue
            names = ', '.join(f"{r['name']} ({r['status']})" for r in hit) or 'none weak or failed'
            lines.append(f"### `{cid}`: {title}")
            lines.append('')
            lines.append(f'Models: {names}.' + (f" Also frozen in passing models: "
                                                 f"{', '.join(also)}." if also else ''))
            lines.append('')
            if text:
                lines.append(text)
                lines.append('')
        unexplained = [r['name'] for r in details if not r.get('causes')]
        if unexplained:
            lines += [f"Not matched to a known cause: {', '.join(unexplained)}.", '']
        lines += ['', '## Failures and weak models', '']
        for r in details:
            lines.append(f"### {r['name']} ({r['status']})")
            lines.append('')
            lines.append(f"* config: `{r['config']}`" + (f" with `{r['cfg_options']}`"
                                                          if r.get('cfg_options') else ''))
            lines.append(f"* reason: {_md_escape(r.get('reason', ''))}")
            if r.get('causes'):
                lines.append(f"* causes: {', '.join(f'`{c}`' for c in r['causes'])}")
            for frame in r.get('mmdms_frames', []):
                lines.append(f'* mmdms frame: `{frame}`')
            if r.get('innermost_frame'):
                lines.append(f"* raised at: `{r['innermost_frame']}`")
            if r.get('frozen_reasons'):
                lines.append('* frozen groups by reason:')
                for fr in r['frozen_reasons'][:8]:
                    lines.append(f"    * {fr['groups']} x {_md_escape(fr['reason'])}")
            if r.get('num_layers'):
                lines.append(f"* untouched conv/linear layers: {r['num_untouched_layers']}/"
                             f"{r['num_layers']}" + (
                                 f" (e.g. {', '.join(r['untouched_layers'][:4])})"
                                 if r.get('untouched_layers') else ''))
            lines.append('')
    notes = [r for r in report['models'] if r.get('note') or
             str(r.get('input_note', '')).startswith('native')]
    if notes:
        lines += ['', '## Notes on configs and inputs', '']
        for r in notes:
            text = '; '.join(filter(None, [r.get('note'), r.get('input_note') if str(
                r.get('input_note', '')).startswith('native') else '']))
            lines.append(f"* {r['name']}: {_md_escape(text)}")
    if report.get('skipped'):
        lines += ['', '## mmpretrain families not in the sweep', '']
        for family, why in sorted(report['skipped'].items()):
            lines.append(f'* `{family}`: {why}')
    return '\n'.join(lines) + '\n'


def write_report(report: dict, out_dir: str) -> None:
    report['summary'] = summarize(report['models'])
    tu.atomic_write(osp.join(out_dir, 'prune_zoo.json'), json.dumps(report, indent=1) + '\n')
    tu.atomic_write(osp.join(out_dir, 'prune_zoo.md'), render_markdown(report))


def _source_state() -> dict:
    """Git commit of the checkout and a hash of the mmdms sources as imported (other people
    edit the tracer while sweeps run: this says which code a table describes)."""
    import hashlib
    import subprocess
    import mmdms
    state = {}
    try:
        state['git_head'] = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO_ROOT,
                                           capture_output=True, text=True,
                                           timeout=10).stdout.strip()
    except Exception:
        pass
    digest = hashlib.sha1()
    root = osp.dirname(mmdms.__file__)
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith('.py'):
                with open(osp.join(dirpath, name), 'rb') as f:
                    digest.update(name.encode() + f.read())
    state['mmdms_sources_sha1'] = digest.hexdigest()[:12]
    return state


def _versions() -> dict:
    versions = {}
    for pkg in ('torch', 'mmengine', 'mmcv', 'mmpretrain', 'mmdet', 'mmyolo'):
        try:
            versions[pkg] = __import__(pkg).__version__
        except Exception:
            pass
    return versions


# ----------------------------------------------------------------------------- CLI


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='prune_check over a zoo of configs')
    parser.add_argument('--models', default=None,
                        help='all (default) | mmpretrain | mmdet | mmyolo | comma separated '
                        'names/configs | a file with one name or config per line')
    parser.add_argument('--out-dir', default=osp.join(REPO_ROOT, 'docs'))
    parser.add_argument('--keep-ratio', type=float, default=0.5)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--timeout-per-model', type=float, default=300.0)
    parser.add_argument('--isolation', choices=('fork', 'none'), default='fork',
                        help='fork: one child process per model (default); none: in-process')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads per model (fork isolation: > 1 only if nothing ran '
                        'torch ops in this process before, else OpenMP deadlocks)')
    parser.add_argument('--no-randomize', action='store_true',
                        help='keep tiny layer-scale constants and constant parameters of '
                        'masked-forward modules (GRN) as initialised')
    parser.add_argument('--trace-benchmark', choices=('auto', 'yes', 'no'), default='auto',
                        help='also time the ResNet-50 224x224 trace (auto: when sweeping all)')
    parser.add_argument('--input-shape', type=int, nargs=4, default=None,
                        help='one example input shape (N C H W) for every model, overriding '
                        'the defaults (64x64 classifiers, 256x256 detectors)')
    parser.add_argument('--update', action='store_true',
                        help='merge into an existing prune_zoo.json (replace models by name)')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    models = zoo_models.load_model_list(args.models)
    if args.input_shape:
        for entry in models:
            entry['input_shape'] = list(args.input_shape)
    preload()
    report = dict(generated=datetime.datetime.now().isoformat(timespec='seconds'),
                  keep_ratio=args.keep_ratio, seed=args.seed, versions=_versions(),
                  source=_source_state(),
                  criteria=dict(diff_rtol=DIFF_RTOL, max_flops_ratio=MAX_FLOPS_RATIO,
                                max_untouched_fraction=MAX_UNTOUCHED),
                  skipped=dict(zoo_models.SKIPPED) if args.models in (None, 'all', 'mmpretrain')
                  else {}, trace_benchmark=None, models=[])
    json_path = osp.join(args.out_dir, 'prune_zoo.json')
    previous = []
    if args.update and osp.exists(json_path):
        with open(json_path) as f:
            old = json.load(f)
        previous = old.get('models', [])
        report['trace_benchmark'] = old.get('trace_benchmark')
        report['skipped'] = old.get('skipped') or report['skipped']
    names = {m['name'] for m in models}
    kept_previous = [r for r in previous if r['name'] not in names]

    def publish(done):
        report['models'] = sorted(kept_previous + done, key=lambda r: r['name']) \
            if args.update else done
        write_report(report, args.out_dir)

    bench = args.trace_benchmark == 'yes' or (args.trace_benchmark == 'auto'
                                              and args.models in (None, 'all'))
    if bench:
        entry = zoo_models.TRACE_BENCHMARK
        report['trace_benchmark'] = run_isolated(trace_benchmark, (entry, ),
                                                 args.timeout_per_model, args.isolation,
                                                 args.threads)
        report['trace_benchmark']['threads'] = args.threads
        b = report['trace_benchmark']
        print(f"[trace] {entry['name']}: {b.get('trace_seconds', float('nan')):.2f} s "
              f"(warm {b.get('warm_trace_seconds', float('nan')):.2f} s) "
              f"{'ok' if b.get('ok') else 'NOT OK ' + str(b.get('error', ''))}", flush=True)
    done = []
    start = time.time()
    for i, entry in enumerate(models):
        rec = run_isolated(check_model, (entry, args.keep_ratio, args.seed,
                                         not args.no_randomize),
                           entry.get('timeout', args.timeout_per_model), args.isolation,
                           args.threads)
        rec.setdefault('name', entry['name'])
        rec.setdefault('config', entry['config'])
        rec.setdefault('note', entry.get('note', ''))
        if rec.get('status') != 'pass':
            rec['causes'] = match_causes(rec)
        done.append(rec)
        publish(done)
        counts = summarize(done)
        print(f"[{i + 1}/{len(models)}] {entry['name']:<24} {rec['status']:<4} "
              f"{rec.get('seconds', 0):6.1f} s  flops {_fmt(rec.get('flops_ratio'), '.3f'):>5}  "
              f"{str(rec.get('reason', ''))[:150]}  "
              f"(pass {counts['pass']} weak {counts['weak']} fail {counts['fail']}, "
              f"{time.time() - start:.0f} s)", flush=True)
    publish(done)
    s = report['summary']
    print(f"done: {s['pass']} pass, {s['weak']} weak, {s['fail']} fail of {s['total']}; "
          f"wrote {json_path} and prune_zoo.md", flush=True)
    return report


if __name__ == '__main__':
    main()
