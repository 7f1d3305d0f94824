"""Record the executed graph of one real forward pass and couple channels across layers.

How it works. Every tensor seen during the forward gets a *shadow*: an integer tensor of the
same shape whose entries name the channel each value belongs to (``-1``: not a channel, e.g.
image pixels, batch or spatial positions). Channels are born in parameter dimensions (rows of a
conv weight are "node" ids in a :class:`UnionFind`). A ``TorchFunctionMode`` sees every torch
call -- so Python control flow in mmdet/mmyolo heads is no obstacle -- and, per op:

* shape ops (view, reshape, flatten, permute, split, chunk, cat, getitem, ...) are *replayed on
  the shadows*, so index bookkeeping through concat/split/flatten is exact by construction;
* element-wise ops (add, mul, activations) unify the nodes they put side by side;
* conv / linear / norms tie the input channels to their weight's input dimension and create
  (or follow) output channels;
* sizes read from tensors (``x.shape``, ``x.size()``) and the ints of shape ops are checked
  against the pruning the exported model will see (:mod:`.size_rules`);
* modules whose outputs no traced op computed (C++/CUDA extensions such as mmcv's RoIAlign)
  pass channels through when known to be channel-wise, else freeze their inputs;
* anything not understood freezes the channels it touches and records the op and module path.

Nothing is dropped silently: every frozen channel carries a reason for the report.
"""
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from mmdms.registry import MASKED_FORWARDS
from .size_rules import FACTORIES, SizeRulesMixin, basic_index_dims, compact, varies_along
from .sizes import TaggedInt
from .union_find import UnionFind

UNLABELLED = -1

MASKABLE_CONSUMERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.LayerNorm, nn.GroupNorm)
# norm layers whose statistics the mutator masks (their class forward must be the stock one)
MASKED_NORM_FORWARDS = {'layer_norm': nn.LayerNorm.forward, 'group_norm': nn.GroupNorm.forward}
# ops that only reorder the dims of a tensor: a LayerNorm subclass whose forward is these around
# one F.layer_norm (mmpretrain's LayerNorm2d) normalises a dim of its input, and can be masked
LAYOUT_OPS = {'permute', 'transpose', 'swapaxes', 'movedim', 't', 'contiguous'}


@dataclass
class ParamSlot:
    """One channel dimension of a parameter or buffer, with a node per index."""
    name: str
    dim: int
    nodes: Tensor
    role: str  # 'producer' (creates channels) | 'consumer' (reads them) | 'follower'


@dataclass
class ConsumerSite:
    """A module that mixes channels of its input; the unit masks are applied on that input.

    ``applied_in`` names the module whose forward applies ``module``'s ``param`` itself
    (``F.linear(x, self.qkv.weight, bias)`` in BEiT attention; None: ``module``'s own
    forward). The mutator masks that weight's input dim while that forward runs.
    """
    module: str
    kind: str  # 'conv' | 'linear' | 'layer_norm' | 'group_norm' | 'masked_forward'
    dim: int
    nodes: Tensor
    applied_in: Optional[str] = None
    param: str = 'weight'


@dataclass
class ResidualBlock:
    """A module computing ``x + f1(x) (+ f2(.) ...)``, optionally followed by ReLU on a
    non-negative ``x``: with every branch scaled by zero it is the identity."""
    module: str
    branches: List[str]  # modules whose outputs are the f_i: the block mask scales them
    parent: str


@dataclass
class HeadSite:
    """One ``scaled_dot_product_attention`` call: ``nodes[h]`` are head h's q/k/v channels."""
    module: str
    nodes: List[Tensor]

    @property
    def num_heads(self) -> int:
        return len(self.nodes)


@dataclass
class ComputeSite:
    """FLOPs of one op as ``coef * prod(sum of masks over each factor)``.

    A factor is a list of channel nodes (input or output channels of a conv, ...), or, for
    attention, one node list per head (``head_factor``). ``enclosing`` lists the modules the op
    ran in, so ops inside a removable block scale with its mask. Counting follows
    ``mmengine.analysis`` so the soft FLOPs and the exported model's count agree.
    """
    op: str
    coef: float
    factors: List[Tensor]
    enclosing: List[str]
    head_factor: Optional[List[Tensor]] = None


@dataclass
class FrozenRecord:
    reason: str
    op: str
    module: str
    expected: bool = False  # True for model inputs/outputs: constraints, not failures


@dataclass
class TraceResult:
    uf: UnionFind
    slots: List[ParamSlot]
    consumers: List[ConsumerSite]
    blocks: List[ResidualBlock]
    frozen: List[FrozenRecord]
    module_types: Dict[str, str]
    heads: List[HeadSite] = field(default_factory=list)
    compute: List[ComputeSite] = field(default_factory=list)
    num_ops: int = 0
    unsupported_ops: Dict[str, int] = field(default_factory=dict)
    # node labels of each piece of every split sized by an adapter (see _sized_by_adapter)
    split_pieces: List[List[Tensor]] = field(default_factory=list)


def _name(func) -> str:
    name = getattr(func, '__name__', None) or str(func)
    return name


# --- op tables (by function name; Tensor methods and torch functions share names) ---------
UNARY = {
    'relu', 'relu_', 'relu6', 'silu', 'silu_', 'gelu', 'sigmoid', 'sigmoid_', 'tanh', 'tanh_',
    'hardswish', 'hardswish_', 'hardsigmoid', 'hardtanh', 'hardtanh_', 'leaky_relu', 'leaky_relu_',
    'elu', 'elu_', 'mish', 'softplus', 'selu', 'celu', 'prelu_no_weight', 'dropout', 'dropout1d',
    'dropout2d', 'dropout3d', 'alpha_dropout', 'clone', 'contiguous', 'detach', 'float', 'half',
    'double', 'to', 'type', 'type_as', 'neg', '__neg__', 'exp', 'abs', '__abs__', 'sqrt', 'rsqrt',
    'clamp', 'clamp_', 'clamp_min', 'clamp_max', 'clip', 'log', 'erf', 'sign', 'square', 'cpu',
    'cuda', 'requires_grad_', 'sin', 'cos'
}
NONNEGATIVE = {'relu', 'relu_', 'relu6', 'sigmoid', 'sigmoid_', 'hardsigmoid'}
BINARY = {
    'add', 'add_', '__add__', '__radd__', '__iadd__', 'sub', 'sub_', '__sub__', '__rsub__',
    '__isub__', 'mul', 'mul_', '__mul__', '__rmul__', '__imul__', 'div', 'div_', '__truediv__',
    '__rtruediv__', '__itruediv__', 'true_divide', 'maximum', 'minimum', 'pow', '__pow__'
}
ADDS = {'add', 'add_', '__add__', '__radd__', '__iadd__'}
INPLACE = {'add_', '__iadd__', 'sub_', '__isub__', 'mul_', '__imul__', 'div_', '__itruediv__'}
SHAPE = {
    'view', 'reshape', 'flatten', 'unflatten', 'permute', 'transpose', 't', 'unsqueeze',
    'squeeze', 'expand', 'expand_as', 'movedim', 'repeat', 'roll', 'flip', 'split', 'chunk',
    'unbind', 'split_with_sizes', 'tensor_split', 'cat', 'concat', 'concatenate', 'stack',
    '__getitem__', 'select', 'narrow', 'pad', 'view_as', 'reshape_as', 'swapaxes'
}
SPLITS = {'split', 'chunk', 'unbind', 'split_with_sizes', 'tensor_split'}
SPATIAL = {
    'max_pool1d', 'max_pool2d', 'max_pool3d', 'avg_pool1d', 'avg_pool2d', 'avg_pool3d',
    'adaptive_avg_pool1d', 'adaptive_avg_pool2d', 'adaptive_avg_pool3d', 'adaptive_max_pool1d',
    'adaptive_max_pool2d', 'adaptive_max_pool3d', 'interpolate', 'upsample', 'upsample_nearest',
    'upsample_bilinear', 'max_pool2d_with_indices', 'lp_pool2d', '_max_pool2d', 'fn'
}
REDUCTIONS = {'mean', 'sum', 'amax', 'amin', 'max', 'min', 'std', 'var', 'norm', 'logsumexp'}
NON_TENSOR = {'size', 'dim', 'numel', '__get__', '__len__', 'is_contiguous', 'element_size',
              'stride', 'data_ptr', 'is_floating_point', 'get_device', '__format__', '__bool__',
              'item', 'tolist', '__repr__', '__iter__', 'ndimension', 'nelement', '__hash__',
              '__eq__', 'eq', 'ne', '__ne__', 'gt', 'lt', 'ge', 'le', '__gt__', '__lt__', '__ge__',
              '__le__', 'isfinite', 'isnan', 'any', 'all', 'new_tensor', 'argmax', 'argmin', 'nonzero', 'numpy',
              'backward'}
# modules computed by C++/CUDA extensions that the tracer cannot see into, known to act on
# each input channel separately (output channel i comes from input channel i only)
CHANNELWISE_EXTENSIONS = {'RoIAlign', 'RoIPool', 'RoIAlignRotated'}
# tensor attributes that are views of the tensor: the shadow takes the same attribute
VIEW_PROPERTIES = {'T', 'mT', 'H', 'mH', 'data'}
# allocations shaped like their input: their channels are the input's (their size follows it)
LIKE = {'zeros_like', 'ones_like', 'empty_like', 'full_like'}


def _tensors(obj) -> List[Tensor]:
    leaves, _ = tree_flatten(obj)
    return [x for x in leaves if isinstance(x, Tensor)]


def _drop_shared_broadcast(a: Tensor, b: Tensor) -> Tuple[Tensor, Tensor]:
    """Narrow dims along which both shadows are broadcast (stride 0) to size 1: same
    information, far fewer elements (a conv output's spatial dims, typically)."""
    for d in range(a.dim()):
        if a.shape[d] > 1 and a.stride(d) == 0 and b.stride(d) == 0:
            a, b = a.narrow(d, 0, 1), b.narrow(d, 0, 1)
    return a, b


def _labelled(shadow: Tensor) -> bool:
    return bool((shadow >= 0).any())


def _getter_name(func) -> Optional[str]:
    """``x.shape``, ``x.T``, ... reach ``__torch_function__`` as the getter of the attribute's
    slot: its name."""
    return getattr(getattr(func, '__self__', None), '__name__', None)


class ChannelTracer(SizeRulesMixin, TorchFunctionMode):
    """Trace ``model`` once and return the channel coupling (:class:`TraceResult`).

    Args:
        model: any ``nn.Module``.
        leaf_adapters: optional mapping from module class name to an adapter that handles
            that module as a black box (see :mod:`mmdms.models.tracing.adapters`).
    """

    def __init__(self, model: nn.Module, leaf_adapters: Optional[Dict[str, Any]] = None):
        super().__init__()
        self.model = model
        self.uf = UnionFind()
        self.slots: Dict[Tuple[str, int], ParamSlot] = {}
        self.consumers: List[ConsumerSite] = []
        self.frozen: List[FrozenRecord] = []
        self.blocks: List[ResidualBlock] = []
        self.heads: List[HeadSite] = []
        self.compute: List[ComputeSite] = []
        self.unsupported: Dict[str, int] = {}
        self.leaf_adapters = leaf_adapters or {}
        self.param_names: Dict[int, str] = {}
        for name, p in itertools.chain(model.named_parameters(), model.named_buffers()):
            self.param_names.setdefault(id(p), name)
        # parameters registered under several names (tied weights): cannot be swapped in one
        self.tied_params = {id(p) for name, p in model.named_parameters(remove_duplicate=False)
                            if self.param_names.get(id(p)) != name}
        self.applied: Dict[int, int] = {}  # weight id -> conv/linear ops applying it
        self.outside_params: Dict[Tuple[str, str], Tensor] = {}  # weights masked in place
        self.module_names = {id(m): n for n, m in model.named_modules()}
        self.modules = dict(model.named_modules())
        # tensor bookkeeping (keep tensors alive so ids stay unique during the trace)
        self.shadows: Dict[int, Tuple[Tensor, Tensor]] = {}
        self.last_write: Dict[int, Tuple[int, str]] = {}
        self.nonnegative: set = set()
        self.uses: Dict[int, int] = {}
        self.output_of: Dict[int, str] = {}
        self.free_param_shadows: Dict[int, Tensor] = {}
        self.counter = 0
        # module stack: (name, input tensor, start counter)
        self.stack: List[Tuple[str, Optional[Tensor], int]] = []
        self.calls: Dict[str, int] = {}
        self.pending_blocks: Dict[str, List[dict]] = {}
        self._hooks = []
        # sizes read from tensors and shape-op ints (see :mod:`.size_rules`)
        self._init_size_rules()
        self.fresh: set = set()  # allocated by a factory op, no data written by a visible op
        self.pending_splits: List[tuple] = []  # channel dims split in two, see _check_reshape
        # attention scores ``q @ k^T``: score node -> (head index, the head's q/k nodes)
        self.score_heads: Dict[int, Tuple[int, Tensor]] = {}
        # parameters applied alike to every head/group of a channel grid, see _operand_shadow
        self.grid_followers: List[Tuple[ParamSlot, Tensor, int]] = []
        self._grouped: set = set()  # ids of grouped-conv weights pruned per group position
        # permuted LayerNorms (see _permuted_norm): id -> (tensor, root, dims of root, ops)
        self.layouts: Dict[int, tuple] = {}
        self.pending_norms: Dict[str, tuple] = {}
        self.norm_dims: Dict[str, int] = {}
        self.written: set = set()  # modules in which __setitem__ (not counted as an op) ran
        self.split_pieces: List[List[Tensor]] = []

    # ------------------------------------------------------------------ public entry point
    def trace(self, forward: Callable[[], Any]) -> TraceResult:
        for name, module in self.model.named_modules():
            self._hooks.append(module.register_forward_pre_hook(self._make_pre_hook(name)))
            self._hooks.append(module.register_forward_hook(self._make_post_hook(name)))
        try:
            with torch.no_grad(), self:
                outputs = forward()
        finally:
            for h in self._hooks:
                h.remove()
            self._hooks.clear()
        for t in _tensors(outputs):
            self._freeze_shadow(self._shadow(t), 'reaches a model output', 'output', '',
                                expected=True)
        self._resolve_outside_consumers()
        self._resolve_grid_followers()
        self._resolve_splits()
        self._resolve_size_checks()
        result = TraceResult(
            uf=self.uf,
            slots=list(self.slots.values()),
            consumers=self.consumers,
            blocks=self.blocks,
            frozen=self.frozen,
            heads=self.heads,
            compute=self.compute,
            module_types={n: type(m).__name__
                          for n, m in self.model.named_modules()},
            num_ops=self.counter,
            unsupported_ops=self.unsupported,
            split_pieces=self.split_pieces)
        self.shadows.clear()
        self.layouts.clear()
        return result

    # ------------------------------------------------------------------ module hooks
    def _make_pre_hook(self, name):

        def hook(module, args):
            first = next(iter(_tensors(args)), None)
            self.stack.append((name, first, self.counter))
            self.calls[name] = self.calls.get(name, 0) + 1

        return hook

    def _make_post_hook(self, name):

        def hook(module, args, output):
            entry = self.stack.pop()
            assert entry[0] == name, (entry[0], name)
            out_tensors = _tensors(output)
            with torch._C.DisableTorchFunction():  # the tracer's own tensor ops: not traced
                if name in self.pending_norms:
                    self._guarded(lambda *_: self._close_permuted_norm(
                        name, module, entry[2], out_tensors), 'layer_norm', args, {}, None)
                self._guarded(lambda *_: self._check_invisible_outputs(
                    name, module, args, out_tensors), type(module).__name__, args, {}, None)
            for t in out_tensors:
                self.output_of[id(t)] = name
            self._close_blocks(name, out_tensors)

        return hook

    @property
    def current_module(self) -> str:
        return self.stack[-1][0] if self.stack else ''

    # ------------------------------------------------------------------ shadows
    def _shadow(self, t: Tensor) -> Tensor:
        entry = self.shadows.get(id(t))
        if entry is not None and entry[0] is t:
            return entry[1]
        if id(t) in self.free_param_shadows:
            return self.free_param_shadows[id(t)]
        return torch.full((), UNLABELLED, dtype=torch.long).expand(t.shape)

    def _set_shadow(self, t: Tensor, shadow: Tensor, op: str) -> None:
        if shadow.shape != t.shape:
            shadow = shadow.expand(t.shape) if shadow.dim() <= t.dim() else shadow.reshape(t.shape)
        self.shadows[id(t)] = (t, shadow)
        self.last_write[id(t)] = (self.counter, op)
        self.fresh.discard(id(t))

    def _slot(self, param: Tensor, dim: int, role: str) -> Optional[ParamSlot]:
        name = self.param_names.get(id(param))
        if name is None:
            return None
        dim = dim % param.dim()
        key = (name, dim)
        slot = self.slots.get(key)
        if slot is None:
            slot = ParamSlot(name, dim, self.uf.new_nodes(param.shape[dim]), role)
            self.slots[key] = slot
        return slot

    def _freeze_shadow(self, shadow: Tensor, reason: str, op: str, module: str,
                       expected: bool = False) -> None:
        nodes = torch.unique(shadow[shadow >= 0]) if shadow.numel() else shadow.new_empty(0)
        if nodes.numel() == 0:
            return
        where = repr(module) if module else '<top level>'
        self.uf.freeze(nodes.tolist(), reason if expected else f'{reason} ({op} in {where})')
        self.frozen.append(FrozenRecord(reason, op, module, expected))

    def _positions_only(self, t: Tensor, dim: int) -> bool:
        """Channels vary along some dim of ``t``, but not along ``dim``: an op contracting
        ``dim`` (a token-mixing linear on ``(B, C, T)``) sees the channels as positions."""
        small = compact(self._shadow(t))
        dim = dim % t.dim()
        return not varies_along(small, dim) and any(
            varies_along(small, d) for d in range(t.dim()) if d != dim)

    def _channel_vector(self, t: Tensor, dim: int) -> Tensor:
        """Per-channel node along ``dim``; unifies the nodes found at each channel position.

        When the channels vary along another dim instead (see :meth:`_positions_only`), the
        positions of ``dim`` are not channels: uniting the labels found there would merge
        every channel into one, so they are frozen instead.
        """
        shadow = self._shadow(t)
        dim = dim % t.dim()
        if self._positions_only(t, dim):
            self._freeze_shadow(shadow, f'contracts dim {dim}, which holds no channels, while '
                                'channels vary along another dim', 'channel position',
                                self.current_module)
            return self._fixed_nodes(t.shape[dim])
        moved = shadow.movedim(dim, -1)
        # drop broadcast (zero-stride) dimensions before the heavy work
        index = tuple(slice(0, 1) if moved.stride(d) == 0 else slice(None)
                      for d in range(moved.dim() - 1)) + (slice(None), )
        rows = moved[index].reshape(-1, moved.shape[-1])
        first = rows[0].clone()
        if rows.shape[0] > 1:
            others = rows[1:]
            differs = (others != first).any(dim=0)
            if differs.any():
                cols = torch.nonzero(differs).flatten()
                sub = others[:, cols]
                ref = first[cols].expand_as(sub)
                both = (sub >= 0) & (ref >= 0)
                self.uf.union_pairs(sub[both], ref[both])
                mixed = ((sub >= 0) ^ (ref >= 0)).any(dim=0)
                if mixed.any():
                    bad = torch.cat([sub[:, mixed].flatten(), ref[:, mixed].flatten()])
                    self._freeze_shadow(bad, 'channel mixes prunable and fixed values',
                                        'channel position', self.current_module)
                    # a channel with any labelled value is still that channel
                    fill = torch.where(ref[0] >= 0, ref[0], sub.max(dim=0).values)
                    first[cols] = fill
        return first

    # ------------------------------------------------------------------ dispatch
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = _name(func)
        getter = _getter_name(func) if name == '__get__' else None
        if name == 'size' or getter == 'shape':
            return self._tagged_sizes(args, kwargs, out)
        if getter in VIEW_PROPERTIES and isinstance(out, Tensor):
            self._guarded(self._view_property, getter, args, kwargs, out)
            return out
        if name == '__setitem__':
            self._guarded(self._setitem, name, args, kwargs, out)
            return out
        if name in FACTORIES and isinstance(out, Tensor):
            self._guarded(self._factory, name, args, kwargs, out)
            return out
        if name in NON_TENSOR or not _tensors(out):
            return out
        self.counter += 1
        inputs = _tensors((args, kwargs))
        out_ids = {id(t) for t in _tensors(out)}
        for t in inputs:  # an in-place op hands the same tensor on: not another consumer
            if id(t) not in out_ids:
                self.uses[id(t)] = self.uses.get(id(t), 0) + 1
        try:
            self._handle(func, name, args, kwargs, out, inputs)
            self._check_size_uses(name, args, kwargs, out)
        except Exception as e:  # never let the tracer break the user's forward
            self._unsupported(name, inputs, out, f'tracer error: {type(e).__name__}: {e}')
        return out

    def _view_property(self, name, args, kwargs, out):
        """``x.T``, ``x.mT``, ``x.data``: the same view of the shadow."""
        self._set_shadow(out, getattr(self._shadow(args[0]), name), name)

    def _guarded(self, rule, name, args, kwargs, out):
        """Run ``rule``; an error in the tracer freezes the op's inputs instead of breaking
        the user's forward."""
        try:
            rule(name, args, kwargs, out)
        except Exception as e:
            self._unsupported(name, _tensors((args, kwargs)), out,
                              f'tracer error: {type(e).__name__}: {e}')

    def _handle(self, func, name, args, kwargs, out, inputs):
        if name in LAYOUT_OPS:
            self._note_layout(func, name, args, kwargs, out)
        if name in ('conv1d', 'conv2d', 'conv3d'):
            return self._conv(name, args, kwargs, out)
        if name == 'linear':
            return self._linear(args, kwargs, out)
        if name in ('batch_norm', 'instance_norm'):
            return self._channelwise_norm(name, args, kwargs, out)
        if name == 'layer_norm':
            return self._layer_norm(args, kwargs, out)
        if name == 'group_norm':
            return self._group_norm(args, kwargs, out)
        if name in LIKE:  # like a factory: no visible data written yet
            self._set_shadow(out, self._shadow(args[0]), name)
            return self.fresh.add(id(out))
        if name in UNARY:
            return self._unary(name, args, out)
        if name in BINARY:
            return self._binary(name, args, kwargs, out)
        if name in SHAPE:
            return self._shape(func, name, args, kwargs, out)
        if name in SPATIAL or name.startswith('upsample'):
            return self._spatial(name, args, kwargs, out)
        if name in REDUCTIONS:
            return self._reduction(name, args, kwargs, out)
        if name in ('softmax', 'log_softmax'):
            return self._softmax(name, args, kwargs, out)
        if name == 'scaled_dot_product_attention':
            return self._attention(args, kwargs, out)
        if name in ('matmul', 'bmm', '__matmul__') and len(inputs) == 2:
            return self._matmul(name, inputs[0], inputs[1], out)
        return self._unsupported(name, inputs, out)

    def _unsupported(self, name, inputs, out, reason=None):
        """Freeze the labelled inputs of an op the tracer cannot follow; its outputs hold no
        channels. Tracer errors (``reason``) are counted even without labelled inputs, so
        that a bug in a rule shows in ``unsupported_ops`` instead of passing silently."""
        labelled = [t for t in inputs if _labelled(self._shadow(t))]
        for t in labelled:
            self._freeze_shadow(self._shadow(t), reason or f'unsupported op {name!r}', name,
                                self.current_module)
        if labelled or reason is not None:
            key = name if reason is None else f'{name} ({reason.split(":")[0]})'
            self.unsupported[key] = self.unsupported.get(key, 0) + 1
        for t in _tensors(out):
            self._set_shadow(t, torch.full((), UNLABELLED, dtype=torch.long), name)

    def _add_compute(self, op: str, coef: float, factors: Sequence[Tensor] = (),
                     head_factor: Optional[List[Tensor]] = None) -> None:
        enclosing = [name for name, _, _ in self.stack]
        self.compute.append(ComputeSite(op, float(coef), [f.clone() for f in factors],
                                        enclosing, head_factor))

    # ------------------------------------------------------------------ layer rules
    def _consumer(self, module_param: Tensor, kind: str, x: Tensor, dim: int, vec: Tensor):
        """Record a maskable consumer, or freeze its channels with the reason why not."""
        self.applied[id(module_param)] = self.applied.get(id(module_param), 0) + 1
        if not (vec >= 0).any():
            return
        pname = self.param_names.get(id(module_param), '')
        owner = pname.rsplit('.', 1)[0] if '.' in pname else ''
        module = self.modules.get(owner)
        top_name, top_input, _ = self.stack[-1] if self.stack else ('', None, 0)
        if not isinstance(module, MASKABLE_CONSUMERS) or top_name != owner or top_input is not x:
            why = self._outside_weight_problem(module_param, pname, kind, vec)
            if why is None:
                attr = pname.rsplit('.', 1)[-1]
                self.consumers.append(ConsumerSite(owner, kind, dim, vec, top_name, attr))
                self.outside_params[(owner, attr)] = module_param
                return
            self._freeze_shadow(
                vec, f'{kind} weight {pname!r} is applied outside a standard '
                f'{kind} module forward, {why}', kind, top_name)
            return
        stock = MASKED_NORM_FORWARDS.get(kind)
        if stock is not None and type(module).forward is not stock:
            self._freeze_shadow(
                vec, f'{type(module).__name__} at {owner!r} overrides {stock.__qualname__}, so '
                'its statistics cannot be masked', kind, top_name)
            return
        self.consumers.append(ConsumerSite(owner, kind, dim, vec))

    def _outside_weight_problem(self, param: Tensor, pname: str, kind: str,
                                vec: Tensor) -> Optional[str]:
        """Why a conv/linear weight applied by code other than its module's own forward
        cannot be masked where it is applied, or None if it can.

        The mutator swaps in ``W * m`` (mask on the weight's input dim) while the running
        module's forward runs, so the weight must be a parameter (registered once) of that
        module or of one of its submodules, and the mask must span the weight's input dim
        (not a grouped conv). See :meth:`_resolve_outside_consumers` for the checks that
        need the whole trace.
        """
        if kind not in ('linear', 'conv') or not self.stack:
            return 'so its input cannot be masked'
        owner, _, attr = pname.rpartition('.')
        module = self.modules.get(owner)
        if module is None or module._parameters.get(attr) is not param or \
                id(param) in self.tied_params:
            return 'and is not a parameter of one module, so its input cannot be masked'
        top_name = self.current_module
        if top_name and owner != top_name and not owner.startswith(top_name + '.'):
            return (f'by {top_name!r}, which does not contain it, so its input cannot be '
                    'masked')
        if param.dim() < 2 or vec.numel() != param.shape[1]:
            return 'as a grouped op, so its input cannot be masked'
        return None

    def _resolve_outside_consumers(self) -> None:
        """A weight masked where it is applied must be applied by one module's forward only
        (a second one, or its own module's forward, would see the mask twice or not at all)
        and be read by no other op (which would see ``W * m`` instead of ``W``)."""
        dropped = set()
        for (owner, attr), param in self.outside_params.items():
            sites = [s for s in self.consumers if s.module == owner and s.param == attr]
            callers = {s.applied_in for s in sites}
            pname = self.param_names[id(param)]
            kind = sites[0].kind
            if len(callers) > 1:
                names = ', '.join(repr(owner if c is None else c) for c in sorted(
                    callers, key=lambda c: '' if c is None else c))
                why = f'by several forwards ({names}), so it cannot be masked in one place'
            elif self.uses.get(id(param), 0) > self.applied.get(id(param), 0):
                why = 'and is also read by other ops, which a masked weight would change'
            else:
                continue
            for site in sites:
                self._freeze_shadow(site.nodes, f'{kind} weight {pname!r} is applied outside a '
                                    f'standard {kind} module forward, {why}', kind,
                                    site.applied_in or owner)
                dropped.add(id(site))
        self.consumers = [s for s in self.consumers if id(s) not in dropped]

    def _conv(self, name, args, kwargs, out):
        params = dict(zip(('input', 'weight', 'bias', 'stride', 'padding', 'dilation', 'groups'),
                          args))
        params.update(kwargs)
        x, w, b = params['input'], params['weight'], params.get('bias')
        groups = params.get('groups', 1)
        vec = self._channel_vector(x, 1)
        c_in, c_out = x.shape[1], w.shape[0]
        if groups == 1:
            in_slot = self._slot(w, 1, 'consumer')
            out_slot = self._slot(w, 0, 'producer')
            if in_slot is not None:
                self._tie(in_slot.nodes, vec, 'conv input from a fixed source', name)
                self._consumer(w, 'conv', x, 1, vec)
            out_vec = out_slot.nodes if out_slot is not None else self._fixed_nodes(c_out)
        elif groups == c_in and c_out == c_in:  # depthwise: channel-wise, follows its input
            slot = self._slot(w, 0, 'follower')
            if slot is not None:
                self._tie(slot.nodes, vec, 'depthwise conv input from a fixed source', name)
            out_vec = vec
        elif c_in // groups >= 2 and c_out // groups >= 2 and \
                self._slot(w, 1, 'consumer') is not None:
            out_vec = self._grouped_conv(name, x, w, vec, groups)
        else:
            reason = (f'group conv with groups={groups} (in {c_in}, out {c_out}); only '
                      'groups=1 and depthwise are pruned')
            self._freeze_shadow(vec, reason, name, self.current_module)
            out_slot = self._slot(w, 0, 'producer')
            out_vec = out_slot.nodes if out_slot is not None else self._fixed_nodes(c_out)
            self._freeze_shadow(out_vec, reason, name, self.current_module)
            in_slot = self._slot(w, 1, 'consumer')
            if in_slot is not None:
                self._freeze_shadow(in_slot.nodes, reason, name, self.current_module)
        if b is not None:
            self._tie_bias(b, out_vec, name)
        self._set_channel_out(out, out_vec, 1, name)
        spatial = out.numel() // max(1, out.shape[1])
        kernel = w[0, 0].numel()
        if groups == 1:
            self._add_compute(name, spatial * kernel, [vec, out_vec])
        elif groups == c_in and c_out == c_in:
            self._add_compute(name, spatial * kernel, [out_vec])
        elif id(w) in self._grouped:  # FLOPs ~ kept inputs per group x kept outputs
            self._add_compute(name, spatial * kernel, [self._slot(w, 1, 'consumer').nodes,
                                                        out_vec])
        else:
            self._add_compute(name, spatial * kernel * (c_in // groups) * c_out)

    def _grouped_conv(self, name: str, x: Tensor, w: Tensor, vec: Tensor,
                      groups: int) -> Tensor:
        """Grouped conv (ResNeXt, RegNet): group ``i``'s outputs see only group ``i``'s
        inputs, through the same weight columns. Pruning the same positions in every group
        keeps the groups equal (``groups`` stays), so position ``j`` of every group is one
        element, for the inputs and for the outputs."""
        in_slot, out_slot = self._slot(w, 1, 'consumer'), self._slot(w, 0, 'producer')
        self._tie(in_slot.nodes.repeat(groups), vec, 'group conv input from a fixed source',
                  name)
        rows = out_slot.nodes.view(groups, -1)
        self.uf.union_pairs(rows[1:], rows[:1].expand(groups - 1, -1))
        self._consumer(w, 'conv', x, 1, vec)
        self._grouped.add(id(w))
        return out_slot.nodes

    def _linear(self, args, kwargs, out):
        params = dict(zip(('input', 'weight', 'bias'), args))
        params.update(kwargs)
        x, w, b = params['input'], params['weight'], params.get('bias')
        if self._positions_only(x, -1):
            return self._linear_over_positions(x, w, b, out)
        vec = self._channel_vector(x, -1)
        in_slot = self._slot(w, 1, 'consumer')
        out_slot = self._slot(w, 0, 'producer')
        if in_slot is not None:
            self._tie(in_slot.nodes, vec, 'linear input from a fixed source', 'linear')
            self._consumer(w, 'linear', x, -1, vec)
        out_vec = out_slot.nodes if out_slot is not None else self._fixed_nodes(w.shape[0])
        if b is not None:
            self._tie_bias(b, out_vec, 'linear')
        self._set_channel_out(out, out_vec, -1, 'linear')
        self._add_compute('linear', out.numel() // max(1, out.shape[-1]), [vec, out_vec])

    def _tie_bias(self, b: Tensor, out_vec: Tensor, op: str) -> None:
        """A bias parameter follows the output channels; a bias computed in the forward
        (BEiT's ``cat(q_bias, zeros_like(v_bias), v_bias)``) ties its channels to them, and an
        entry of fixed size freezes its output channel."""
        b_slot = self._slot(b, 0, 'follower')
        if b_slot is not None:
            return self.uf.union_pairs(b_slot.nodes, out_vec)
        shadow = self._shadow(b)
        if shadow.dim() != 1 or shadow.shape[0] != out_vec.numel():
            return None
        both = (shadow >= 0) & (out_vec >= 0)
        self.uf.union_pairs(shadow[both], out_vec[both])
        fixed = (shadow < 0) & (out_vec >= 0)
        if fixed.any():
            self._freeze_shadow(out_vec[fixed], 'output channel with a bias entry of fixed size',
                                op, self.current_module)

    def _linear_over_positions(self, x: Tensor, w: Tensor, b: Optional[Tensor], out: Tensor):
        """A linear over a dim that holds no channels while channels vary along another one
        (MLP-Mixer / RepMLP token mixing on ``(B, C, T)``): every channel is transformed on its
        own by the same weights, so the channels pass through unchanged; the weight's dims
        count token positions, which are not pruned."""
        shadow = compact(self._shadow(x))
        self._set_shadow(out, shadow.narrow(-1, 0, 1).expand(out.shape), 'linear')
        reason = 'linear over token positions (token mixing): its width counts positions'
        for t in (w, b):
            slot = self._slot(t, 0, 'producer' if t is w else 'follower') \
                if t is not None else None
            if slot is not None:
                self._freeze_shadow(slot.nodes, reason, 'linear', self.current_module)
        varying = [d for d in range(x.dim()) if varies_along(shadow, d)]
        flops = out.numel() * w.shape[1]
        if len(varying) == 1:
            vec = self._channel_vector(x, varying[0])
            self._add_compute('linear', flops / max(1, vec.numel()), [vec])
        else:
            self._add_compute('linear', flops)

    def _channelwise_norm(self, name, args, kwargs, out):
        x = args[0] if args else kwargs['input']
        vec = self._channel_vector(x, 1)
        for t in _tensors((args[1:], kwargs)):
            if t.dim() == 1 and t.shape[0] == x.shape[1]:
                slot = self._slot(t, 0, 'follower')
                if slot is not None:
                    self._tie(slot.nodes, vec, f'{name} of fixed channels', name)
        self._set_channel_out(out, vec, 1, name)
        affine = any(t.dim() == 1 and t.shape[0] == x.shape[1] and id(t) in self.param_names
                     and isinstance(t, nn.Parameter) for t in _tensors((args[1:], kwargs)))
        per_channel = x.numel() // max(1, x.shape[1])
        if name == 'batch_norm':  # mmengine: eval-mode batch norm = numel * (2 if affine)
            self._add_compute(name, per_channel * (2 if affine else 1), [vec])
        else:
            self._add_compute(name, per_channel * (5 if affine else 4), [vec])

    def _layer_norm(self, args, kwargs, out):
        params = dict(zip(('input', 'normalized_shape', 'weight', 'bias', 'eps'), args))
        params.update(kwargs)
        x = params['input']
        shape = tuple(params['normalized_shape'])
        vec = self._channel_vector(x, -1)
        if len(shape) != 1:
            self._freeze_shadow(self._shadow(x), f'layer_norm over {len(shape)} dims',
                                'layer_norm', self.current_module)
            return self._set_shadow(out, torch.full((), UNLABELLED, dtype=torch.long),
                                    'layer_norm')
        weight = params.get('weight')
        for t in (weight, params.get('bias')):
            if t is not None:
                slot = self._slot(t, 0, 'follower')
                if slot is not None:
                    self._tie(slot.nodes, vec, 'layer_norm of fixed channels', 'layer_norm')
        if weight is not None and self._is_permuted_norm(weight):
            self._permuted_norm(params, out, vec)
        elif weight is not None and self._own_masked_weight(weight):
            # the module's registered masked forward runs this layer_norm on the kept channels
            self.consumers.append(ConsumerSite(self.current_module, 'masked_forward',
                                               x.dim() - 1, vec))
        elif weight is not None:
            self._consumer(weight, 'layer_norm', x, -1, vec)
        elif (vec >= 0).any():
            self._freeze_shadow(vec, 'layer_norm without affine weight cannot be masked',
                                'layer_norm', self.current_module)
        self._set_channel_out(out, vec, -1, 'layer_norm')
        self._add_compute('layer_norm', (x.numel() // max(1, x.shape[-1])) *
                          (5 if weight is not None else 4), [vec])

    def _own_masked_weight(self, weight: Tensor) -> bool:
        """``weight`` is a parameter of the running module, whose class has a registered masked
        forward (:data:`~mmdms.registry.MASKED_FORWARDS`, e.g. HorNet's channels-last
        LayerNorm calling ``F.layer_norm`` with its own weight)."""
        module = self.modules.get(self.current_module)
        return module is not None and type(module).__name__ in MASKED_FORWARDS and \
            any(p is weight for p in module._parameters.values())

    def _is_permuted_norm(self, weight: Tensor) -> bool:
        """The running module is a LayerNorm subclass with its own forward and ``weight`` is
        its weight: its layer_norm may sit between permutes."""
        module = self.modules.get(self.current_module)
        return isinstance(module, nn.LayerNorm) and module.weight is weight and \
            type(module).forward is not nn.LayerNorm.forward

    def _layout_of(self, t: Tensor) -> Optional[tuple]:
        """``(root, dims, ops)``: ``t`` is ``root.permute(dims)``, reached by ``ops`` layout
        ops from ``root``, the running module's input or a permuted norm's output."""
        entry = self.layouts.get(id(t))
        if entry is not None and entry[0] is t:
            return entry[1:]
        if self.stack and self.stack[-1][1] is t:
            return t, tuple(range(t.dim())), 0
        return None

    def _note_layout(self, func, name, args, kwargs, out):
        """Follow the dim order through permutes inside LayerNorm subclasses (the only
        place :meth:`_permuted_norm` needs it); a meta tensor with sizes 2, 3, ... replays
        the op to read the permutation."""
        src = args[0] if args else None
        if not isinstance(self.modules.get(self.current_module), nn.LayerNorm) or \
                not isinstance(src, Tensor) or not isinstance(out, Tensor):
            return
        entry = self._layout_of(src)
        if entry is None:
            return
        root, dims, ops = entry
        if name != 'contiguous':
            probe = torch.empty(tuple(range(2, src.dim() + 2)), device='meta')
            dims = tuple(dims[size - 2] for size in func(probe, *args[1:], **kwargs).shape)
        self.layouts[id(out)] = (out, root, dims, ops + 1)

    def _permuted_norm(self, params: dict, out: Tensor, vec: Tensor) -> None:
        """A LayerNorm subclass with its own forward (mmpretrain's ``LayerNorm2d``: permute
        to channels-last, ``F.layer_norm``, permute back) is masked like ``nn.LayerNorm``
        when its layer_norm normalises a dim of the module's input with the module's own
        parameters; that the forward does nothing else is checked when the module returns
        (:meth:`_close_permuted_norm`)."""
        if not (vec >= 0).any():
            return
        name = self.current_module
        module = self.modules[name]
        entry = self._layout_of(params['input'])
        same = (params.get('bias') is module.bias and params.get('eps', 1e-5) == module.eps
                and tuple(params['normalized_shape']) == tuple(module.normalized_shape))
        if entry is None or entry[0] is not self.stack[-1][1] or not same or \
                name in self.pending_norms:
            self._freeze_shadow(vec, f'{type(module).__name__} at {name!r} normalises a tensor '
                                'other than a permutation of its input, so its statistics '
                                'cannot be masked', 'layer_norm', name)
            return
        self.layouts[id(out)] = (out, out, tuple(range(out.dim())), 0)
        self.pending_norms[name] = (out, entry[1], entry[2], vec)

    def _close_permuted_norm(self, name: str, module: nn.Module, start: int,
                             outputs: Sequence[Tensor]) -> None:
        """Accept the pending layer_norm of ``name`` if the module returned its result
        permuted back to the input's layout and ran no other op (nor ``__setitem__``, which
        the op counter skips): the mutator then normalises
        the channel dim of the input (``_masked_permuted_layer_norm``). A module seen with
        two layouts (``data_format``) is frozen: the masked forward keeps the traced one."""
        out, dims_in, ops_in, vec = self.pending_norms.pop(name)
        entry = self._layout_of(outputs[0]) if len(outputs) == 1 else None
        exact = entry is not None and entry[0] is out and name not in self.written and \
            self.counter - start == ops_in + 1 + entry[2] and \
            all(dims_in[d] == i for i, d in enumerate(entry[1]))
        dim = dims_in[-1] if dims_in else -1
        if exact and self.norm_dims.setdefault(name, dim) == dim:
            self.consumers.append(ConsumerSite(name, 'layer_norm', dim, vec))
            return
        self._freeze_shadow(vec, f'{type(module).__name__} at {name!r} computes more than a '
                            'permuted layer_norm of its input, or permutes it in several ways, '
                            'so its statistics cannot be masked', 'layer_norm', name)

    def _group_norm(self, args, kwargs, out):
        """Each group is normalised by its own statistics, so whole groups can go: the
        channels of a group become one element (the exporter updates ``num_groups``). One
        group (PoolFormer's "LayerNorm over C, H, W") is a consumer whose statistics the
        mutator restricts to the kept channels, like LayerNorm. Without an affine weight to
        slice, the channels are frozen."""
        x = args[0]
        vec = self._channel_vector(x, 1)
        num_groups = args[1] if len(args) > 1 else kwargs.get('num_groups')
        weight = args[2] if len(args) > 2 else kwargs.get('weight')
        if num_groups > 1 and weight is not None and self._slot(weight, 0, 'follower'):
            rows = vec.view(num_groups, -1)
            first = rows[:, :1].expand_as(rows)
            both = (rows >= 0) & (first >= 0)
            self.uf.union_pairs(rows[both], first[both])
            if ((rows >= 0) != (first >= 0)).any():
                self._freeze_shadow(vec, f'group_norm (num_groups={num_groups}) mixes prunable '
                                    'and fixed channels in a group', 'group_norm',
                                    self.current_module)
        elif num_groups == 1 and weight is not None and self._slot(weight, 0, 'follower'):
            self._consumer(weight, 'group_norm', x, 1, vec)
        else:
            self._freeze_shadow(vec, f'group_norm (num_groups={num_groups}) normalises across '
                                'all channels of a group', 'group_norm', self.current_module)
        for t in _tensors((args[2:], kwargs)):
            slot = self._slot(t, 0, 'follower')
            if slot is not None:
                self.uf.union_pairs(slot.nodes, vec)
        self._set_channel_out(out, vec, 1, 'group_norm')
        self._add_compute('group_norm', (x.numel() // max(1, x.shape[1])) * 5, [vec])

    def _tie(self, nodes: Tensor, vec: Tensor, fixed_reason: str, op: str):
        labelled = vec >= 0
        self.uf.union_pairs(nodes[labelled], vec[labelled])
        if (~labelled).any():
            self.uf.freeze(nodes[~labelled].tolist(), f'{fixed_reason} ({op})')

    def _fixed_nodes(self, count: int) -> Tensor:
        return torch.full((count, ), UNLABELLED, dtype=torch.long)

    def _set_channel_out(self, out: Tensor, vec: Tensor, dim: int, op: str):
        shape = [1] * out.dim()
        shape[dim] = vec.numel()
        self._set_shadow(out, vec.view(shape).expand(out.shape), op)

    # ------------------------------------------------------------------ element-wise rules
    def _unary(self, name, args, out):
        x = args[0]
        if not isinstance(x, Tensor):
            return
        self._set_shadow(out, self._shadow(x), name)
        if name in NONNEGATIVE:
            self.nonnegative.add(id(out))
            self._note_relu(x, out)

    def _operand_shadow(self, t: Tensor, other: Optional[Tensor], out_shape) -> Tensor:
        """Shadow of an operand; a parameter used element-wise gets a follower slot on the
        single dimension along which the other operand's channels vary."""
        if id(t) not in self.param_names or (id(t) in self.shadows):
            return self._shadow(t)
        if id(t) in self.free_param_shadows:
            return self.free_param_shadows[id(t)]
        shadow = torch.full((), UNLABELLED, dtype=torch.long).expand(t.shape)
        if other is not None:
            other_shadow = self._shadow(other).expand(out_shape)
            offset = len(out_shape) - t.dim()
            dims = [d for d in range(t.dim())
                    if t.shape[d] > 1 and varies_along(other_shadow, d + offset)]
            grid = [d for d in range(len(out_shape)) if varies_along(other_shadow, d)]
            if len(dims) == 1 and len(grid) > 1:
                # one parameter row for every head / group (a RoPE table over head dims):
                # tied position-wise at the end, unless the grid is attention heads
                slot = self._slot(t, dims[0], 'follower')
                self.grid_followers.append((slot, compact(other_shadow), dims[0] + offset))
            elif len(dims) == 1:
                slot = self._slot(t, dims[0], 'follower')
                view = [1] * t.dim()
                view[dims[0]] = t.shape[dims[0]]
                shadow = slot.nodes.view(view).expand(t.shape)
            elif len(dims) > 1:
                self._freeze_shadow(other_shadow, f'parameter {self.param_names[id(t)]!r} '
                                    'varies along several channel dims', 'elementwise',
                                    self.current_module)
        self.free_param_shadows[id(t)] = shadow
        return shadow

    def _binary(self, name, args, kwargs, out):
        operands = [a for a in args[:2] if isinstance(a, Tensor)]
        if 'other' in kwargs and isinstance(kwargs['other'], Tensor):
            operands.append(kwargs['other'])
        if len(operands) == 1:
            self._set_shadow(out, self._shadow(operands[0]), name)
            if name in ('mul', '__mul__', '__rmul__', 'div', '__truediv__') and \
                    id(operands[0]) in self.nonnegative:
                self.nonnegative.add(id(out))
            return
        a, b = operands[0], operands[1]
        shape = out.shape
        sa = self._operand_shadow(a, b, shape).expand(shape)
        sb = self._operand_shadow(b, a, shape).expand(shape)
        sa, sb = _drop_shared_broadcast(sa, sb)
        la, lb = sa >= 0, sb >= 0
        both = la & lb
        if both.any():
            self.uf.union_pairs(sa[both], sb[both])
        for labelled_shadow, fixed_t, fixed_mask in ((sa, b, lb), (sb, a, la)):
            # a labelled channel combined with a fixed-size, unlabelled tensor
            lone = (labelled_shadow >= 0) & ~fixed_mask
            if lone.any() and self._fixed_tensor_spans_channels(fixed_t, labelled_shadow):
                self._freeze_shadow(labelled_shadow, 'combined element-wise with a fixed-size '
                                    'tensor', name, self.current_module)
        merged = torch.where(la, sa, sb).expand(shape)
        self._set_shadow(out, merged, name)
        if name in ADDS:
            self._note_add(a, b, out)

    def _fixed_tensor_spans_channels(self, fixed: Tensor, labelled: Tensor) -> bool:
        if id(fixed) in self.param_names:
            return False  # handled by the parameter rule
        offset = labelled.dim() - fixed.dim()
        return any(fixed.shape[d] > 1 and varies_along(labelled, d + offset)
                   for d in range(fixed.dim()))

    # ------------------------------------------------------------------ shape rules
    def _shadow_arg(self, x):
        if isinstance(x, Tensor):
            if id(x) in self.param_names and id(x) not in self.shadows:
                return self._free_param_for_shape(x)
            return self._shadow(x)
        if isinstance(x, (list, tuple)):
            return type(x)(self._shadow_arg(v) for v in x)
        return x

    def _free_param_for_shape(self, p: Tensor) -> Tensor:
        if id(p) in self.free_param_shadows:
            return self.free_param_shadows[id(p)]
        dims = [d for d in range(p.dim()) if p.shape[d] > 1]
        shadow = torch.full((), UNLABELLED, dtype=torch.long).expand(p.shape)
        if len(dims) == 1:
            slot = self._slot(p, dims[0], 'follower')
            view = [1] * p.dim()
            view[dims[0]] = p.shape[dims[0]]
            shadow = slot.nodes.view(view).expand(p.shape)
        self.free_param_shadows[id(p)] = shadow
        return shadow

    def _shape(self, func, name, args, kwargs, out):
        if name in ('expand_as', 'view_as', 'reshape_as'):
            target = args[1].shape
            shadow = self._shadow_arg(args[0])
            new = shadow.expand(target) if name == 'expand_as' else shadow.reshape(target)
            return self._set_shadow(out, new, name)
        shadow_args = [self._shadow_arg(a) for a in args]
        shadow_kwargs = {k: self._shadow_arg(v) for k, v in kwargs.items()}
        if name == 'view':
            shadow_out = shadow_args[0].reshape(*shadow_args[1:], **shadow_kwargs)
        elif name == 'pad':
            shadow_out = self._pad_shadow(shadow_args[0], shadow_args[1], out)
        else:
            shadow_out = func(*shadow_args, **shadow_kwargs)
        src = shadow_args[0]
        src_list = list(src) if isinstance(src, (list, tuple)) else [src]
        if name in ('cat', 'concat', 'concatenate') and len(src_list) > 1:
            aligned = self._align_concatenated(args, kwargs, src_list)
            if aligned is not None:
                shadow_out = aligned.expand(out.shape)
        if name in SPLITS:
            self._check_split(name, args, kwargs, src, shadow_out)
        elif name in ('view', 'reshape', 'unflatten'):
            self._check_reshape(name, src, shadow_out)
        elif name in ('__getitem__', 'select', 'narrow'):
            self._check_selection(name, src, shadow_out, args)
        elif name == 'pad':
            self._check_pad(src, shadow_out, args)
        outs = _tensors(out)
        shadows = shadow_out if isinstance(shadow_out, (list, tuple)) else [shadow_out]
        for t, s in zip(outs, shadows):
            self._set_shadow(t, s, name)
            if len(src_list) == 1 and isinstance(args[0], Tensor) and \
                    id(args[0]) in self.nonnegative:
                self.nonnegative.add(id(t))

    def _align_concatenated(self, args, kwargs, pieces):
        """Concatenating along a token/batch/spatial dim puts the same channels side by side
        (e.g. a class token before patch tokens): unify them."""
        dim = kwargs.get('dim', args[1] if len(args) > 1 else 0)
        if any(varies_along(p, dim) for p in pieces):
            return None
        reduced = [p.narrow(dim, 0, 1) for p in pieces if p.shape[dim] > 0]
        if len({tuple(r.shape) for r in reduced}) != 1:
            return None
        first = reduced[0]
        for other in reduced[1:]:
            both = (first >= 0) & (other >= 0)
            self.uf.union_pairs(first[both], other[both])
        labelled = [r for r in reduced if _labelled(r)]
        if any(not (r >= 0).all() for r in labelled):
            return None  # partly fixed: keep the exact per-piece shadows
        return labelled[0] if labelled else None

    def _split_dim(self, name, args, kwargs) -> int:
        if name == 'unbind':
            return kwargs.get('dim', args[1] if len(args) > 1 else 0)
        return kwargs.get('dim', args[2] if len(args) > 2 else 0)

    def _check_split(self, name, args, kwargs, src, pieces):
        dim = self._split_dim(name, args, kwargs)
        if not varies_along(src, dim):
            return
        sizes = {p.shape[dim] for p in pieces} if name != 'unbind' else {1}
        if len(sizes) > 1 and self._sized_by_adapter(name, args, kwargs):
            # each piece keeps its own channels (and gets its own units, see
            # build_pruning_graph); the adapter updates the sizes
            self.split_pieces.append([torch.unique(p[p >= 0]) for p in map(compact, pieces)])
            return
        if len(sizes) == 1:
            return self._tie_pieces(pieces, name)
        self._freeze_shadow(src, f'{name} into unequal pieces {sorted(sizes)} along a channel '
                            'dim', name, self.current_module)

    def _tie_pieces(self, pieces: Sequence[Tensor], name: str) -> None:
        """Equal pieces of a channel dim (``chunk``, ``split``, the halves of ``x[:, :C // 2]``
        / ``x[:, C // 2:]``) stay equal once pruned only if position ``j`` of every piece goes
        together: unite them. A channel facing a fixed (unlabelled) value cannot go."""
        first = pieces[0]
        for piece in pieces[1:]:
            both = (piece >= 0) & (first >= 0)
            self.uf.union_pairs(piece[both], first[both])
            mixed = (piece >= 0) != (first >= 0)
            if mixed.any():
                self._freeze_shadow(torch.cat([piece[mixed], first[mixed]]), 'equal pieces of a '
                                    'channel dim hold prunable and fixed values at the same '
                                    'position', name, self.current_module)

    def _sized_by_adapter(self, name, args, kwargs) -> bool:
        """``torch.split(x, (a, b, ...))`` with a list of plain ints (module attributes, like
        HorNet gnConv's ``self.dims``) in a module with an export adapter: the adapter sets the
        sizes from the pruned tensors, so the pieces need not shrink alike. Sizes read from
        tensors are checked by the size rules instead."""
        if name not in ('split', 'split_with_sizes'):
            return False
        sizes = args[1] if len(args) > 1 else next(
            (kwargs[k] for k in ('split_size', 'split_size_or_sections', 'split_sizes')
             if k in kwargs), None)
        return isinstance(sizes, (list, tuple)) and \
            all(type(v) is int for v in sizes) and self._has_adapter(self.current_module)

    def _check_reshape(self, name, src, result):
        """A reshape may merge channel dims or split off size-1 dims, but splitting one channel
        dim into several varying dims (e.g. C -> (heads, head_dim)) needs a product structure.

        A split into two dims ``(groups, C / groups)`` keeps it when every group keeps the
        same positions (channel shuffle, see :meth:`_resolve_splits`); other splits are frozen
        (only an adapter could keep them)."""
        varying_in = [d for d in range(src.dim()) if varies_along(src, d)]
        varying_out = [d for d in range(result.dim()) if varies_along(result, d)]
        if len(varying_out) > len(varying_in) and len(varying_out) > 1:
            grid = self._split_grid(result, varying_out) if len(varying_in) == 1 else None
            if grid is not None:
                self.pending_splits.append((name, self.current_module, grid, result.shape))
                return
            self._freeze_shadow(src, self._split_reason(name, result.shape), name,
                                self.current_module)

    @staticmethod
    def _split_reason(name, shape) -> str:
        return (f'{name} splits a channel dim into {tuple(shape)}; register an adapter for '
                'this module to prune it')

    @staticmethod
    def _split_grid(result: Tensor, varying: List[int]) -> Optional[Tensor]:
        """The ``(groups, positions)`` labels of a split into two adjacent dims, if every
        value is labelled; else None."""
        if len(varying) != 2 or varying[1] != varying[0] + 1:
            return None
        moved = compact(result).movedim(varying, (-2, -1))
        grid = moved[(0, ) * (moved.dim() - 2)].expand(result.shape[varying[0]],
                                                       result.shape[varying[1]])
        return grid if bool((grid >= 0).all()) else None

    def _resolve_splits(self) -> None:
        """Unite position ``j`` of every group of each pending split, so that all groups keep
        the same positions and ``(groups, C / groups)`` stays a product once pruned; the size
        arguments are checked by the size rules. Splits into attention heads, or of channels
        frozen anyway, are frozen as before: heads must stay apart."""
        head_roots = set()
        for site in self.heads:
            head_roots.update(self.uf.roots(torch.cat(site.nodes)).tolist())
        for name, module, grid, shape in self.pending_splits:
            roots = set(self.uf.roots(torch.unique(grid)).tolist())
            if roots & head_roots or any(r in self.uf.frozen for r in roots):
                self._freeze_shadow(grid, self._split_reason(name, shape), name, module)
            else:
                self.uf.union_pairs(grid[1:], grid[:1].expand(grid.shape[0] - 1, -1))

    def _resolve_grid_followers(self) -> None:
        """A parameter applied alike to every head of an attention layer indexes positions
        inside a head, which are never pruned (whole heads are): it stays whole. Applied to
        the groups of any other grid, its row ``j`` is tied to position ``j`` of every group,
        as an element-wise operand always is."""
        head_roots = set()
        for site in self.heads:
            head_roots.update(self.uf.roots(torch.cat(site.nodes)).tolist())
        for slot, grid, dim in self.grid_followers:
            labels = grid[grid >= 0]
            if labels.numel() and set(self.uf.roots(torch.unique(labels)).tolist()) & head_roots:
                self.uf.freeze(slot.nodes.tolist(), 'applied alike to every attention head '
                               '(positions inside a head are not pruned)')
                continue
            rows = grid.movedim(dim, -1).reshape(-1, grid.shape[dim])
            nodes = slot.nodes.expand_as(rows)
            both = rows >= 0
            self.uf.union_pairs(rows[both], nodes[both])

    def _check_selection(self, name, src, result, args=()):
        """Indexing may pick tokens or batch entries, but dropping channel positions by a
        hard-coded index would break once channels are pruned. A half of a channel dim cut
        at a size read from the tensor is a piece of ``chunk(2)`` (see :meth:`_half_slice`);
        the rest of its index is checked as usual."""
        if name == '__getitem__':
            half = self._half_slice(src, args[1])
            if half is not None:
                dim, rest = half
                size = src.shape[dim] // 2
                small = compact(src)
                self._tie_pieces([small.narrow(dim, 0, size), small.narrow(dim, size, size)],
                                 name)
                result = src[rest]

        def channel_positions(shadow):
            size = 1
            for d in range(shadow.dim()):
                if varies_along(shadow, d):
                    size *= shadow.shape[d]
            return size if _labelled(shadow) else 0

        if channel_positions(result) < channel_positions(src):
            self._freeze_shadow(src, f'{name} selects a subset of channels by position',
                                name, self.current_module)

    def _half_slice(self, src: Tensor, index) -> Optional[Tuple[int, tuple]]:
        """``(dim, index with that dim kept whole)`` when ``index`` takes ``[:c]`` or ``[c:]``
        of a channel dim of size ``C == 2 * c``, ``c`` read from a tensor (CSPNet, ShuffleNet
        V2: ``c = x.shape[1] // 2``): the two halves, tied position by position, keep equal
        numbers of channels, so the exported model cuts its pruned ``x`` between the same
        channels. The size rules check that ``c`` stays half of the pruned ``C``. A cut at
        another size read from a tensor (odd ``C``) is frozen; constant bounds are left to the
        subset check."""
        items = list(index) if isinstance(index, tuple) else [index]
        for item, dim, _ in basic_index_dims(src, index):
            if not isinstance(item, slice) or item.step not in (None, 1):
                continue
            head = (item.start is None or (type(item.start) is int and item.start == 0)) and \
                isinstance(item.stop, TaggedInt)
            tail = isinstance(item.start, TaggedInt) and item.stop is None
            if not (head or tail) or not varies_along(compact(src), dim):
                continue
            cut = int(item.stop if head else item.start)
            if not 0 < cut < src.shape[dim]:  # keeps every position, or none
                continue
            if 2 * cut != src.shape[dim]:
                self._freeze_shadow(src, f'__getitem__ cuts a channel dim of {src.shape[dim]} '
                                    f'at a size read from a tensor ({cut}); only halves stay '
                                    'exact once pruned', '__getitem__', self.current_module)
                return None
            k = next(k for k, i in enumerate(items) if i is item)
            return dim, tuple(items[:k]) + (slice(None), ) + tuple(items[k + 1:])
        return None

    @staticmethod
    def _pad_shadow(src: Tensor, pad: Sequence[int], out: Tensor) -> Tensor:
        """Spatial padding keeps each channel's label on the new border; padding along a
        dim that carries channels adds unlabelled entries (and is frozen by ``_check_pad``)."""
        padded = [src.dim() - 1 - i for i in range(len(pad) // 2)]
        if not any(varies_along(src, d) for d in padded):
            narrowed = src
            for d in padded:
                narrowed = narrowed.narrow(d, 0, 1)
            return narrowed.expand(out.shape)
        return F.pad(src.contiguous(), tuple(pad), value=UNLABELLED)

    def _check_pad(self, src, result, args):
        if src.dim() >= 2 and result.shape[1] != src.shape[1] and varies_along(src, 1):
            self._freeze_shadow(src, 'pad along the channel dim', 'pad', self.current_module)

    # ------------------------------------------------------------------ other rules
    def _spatial(self, name, args, kwargs, out):
        x = args[0]
        outs = _tensors(out)
        if x.dim() < 2 or not outs or outs[0].shape[1] != x.shape[1]:
            return self._unsupported(name, [x], out)
        vec = self._channel_vector(x, 1)
        if name == 'adaptive_avg_pool2d':  # mmengine: input numel
            self._add_compute(name, x.numel() // max(1, x.shape[1]), [vec])
        elif name in ('interpolate', 'upsample', 'upsample_nearest', 'upsample_bilinear'):
            mode = 'nearest'
            if name == 'interpolate':
                mode = kwargs.get('mode', args[3] if len(args) > 3 else None) or 'nearest'
            elif name == 'upsample_bilinear':
                mode = 'bilinear'
            if mode in ('nearest', 'bilinear') and outs[0].dim() == 4:
                scale = 4 if mode == 'bilinear' else 1
                self._add_compute(name, scale * outs[0].numel() // outs[0].shape[1], [vec])
        for t in outs:
            if t.dtype.is_floating_point:
                self._set_channel_out(t, vec, 1, name)
                if id(x) in self.nonnegative:
                    self.nonnegative.add(id(t))
            else:  # pooling indices
                self._set_shadow(t, torch.full((), UNLABELLED, dtype=torch.long), name)

    def _reduce_dims(self, args, kwargs, ndim) -> Optional[List[int]]:
        dim = kwargs.get('dim', args[1] if len(args) > 1 else None)
        if dim is None:
            return None
        dims = [dim] if isinstance(dim, int) else list(dim)
        return [d % ndim for d in dims]

    def _reduction(self, name, args, kwargs, out):
        x = args[0]
        shadow = self._shadow(x)
        dims = self._reduce_dims(args, kwargs, x.dim())
        keepdim = kwargs.get('keepdim', args[2] if len(args) > 2 and isinstance(args[2], bool)
                             else False)
        outs = _tensors(out)
        if dims is None or any(varies_along(shadow, d) for d in dims):
            if _labelled(shadow) and not self._masked_reduction(x, dims):
                self._freeze_shadow(shadow, f'{name} reduces over a channel dim', name,
                                    self.current_module)
            for t in outs:
                self._set_shadow(t, torch.full((), UNLABELLED, dtype=torch.long), name)
            return
        index = [slice(None)] * x.dim()
        for d in dims:
            index[d] = slice(0, 1) if keepdim else 0
        reduced = shadow[tuple(index)]
        for t in outs:
            self._set_shadow(t, reduced if t.dtype.is_floating_point else
                             torch.full((), UNLABELLED, dtype=torch.long), name)

    def _masked_reduction(self, x: Tensor, dims: Optional[List[int]]) -> bool:
        """A reduction over one channel dim inside a module whose class has a registered
        masked forward (:data:`~mmdms.registry.MASKED_FORWARDS`, e.g. GRN's mean over
        channels) is recomputed over the kept channels by that forward: the module becomes
        a consumer of those channels instead of freezing them."""
        name = self.current_module
        module = self.modules.get(name)
        if module is None or dims is None or type(module).__name__ not in MASKED_FORWARDS:
            return False
        varying = [d for d in dims if varies_along(self._shadow(x), d)]
        if len(varying) != 1:
            return False
        vec = self._channel_vector(x, varying[0])
        self.consumers.append(ConsumerSite(name, 'masked_forward', varying[0], vec))
        return True

    def _softmax(self, name, args, kwargs, out):
        x = args[0]
        dim = kwargs.get('dim', args[1] if len(args) > 1 else -1)
        shadow = self._shadow(x)
        if dim is not None and varies_along(shadow, dim):
            self._freeze_shadow(shadow, f'{name} over a channel dim', name, self.current_module)
            return self._set_shadow(out, torch.full((), UNLABELLED, dtype=torch.long), name)
        self._set_shadow(out, shadow, name)

    def _attention(self, args, kwargs, out):
        """Heads of ``scaled_dot_product_attention(q, k, v)`` on ``(B, heads, N, d)``.

        Whole heads can go (a head unit); the dims inside a head stay, because the softmax
        scale depends on them. The output keeps v's channels, head by head.
        """
        names = ('query', 'key', 'value')
        q, k, v = (args[i] if len(args) > i else kwargs[names[i]] for i in range(3))
        shadows = [self._shadow(t) for t in (q, k, v)]
        inputs = [q, k, v] + _tensors((args[3:], kwargs))
        if q.dim() != 4 or not all(_labelled(s) for s in shadows):
            return self._unsupported('scaled_dot_product_attention', inputs, out)
        reason = 'channels inside an attention head (the softmax scale depends on them)'
        for shadow in shadows:
            self._freeze_shadow(shadow, reason, 'scaled_dot_product_attention',
                                self.current_module)
        heads = []
        for h in range(q.shape[1]):
            per_head = torch.cat([s[:, h].reshape(-1) for s in shadows])
            heads.append(torch.unique(per_head[per_head >= 0]))
        roots = [set(self.uf.roots(n).tolist()) for n in heads]
        disjoint = all(roots[i].isdisjoint(roots[j]) for i in range(len(roots))
                       for j in range(i + 1, len(roots)))
        per_head = q.shape[0] * q.shape[2] * k.shape[2] * (q.shape[3] + v.shape[3])
        if len(heads) > 1 and disjoint and all(n.numel() for n in heads):
            self.heads.append(HeadSite(self.current_module, heads))
            self._add_compute('scaled_dot_product_attention', per_head, head_factor=heads)
        else:
            self._add_compute('scaled_dot_product_attention', per_head * q.shape[1])
        # the output has q's tokens and v's channels (k/v may be subsampled, as in Twins)
        v_tokens = shadows[2]
        if not varies_along(v_tokens, -2):
            v_tokens = v_tokens.narrow(-2, 0, 1)
        same = v_tokens.shape[-1] == out.shape[-1] and v_tokens.shape[-2] in (1, out.shape[-2])
        self._set_shadow(out, v_tokens.expand(out.shape) if same else
                         torch.full((), UNLABELLED, dtype=torch.long),
                         'scaled_dot_product_attention')

    # ------------------------------------------------------------------ matmul attention
    def _matmul(self, name: str, a: Tensor, b: Tensor, out: Tensor):
        """``a @ b``, counted like mmengine (``numel(a) * b.shape[-1]``).

        Attention written with matmuls (``q @ k^T``, softmax, ``attn @ v``; BEiT, EVA, Swin)
        gets the same head units as ``scaled_dot_product_attention``: see
        :meth:`_attention_scores` and :meth:`_attention_context`. Any other product of
        labelled tensors freezes its inputs."""
        coef = a.numel() * b.shape[-1]
        sa, sb = self._shadow(a), self._shadow(b)
        if not (_labelled(sa) or _labelled(sb)):
            self._add_compute(name, coef)
            return self._set_shadow(out, torch.full((), UNLABELLED, dtype=torch.long), name)
        if self._attention_scores(name, a, b, out, coef) or \
                self._attention_context(name, a, b, out, coef):
            return None
        self._add_compute(name, coef)
        return self._unsupported(name, [a, b], out)

    @staticmethod
    def _head_dim(a: Tensor, b: Tensor, sa: Tensor, sb: Tensor, a_inner: int,
                  b_inner: int) -> Optional[int]:
        """The one batch dim of a batched matmul along which both operands' channels vary
        (the heads), when ``a`` varies only there and at ``a_inner`` and ``b`` only there and
        at ``b_inner``; else None."""
        if a.dim() != b.dim() or a.dim() < 3 or a.shape[:-2] != b.shape[:-2]:
            return None
        n = a.dim()
        va = {d for d in range(n) if varies_along(sa, d)}
        vb = {d for d in range(n) if varies_along(sb, d)}
        batch_a, batch_b = va - {a_inner % n}, vb - {b_inner % n}
        if len(batch_a) != 1 or batch_a != batch_b or max(batch_a) >= n - 2:
            return None
        if (va - batch_a) - {a_inner % n} or (vb - batch_b) - {b_inner % n}:
            return None
        return batch_a.pop()

    @staticmethod
    def _per_head_nodes(shadow: Tensor, dim: int) -> Optional[List[Tensor]]:
        """Node ids at each index of ``dim``, or None when some value is unlabelled."""
        small = compact(shadow)
        if bool((small < 0).any()):
            return None
        if small.shape[dim] == 1:
            return None
        return [torch.unique(small.select(dim, h)) for h in range(small.shape[dim])]

    def _attention_scores(self, name, q: Tensor, k_t: Tensor, out: Tensor, coef: float) -> bool:
        """``q @ k^T`` over ``(..., heads, N, d) x (..., heads, d, M)``: the per-head dims are
        contracted, so the scores hold one new *score node* per head. The heads become a head
        site at :meth:`_attention_context` if those nodes reach ``attn @ v`` untouched by
        anything that spans heads (e.g. a relative position bias of fixed size freezes them).
        """
        sq, sk = self._shadow(q), self._shadow(k_t)
        dim = self._head_dim(q, k_t, sq, sk, -1, -2)
        if dim is None or not (varies_along(sq, -1) and varies_along(sk, -2)):
            return False
        q_heads, k_heads = self._per_head_nodes(sq, dim), self._per_head_nodes(sk, dim)
        if q_heads is None or k_heads is None:
            return False
        reason = 'channels inside an attention head (the softmax scale depends on them)'
        for shadow in (sq, sk):
            self._freeze_shadow(shadow, reason, name, self.current_module)
        score_nodes = self.uf.new_nodes(len(q_heads))
        for h, node in enumerate(score_nodes.tolist()):
            self.score_heads[node] = (h, torch.cat([q_heads[h], k_heads[h]]))
        heads = [torch.cat([q_heads[h], k_heads[h], score_nodes[h:h + 1]])
                 for h in range(len(q_heads))]
        self._add_compute(name, coef / len(heads), head_factor=heads)
        shape = [1] * out.dim()
        shape[dim] = len(heads)
        self._set_shadow(out, score_nodes.view(shape).expand(out.shape), name)
        return True

    def _attention_context(self, name, attn: Tensor, v: Tensor, out: Tensor,
                           coef: float) -> bool:
        """``attn @ v`` with ``attn`` holding the score nodes of :meth:`_attention_scores`:
        a head site over q/k/v (and score) nodes, as for ``scaled_dot_product_attention``;
        the output keeps v's channels, head by head."""
        sa, sv = self._shadow(attn), self._shadow(v)
        dim = self._head_dim(attn, v, sa, sv, -1, -1)
        if dim is None or varies_along(sa, -1) or not varies_along(sv, -1):
            return False
        score_heads = self._per_head_nodes(sa, dim)
        v_heads = self._per_head_nodes(sv, dim)
        if score_heads is None or v_heads is None:
            return False
        heads = []
        for h, nodes in enumerate(score_heads):
            entry = self.score_heads.get(int(nodes[0])) if nodes.numel() == 1 else None
            if entry is None or entry[0] != h:
                return False  # not scores of q @ k^T
            heads.append(torch.cat([entry[1], nodes, v_heads[h]]))
        roots = [set(self.uf.roots(n).tolist()) for n in heads]
        spanned = any(int(self.uf.find(int(n[0]))) in self.uf.frozen for n in score_heads)
        if spanned or any(roots[i] & roots[j] for i in range(len(roots))
                          for j in range(i + 1, len(roots))):
            why = ('combined with a tensor of fixed size along the heads (e.g. a relative '
                   'position bias table)' if spanned else 'tied across heads')
            self._add_compute(name, coef)
            for shadow in (sa, sv):
                self._freeze_shadow(shadow, f'attention heads whose scores are {why}: the heads '
                                    'stay', name, self.current_module)
            self._set_shadow(out, torch.full((), UNLABELLED, dtype=torch.long), name)
            return True
        reason = 'channels inside an attention head (the softmax scale depends on them)'
        self._freeze_shadow(sv, reason, name, self.current_module)
        self._freeze_shadow(sa, reason, name, self.current_module)
        self.heads.append(HeadSite(self.current_module, heads))
        self._add_compute(name, coef / len(heads), head_factor=heads)
        # v's channels vary along heads and dim -1 only (see _head_dim): one token row is all
        self._set_shadow(out, compact(sv).narrow(-2, 0, 1).expand(out.shape), name)
        return True

    # ------------------------------------------------------------------ buffers and extensions
    def _setitem(self, name, args, kwargs, out):
        """``target[index] = value`` writes ``value``'s channels into ``target``: where both
        hold channels they are the same channels; channels written where the target holds
        none (a buffer of fixed size) cannot be pruned."""
        target, index, value = args[0], args[1], args[2]
        module = self.current_module
        self.written.update(n for n, _, _ in self.stack)  # see _close_permuted_norm
        ts = self._shadow(target)
        region = ts[index]
        vs = self._shadow_arg(value) if isinstance(value, Tensor) else None
        if vs is not None and (_labelled(region) or _labelled(vs)):
            vs = vs.expand(region.shape)
            both = (region >= 0) & (vs >= 0)
            self.uf.union_pairs(region[both], vs[both])
            if ((vs >= 0) & (region < 0)).any():
                self._freeze_shadow(vs, 'written by __setitem__ where the target holds no '
                                    'channels (a buffer of fixed size)', name, module)
            elif not _labelled(vs) and self._fixed_tensor_spans_channels(value, region):
                self._freeze_shadow(region, 'overwritten by __setitem__ with a fixed-size '
                                    'tensor', name, module)
            new = ts.clone(memory_format=torch.contiguous_format)
            new[index] = torch.where(region >= 0, region, vs)
            self._set_shadow(target, new, name)
        elif vs is not None:
            self.fresh.discard(id(target))  # visible data written into a buffer
        sized = [(v, region, d) for v, _, d in self._indexed_dims(target, index, None)
                 if d < region.dim()]
        self._check_size_uses(name, (index, ), {}, None, sized=sized)

    def _check_invisible_outputs(self, name: str, module: nn.Module, args, outputs) -> None:
        """An output that no traced op computed (never seen, or still an untouched factory
        buffer) was written by code the tracer cannot see: typically a C++/CUDA extension
        (mmcv ops are ``autograd.Function``s). A known channel-wise extension
        (:data:`CHANNELWISE_EXTENSIONS`, e.g. RoIAlign) passes its input's channels on; for
        any other, the input channels are frozen."""
        inputs = [t for t in _tensors(args) if _labelled(self._shadow(t))]
        if not inputs:
            return
        input_ids = {id(t) for t in _tensors(args)}
        hidden = []
        for t in outputs:
            entry = self.shadows.get(id(t))
            seen = entry is not None and entry[0] is t and id(t) not in self.fresh
            if t.is_floating_point() and id(t) not in input_ids and not seen:
                hidden.append(t)
        if not hidden:
            return
        cls = type(module).__name__
        x = inputs[0]
        if cls in CHANNELWISE_EXTENSIONS and all(
                x.dim() >= 2 and t.dim() >= 2 and t.shape[1] == x.shape[1] for t in hidden):
            vec = self._channel_vector(x, 1)
            for t in hidden:
                self._set_channel_out(t, vec, 1, cls)
            return
        for t in inputs:
            self._freeze_shadow(self._shadow(t), f'{cls} computes its output outside torch '
                                'functions (a C++/CUDA extension the tracer cannot see into)',
                                cls, name)
        for t in hidden:
            self._set_shadow(t, torch.full((), UNLABELLED, dtype=torch.long), cls)

    # ------------------------------------------------------------------ residual blocks
    def _note_relu(self, x: Tensor, out: Tensor):
        for chains in self.pending_blocks.values():
            for chain in chains:
                if chain['tip'] is x and self.last_write.get(id(x), (None, ))[0] in (
                        chain['counter'], self.counter):
                    chain['tip'] = out
                    chain['counter'] = self.counter
                    chain['relu'] = True

    def _note_add(self, a: Tensor, b: Tensor, out: Tensor):
        """Track residual chains ``x -> x + f1(x) -> ... `` inside each running module."""
        for name, x, start in reversed(self.stack):
            chains = self.pending_blocks.setdefault(name, [])
            for stream, branch in ((a, b), (b, a)):
                chain = next((c for c in chains if c['tip'] is stream and not c['relu']), None)
                if chain is None and x is not None and stream is x and \
                        self.last_write.get(id(x), (-1, ))[0] <= start:
                    chain = dict(shortcut=x, branches=[], relu=False)
                    chains.append(chain)
                if chain is None:
                    continue
                chain['branches'].append((self.output_of.get(id(branch)),
                                          self.uses.get(id(branch), 0)))
                chain.update(tip=out, counter=self.counter)
                return

    def _close_blocks(self, name: str, outputs: Sequence[Tensor]):
        chains = self.pending_blocks.pop(name, [])
        if len(outputs) != 1 or not chains:
            return
        output = outputs[0]
        for chain in chains:
            if chain['tip'] is not output:
                continue
            if self.last_write.get(id(output), (None, ))[0] != chain['counter']:
                continue
            if chain['relu'] and id(chain['shortcut']) not in self.nonnegative:
                continue  # relu(x + 0) == x only for x >= 0
            branches = [module for module, _ in chain['branches']]
            valid = all(
                module and module.startswith(name + '.') and self.calls.get(module, 0) == 1
                and uses <= 1 for module, uses in chain['branches'])
            if valid and len(set(branches)) == len(branches):
                parent = name.rsplit('.', 1)[0] if '.' in name else ''
                self.blocks.append(ResidualBlock(name, branches, parent))
                return


def trace_channels(model: nn.Module,
                   forward: Callable[[], Any],
                   leaf_adapters: Optional[Dict[str, Any]] = None) -> TraceResult:
    """Run ``forward()`` (a closure calling ``model``) once and return its channel trace."""
    was_training = model.training
    model.eval()
    try:
        return ChannelTracer(model, leaf_adapters).trace(forward)
    finally:
        model.train(was_training)
