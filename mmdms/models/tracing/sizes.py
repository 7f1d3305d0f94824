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

A tag's ``scale`` and ``period`` say that the value is ``scale * size`` of its source for every
size that is a multiple of ``period``: ``C // 2`` and ``C // 2 + C % 2`` (ShuffleNet's split
point) are ``C / 2`` for even ``C``; the size rules check that the pruned source keeps such a
size.

Limits: a tag is lost where Python leaves the subclass, e.g. ``0.5 * C`` (``float`` handles
it), ``int(C)`` or ``math.sqrt(C)``; ``C * 0.5`` and ``C ** -0.5`` keep it.
"""
from fractions import Fraction
from math import lcm
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
        period: ``scale`` holds while the source size is a multiple of ``period`` (``C // 4``:
            4, ``C % 2``: 2, with scale 0): a floor or a remainder is exact only there.
    """
    __slots__ = ('sources', 'scale', 'origin', 'period')

    def __init__(self, sources: Tuple[Tuple[Tensor, int], ...], scale: Optional[Fraction],
                 origin: str, period: int = 1):
        self.sources = sources
        self.scale = scale
        self.origin = origin
        self.period = period

    def same_source(self, other: 'SizeTag') -> bool:
        """Both read from the same dim of the same tensor."""
        if len(self.sources) != 1 or len(other.sources) != 1:
            return False
        (a, da), (b, db) = self.sources[0], other.sources[0]
        return a is b and da == db


def _merge(name: str, value, tag: SizeTag, other) -> SizeTag:
    """The tag of ``value <name> other``: multiplying a single source by a plain int,
    dividing it exactly or taking a zero remainder (both exact on a coarser period), and
    adding or subtracting two multiples of the same source keep a scale; anything else does
    not."""
    other_tag = other.tag if is_tagged(other) else None
    sources = tag.sources + (other_tag.sources if other_tag is not None else ())
    scale, period = None, tag.period
    plain_int = isinstance(other, int) and not isinstance(other, bool) and other_tag is None
    if plain_int and tag.scale is not None and other:
        if name in ('__mul__', '__rmul__'):
            scale = tag.scale * other
        elif name in ('__floordiv__', '__mod__') and int(value) % other == 0:
            # scale * size / other is an integer exactly when size is a multiple of its
            # denominator: there, size // other == size / other and size % other == 0
            ratio = Fraction(tag.scale) / other
            period = lcm(period, ratio.denominator)
            scale = ratio if name == '__floordiv__' else Fraction(0)
    elif other_tag is not None and tag.same_source(other_tag) and \
            None not in (tag.scale, other_tag.scale) and \
            name in ('__add__', '__radd__', '__sub__', '__rsub__'):
        sources = tag.sources
        period = lcm(period, other_tag.period)
        if name in ('__add__', '__radd__'):
            scale = tag.scale + other_tag.scale
        elif name == '__sub__':
            scale = tag.scale - other_tag.scale
        else:
            scale = other_tag.scale - tag.scale
    return SizeTag(sources, scale, tag.origin, period)


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
