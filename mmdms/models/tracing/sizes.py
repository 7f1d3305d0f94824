"""Sizes read from tensors during a trace, tagged with the channels they count.

Model code often reads a channel count from a tensor and feeds it back into a shape op::

    B, N, C = x.shape
    qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)

Once ``x``'s channels are pruned, the exported model computes ``C' // num_heads`` from the
pruned width, which no longer matches ``qkv``'s per-head size: a crash, or worse, a silently
different computation. The tracer sees the ints only as plain Python numbers, so here each
size read from a *channel* dimension (``x.shape``, ``x.size()``, ``x.size(d)``) becomes a
:class:`TaggedInt`: an ``int`` that remembers the channel nodes of the dimension it was read
from, and keeps that tag through arithmetic (``C // h``, ``2 * C``, ``C ** -0.5`` gives a
:class:`TaggedFloat`). When a tagged number reaches a torch call, the tracer decides whether
the exported model would still be consistent (see ``ChannelTracer._check_size_uses``).

Sizes of batch, token or spatial dimensions carry no tag: pruning never changes them.

Limits: a tag is lost where Python leaves the subclass, e.g. ``0.5 * C`` (``float`` handles
it), ``int(C)`` or ``math.sqrt(C)``; ``C * 0.5`` and ``C ** -0.5`` keep it.
"""
from fractions import Fraction
from typing import Iterator, List, Optional, Tuple

from torch import Tensor


class SizeTag:
    """Where a tagged number comes from.

    Attributes:
        sources: ``(shadow, dim)`` of each channel dimension the value was computed from.
        scale: the value is ``scale * size(sources[0])`` (``C``: 1, ``C // 2``: 1/2,
            ``3 * C``: 3), so a shape op using it stays consistent when the dim it sizes keeps
            ``scale`` times as many positions as the source once pruned; None when the value
            is no such multiple (``C + 1``, ``C ** -0.5``, several sources).
        origin: the op and module that read the size, for frozen reasons.
    """
    __slots__ = ('sources', 'scale', 'origin')

    def __init__(self, sources: Tuple[Tuple[Tensor, int], ...], scale: Optional[Fraction],
                 origin: str):
        self.sources = sources
        self.scale = scale
        self.origin = origin


def _merge(name: str, value, tag: SizeTag, other) -> SizeTag:
    """The tag of ``value <name> other``: multiplying a single source by a plain int, or
    dividing it exactly, keeps a scale; anything else does not."""
    other_tag = other.tag if is_tagged(other) else None
    sources = tag.sources + (other_tag.sources if other_tag is not None else ())
    scale = None
    plain_int = isinstance(other, int) and not isinstance(other, bool) and other_tag is None
    if plain_int and tag.scale is not None and other:
        if name in ('__mul__', '__rmul__'):
            scale = tag.scale * other
        elif name == '__floordiv__' and int(value) % other == 0:
            scale = tag.scale / other
    return SizeTag(sources, scale, tag.origin)


def _wrap(value, tag: SizeTag):
    """Re-tag an arithmetic result; bools (comparisons) and other types stay plain."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return TaggedInt(value, tag)
    if isinstance(value, float):
        return TaggedFloat(value, tag)
    return value


def _arith(name: str, base):
    method = getattr(base, name)

    def op(self, *others):
        result = method(self, *others)
        if result is NotImplemented and base is int and others and \
                isinstance(others[0], float):  # C ** -0.5: int defers to float
            result = getattr(float, name)(float(self), *others)
        if result is NotImplemented:
            return result
        return _wrap(result, _merge(name, self, self.tag, others[0] if others else None))

    op.__name__ = name
    return op


_BINARY = ('add', 'sub', 'mul', 'floordiv', 'truediv', 'mod', 'pow')
_METHODS = [f'__{n}__' for n in _BINARY] + [f'__r{n}__' for n in _BINARY] + \
    ['__neg__', '__abs__']


class _TaggedNumber:
    """What :class:`TaggedInt` and :class:`TaggedFloat` share; ``_plain`` is the number type."""
    _plain = int
    tag: SizeTag

    def __new__(cls, value, tag: SizeTag):
        obj = cls._plain.__new__(cls, value)
        obj.tag = tag
        return obj

    def __reduce__(self):  # copies and pickles are plain numbers (the tag holds tensors)
        return self._plain, (self._plain(self), )

    def __pos__(self):
        return self

    def __repr__(self):
        return self._plain.__repr__(self)

    def __str__(self):
        return self._plain.__repr__(self)


class TaggedInt(_TaggedNumber, int):
    """An ``int`` read from a channel dimension of a traced tensor (see module docstring)."""
    _plain = int


class TaggedFloat(_TaggedNumber, float):
    """A ``float`` computed from a :class:`TaggedInt` (e.g. a softmax scale ``C ** -0.5``)."""
    _plain = float


for _name in _METHODS:
    setattr(TaggedInt, _name, _arith(_name, int))
    setattr(TaggedFloat, _name, _arith(_name, float))


def is_tagged(value) -> bool:
    return isinstance(value, (TaggedInt, TaggedFloat))


def iter_tagged(obj) -> Iterator:
    """Every tagged number inside ``obj`` (nested lists, tuples, dicts and slices)."""
    if is_tagged(obj):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from iter_tagged(v)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from iter_tagged(v)
    elif isinstance(obj, slice):
        yield from iter_tagged((obj.start, obj.stop, obj.step))


def size_list(args: tuple) -> List:
    """``view(2, 3)`` and ``view((2, 3))`` both mean the sizes ``[2, 3]``."""
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        return list(args[0])
    return list(args)
