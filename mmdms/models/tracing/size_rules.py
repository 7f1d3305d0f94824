"""Tracer rules for sizes read from tensors and for the int arguments of shape ops.

The exported model runs the same Python code on pruned tensors, so every int that sizes a
channel dim must still be right once the channels are pruned:

* a size read from a tensor (``C = x.shape[-1]``, a :class:`~.sizes.TaggedInt`) follows the
  pruning of the dim it was read from: fine where it sizes a dim that keeps the same number
  of positions (``x.view(B, C, H * W)``, ``C // g`` for the inner dim of a per-position
  group split), wrong anywhere else (``qkv.reshape(B, N, 3, h, C // h)`` with ``qkv`` of
  another width, ``q * C ** -0.5``);
* a plain int (a literal, or an attribute like ``self.mid_channels``) never follows: it may
  size a channel dim only when the module has an export adapter that updates it, or when the
  dim never shrinks (the ``groups`` dim of a channel shuffle).

Checks are recorded during the trace (:class:`SizeCheck`) and resolved once the whole graph
is known, because later ops can still tie the channels involved.
"""
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .sizes import SizeTag, TaggedInt, is_tagged, iter_tagged, size_list

UNLABELLED = -1
FIXED = 'fixed'  # key of a position that never goes (holds a frozen or unlabelled value)

# ops that allocate a tensor of a given size: its channel dims are as wide as the sizes say
FACTORIES = {'new_zeros', 'new_ones', 'new_empty', 'new_full', 'zeros', 'ones', 'empty', 'full'}
# ops whose plain int arguments sizing a channel dim are checked (see SizeCheck 'constant')
RESHAPES = {'view', 'reshape', 'expand', 'unflatten', 'split', 'split_with_sizes'}


@dataclass
class SizeCheck:
    """An int argument that sizes a dim, checked once the whole graph is known.

    ``kind``: ``'link'`` (a size read from a tensor, ``tag``, sizes the dim ``target``),
    ``'use'`` (a size read from a tensor is used as any other argument) or ``'constant'``
    (the plain int ``value`` sizes the channel dim ``target``).
    """
    kind: str
    op: str
    module: str
    target: Optional[Tuple[Tensor, int]] = None  # (shadow, dim) of the sized dim
    tag: Optional[SizeTag] = None
    value: int = 0
    owner: str = ''  # class of the module running the op, for the adapter hint


def compact(shadow: Tensor) -> Tensor:
    """The shadow with broadcast (zero-stride) dims narrowed to size 1: same labels, and
    cheap to inspect."""
    for d in range(shadow.dim()):
        if shadow.shape[d] > 1 and shadow.stride(d) == 0:
            shadow = shadow.narrow(d, 0, 1)
    return shadow


def varies_along(shadow: Tensor, dim: int) -> bool:
    """Labels differ along ``dim``: it holds channels."""
    if shadow.dim() == 0 or shadow.shape[dim] <= 1 or shadow.stride(dim) == 0:
        return False
    return bool((shadow != shadow.narrow(dim, 0, 1)).any())


def basic_index_dims(src: Tensor, index) -> List[Tuple[Any, int, int]]:
    """``(item, source dim, output dim)`` for each int or slice of a basic index (ints,
    slices, None, Ellipsis); empty for any other index (tensors, bools)."""
    items = list(index) if isinstance(index, tuple) else [index]
    if any(not (i is None or i is Ellipsis or isinstance(i, (int, slice)))
           or isinstance(i, bool) for i in items):
        return []
    explicit = sum(1 for i in items if i is not None and i is not Ellipsis)
    result, src_dim, out_dim = [], 0, 0
    for i in items:
        if i is Ellipsis:
            src_dim += src.dim() - explicit
            out_dim += src.dim() - explicit
        elif i is None:
            out_dim += 1
        else:
            result.append((i, src_dim, out_dim))
            src_dim += 1
            out_dim += isinstance(i, slice)
    return result


def dim_sequence(shadow: Tensor, dim: int) -> Tensor:
    """Labels along ``dim`` (at index 0 of every other dim), one per position."""
    moved = compact(shadow).movedim(dim, -1)
    seq = moved[(0, ) * (moved.dim() - 1)]
    return seq.expand(shadow.shape[dim]).clone()


class SizeRulesMixin:
    """Size rules of :class:`~.channel_tracer.ChannelTracer` (which provides ``uf``,
    ``stack``, ``modules``, ``heads``, shadows and freezing)."""

    def _init_size_rules(self) -> None:
        self.size_checks: List[SizeCheck] = []
        self.size_tags: Dict[int, Tuple[Tensor, set]] = {}  # tensor id -> (shadow, dims)
        self._adapter_cache: Dict[str, bool] = {}
        self._heads_of_root: Dict[int, tuple] = {}  # set when the checks are resolved

    # ------------------------------------------------------------------ reading sizes
    def _channel_dims(self, t: Tensor) -> Tuple[Optional[Tensor], set]:
        """``t``'s shadow and the dims along which its channels vary (cached per shadow:
        shape reads are frequent)."""
        entry = self.shadows.get(id(t))
        if entry is not None and entry[0] is t:
            shadow = entry[1]
        elif id(t) in self.free_param_shadows:
            shadow = self.free_param_shadows[id(t)]
        else:
            return None, set()
        cached = self.size_tags.get(id(t))
        if cached is None or cached[0] is not shadow:
            small = compact(shadow)
            cached = (shadow, {d for d in range(t.dim()) if varies_along(small, d)})
            self.size_tags[id(t)] = cached
        return cached

    def _tagged_sizes(self, args, kwargs, out):
        """``x.shape``, ``x.size()``, ``x.size(d)``: sizes of channel dims become
        :class:`TaggedInt` so that their uses can be checked."""
        t = args[0] if args else None
        if not isinstance(t, Tensor):
            return out
        shadow, dims = self._channel_dims(t)
        if not dims:
            return out
        origin = f'x.shape/size() read in {self.current_module or "<top level>"!r}'

        def tag(d, v):
            return TaggedInt(v, SizeTag(((shadow, d), ), 1, origin)) if d in dims else v

        if isinstance(out, int):
            d = kwargs.get('dim', args[1] if len(args) > 1 else None)
            return out if d is None else tag(d % t.dim(), out)
        return torch.Size([tag(d, v) for d, v in enumerate(out)])

    # ------------------------------------------------------------------ using sizes
    def _sized_dims(self, name, args, kwargs, out) -> List[Tuple[Any, Tensor, int]]:
        """``(int argument, output tensor, output dim)`` for each argument of ``name`` that
        becomes the size of an output dim."""
        if name in ('view', 'reshape', 'expand'):
            sizes = size_list(args[1:]) if len(args) > 1 else \
                size_list((kwargs.get('shape', kwargs.get('size', ())), ))
            return [(v, out, d) for d, v in enumerate(sizes)]
        if name == 'unflatten':
            dim = (args[1] if len(args) > 1 else kwargs['dim']) % args[0].dim()
            sizes = args[2] if len(args) > 2 else kwargs['sizes']
            return [(v, out, dim + i) for i, v in enumerate(sizes)]
        if name in ('split', 'split_with_sizes'):
            sizes = args[1] if len(args) > 1 else next(
                kwargs[k] for k in ('split_size', 'split_size_or_sections', 'split_sizes')
                if k in kwargs)
            dim = kwargs.get('dim', args[2] if len(args) > 2 else 0) % args[0].dim()
            pieces = [p for p in (out if isinstance(out, (list, tuple)) else [out])]
            if isinstance(sizes, (list, tuple)):
                return [(v, p, dim) for v, p in zip(sizes, pieces)]
            return [(sizes, p, dim) for p in pieces]
        if name == 'narrow':
            return [(args[3], out, args[1] % args[0].dim())] if len(args) > 3 else []
        if name in FACTORIES:
            first = 1 if name.startswith('new_') else 0
            if name in ('full', 'new_full'):
                sizes = list(args[first]) if len(args) > first else list(kwargs['size'])
            else:
                sizes = size_list(args[first:]) if len(args) > first else \
                    list(kwargs.get('size', ()))
            return [(v, out, d) for d, v in enumerate(sizes)]
        if name == 'layer_norm':
            shape = list(args[1] if len(args) > 1 else kwargs['normalized_shape'])
            return [(v, out, out.dim() - len(shape) + i) for i, v in enumerate(shape)]
        if name == '__getitem__':
            return self._indexed_dims(args[0], args[1], out)
        return []

    def _indexed_dims(self, src, index, out) -> List[Tuple[Any, Any, int]]:
        """``x[..., :n]``: a slice keeping the first ``n`` positions sizes its output dim by
        ``n``; ``x[..., n:]`` with ``n`` read from a tensor sizes it by ``C - n``, ``C`` the
        size of that dim of ``x`` (tagged as read from ``x``, so ``n = C // 2`` gives ``C / 2``).
        Only basic indexing (ints, slices, None, Ellipsis) is mapped."""
        result = []
        for i, src_dim, out_dim in basic_index_dims(src, index):
            if not isinstance(i, slice) or i.step not in (None, 1):
                continue
            starts_at_zero = i.start is None or (isinstance(i.start, int) and i.start == 0)
            if starts_at_zero and i.stop is not None:
                result.append((i.stop, out, out_dim))
            elif isinstance(i.start, TaggedInt) and i.stop is None:
                shadow, dims = self._channel_dims(src)
                size = src.shape[src_dim]
                if src_dim in dims:
                    size = TaggedInt(size, SizeTag(((shadow, src_dim), ), 1, i.start.tag.origin))
                rest = size - i.start
                if is_tagged(rest):
                    rest.covers = (i.start, )  # checking ``rest`` checks the start
                result.append((rest, out, out_dim))
        return result

    def _check_size_uses(self, name, args, kwargs, out, sized=None) -> None:
        """Record, for :meth:`_resolve_size_checks`, how this call's ints size dims.

        ``sized``: ``(value, shadow, dim)`` triples, when the caller mapped them itself.
        """
        tagged = list(iter_tagged((args, kwargs)))
        constant_checked = name in RESHAPES
        if not tagged and not constant_checked:
            return
        if sized is None:
            sized = [(v, self._shadow(t), d)
                     for v, t, d in self._sized_dims(name, args, kwargs, out)
                     if isinstance(t, Tensor) and d < t.dim()]
        module = self.current_module
        owner = type(self.modules[module]).__name__ if module in self.modules else ''
        placed = set()
        for value, shadow, dim in sized:
            if is_tagged(value):
                placed.add(id(value))
                placed.update(id(v) for v in getattr(value, 'covers', ()))
                kind = 'link' if isinstance(value, int) else 'use'
                self.size_checks.append(SizeCheck(kind, name, module, (shadow, dim), value.tag,
                                                  int(value), owner))
            elif constant_checked and isinstance(value, int) and not isinstance(value, bool) \
                    and value != -1 and varies_along(compact(shadow), dim) \
                    and not self._has_adapter(module):
                self.size_checks.append(SizeCheck('constant', name, module, (shadow, dim),
                                                  value=value, owner=owner))
        for value in tagged:
            if id(value) not in placed:
                self.size_checks.append(SizeCheck('use', name, module, tag=value.tag,
                                                  owner=owner))

    def _has_adapter(self, module: str) -> bool:
        """The module whose forward runs the op has a registered export adapter: it is
        trusted to update the attributes that forward uses as sizes (C2f's
        ``mid_channels``)."""
        from mmdms.registry import PRUNING_ADAPTERS
        if module not in self.modules:
            return False
        cls = type(self.modules[module]).__name__
        if cls not in self._adapter_cache:
            self._adapter_cache[cls] = PRUNING_ADAPTERS.get(cls) is not None
        return self._adapter_cache[cls]

    def _factory(self, name, args, kwargs, out):
        """A new buffer (``x.new_zeros(B, C, H, W)``, ``torch.zeros``): a dim sized by a
        channel count read from a tensor holds those channels; other dims hold none. The
        buffer stays *fresh* until a traced op writes into it."""
        shadow = torch.full((), UNLABELLED, dtype=torch.long).expand(out.shape)
        for value, _, dim in self._sized_dims(name, args, kwargs, out):
            if isinstance(value, TaggedInt) and value.tag.scale == 1 and \
                    len(value.tag.sources) == 1:
                view = [1] * out.dim()
                view[dim] = out.shape[dim]
                shadow = dim_sequence(*value.tag.sources[0]).view(view).expand(out.shape)
                break
        self._set_shadow(out, shadow, name)
        self.fresh.add(id(out))
        self._check_size_uses(name, args, kwargs, out)

    # ------------------------------------------------------------------ resolving
    def _head_elements(self) -> Dict[int, tuple]:
        """``root -> ('head', site, h)`` for the channels of attention heads: frozen as
        channels, they still go when their head goes."""
        elements = {}
        for s, site in enumerate(self.heads):
            for h, nodes in enumerate(site.nodes):
                for root in self.uf.roots(nodes).tolist():
                    elements[root] = ('head', s, h)
        return elements

    def _position_key(self, labels: Tensor):
        """FIXED when a position holds a frozen or unlabelled value (it never goes), else
        the set of prunable elements (union-find roots, or whole heads) it holds: it goes
        when all of them go."""
        if bool((labels < 0).any()):
            return FIXED
        key = set()
        for node in torch.unique(labels).tolist():
            root = self.uf.find(node)
            element = self._heads_of_root.get(root)
            if element is None and root in self.uf.frozen:
                return FIXED
            key.add(element or root)
        return frozenset(key)

    def _label_key(self, label: int):
        """:meth:`_position_key` of a position holding one label, without tensor ops (the
        size checks of a ShuffleNet ask for some 16k of them)."""
        if label < 0:
            return FIXED
        root = self.uf.find(label)
        element = self._heads_of_root.get(root)
        if element is None and root in self.uf.frozen:
            return FIXED
        return frozenset((element or root, ))

    def _position_keys(self, shadow: Tensor, dim: int) -> Counter:
        """How many positions of ``dim`` have each key (see :meth:`_position_key`): two dims
        keep equally many positions under any pruning when their counts agree."""
        small = compact(shadow)
        size = shadow.shape[dim]
        if small.shape[dim] == 1:
            return Counter({self._position_key(small): size})
        rows = small.movedim(dim, 0).reshape(small.shape[dim], -1)
        if bool((rows == rows[:, :1]).all()):  # one label per position: the usual case
            keys: Counter = Counter()
            for label, count in zip(*[v.tolist() for v in
                                      torch.unique(rows[:, 0], return_counts=True)]):
                keys[self._label_key(label)] += count
            return keys
        return Counter(self._position_key(row) for row in rows)

    def _size_check_holds(self, check: SizeCheck) -> bool:
        """Would the exported model still compute the right size?"""
        if check.kind == 'link':
            tag = check.tag
            if tag.scale is None or len(tag.sources) != 1:
                return False
            source = self._position_keys(*tag.sources[0])
            target = self._position_keys(*check.target)
            keys = set(source) | set(target)
            # every key (what goes together) a multiple of the period: so is any pruned size
            return all(source[k] * tag.scale == target[k] for k in keys) and \
                all(source[k] % tag.period == 0 for k in source)
        if check.kind == 'constant':  # fine only if the dim never shrinks ...
            keys = set(self._position_keys(*check.target)) - {FIXED}
            if not keys or (len(keys) == 1 and len(next(iter(keys))) > 1):
                return True
            return self._sizes_heads(check, keys)  # ... or follows num_heads
        return False

    def _sizes_heads(self, check: SizeCheck, keys: set) -> bool:
        """The dim holds one head per position, of a head unit in the module running the
        op, and is sized by its ``num_heads``: the exporter updates that attribute."""
        heads = {next(iter(k)) for k in keys if len(k) == 1}
        if len(heads) != len(keys) or any(not isinstance(e, tuple) for e in heads):
            return False
        sites = {e[1] for e in heads}
        if len(sites) != 1:
            return False
        site = self.heads[sites.pop()]
        return site.module == check.module and check.value == site.num_heads == len(heads)

    def _size_check_reason(self, check: SizeCheck) -> str:
        read = f'a size read from a tensor ({check.tag.origin})' if check.tag else ''
        if check.kind == 'link' and check.tag.scale is not None:
            return (f'{check.op} sizes a dim by {read}, but the two dims would keep different '
                    'numbers of channels once pruned')
        if check.kind == 'link':
            return (f'{check.op} uses a size computed from {read}; the exported model would '
                    'recompute it from the pruned width')
        if check.kind == 'use':
            return (f'{check.op} takes {read} as an argument; the exported model would pass '
                    'the pruned width')
        return (f'{check.op} gives a channel dim the constant size {check.value} (e.g. a '
                'module attribute), which the exported model would keep; register an adapter '
                f'for {check.owner or "this module"} to update it')

    def _resolve_size_checks(self) -> None:
        """Freeze the channels whose pruning the recorded size arguments would not follow,
        and drop the head units whose dims such a size fixes."""
        fixed_roots: set = set()
        self._heads_of_root = self._head_elements()
        for check in self.size_checks:
            if self._size_check_holds(check):
                continue
            reason = self._size_check_reason(check)
            shadows = [s for s, _ in (check.tag.sources if check.tag else ())]
            if check.target is not None:
                shadows.append(check.target[0])
                labels = compact(check.target[0])
                fixed_roots.update(self.uf.roots(torch.unique(labels[labels >= 0])).tolist())
            for shadow in shadows:
                self._freeze_shadow(compact(shadow), reason, check.op, check.module)
        self._drop_heads_of_fixed_size(fixed_roots)

    def _drop_heads_of_fixed_size(self, fixed_roots: set) -> None:
        """Removing a head shrinks the dims its channels sit in; when a size argument fixes
        such a dim (``reshape(B, N, heads, C // heads)``, a constant ``embed_dims``), the
        exported model could not remove heads either."""
        from .channel_tracer import FrozenRecord
        kept = []
        for site in self.heads:
            roots = set(self.uf.roots(torch.cat(site.nodes)).tolist())
            if roots & fixed_roots:
                self.frozen.append(FrozenRecord(
                    f'heads of {site.module!r} are not pruned: a reshape gives their channels '
                    'a fixed or computed size', 'scaled_dot_product_attention', site.module))
            else:
                kept.append(site)
        self.heads = kept
