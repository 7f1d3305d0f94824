"""Turn a channel trace into prunable channel groups (the future units) and a frozen report."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .channel_tracer import TraceResult


@dataclass
class ChannelGroup:
    """Channels that rise and fall together: one width unit.

    ``roots[i]`` is the union-find root of element i; ``producers`` are the parameter
    dimensions that create these channels (conv/linear output rows).
    """
    name: str
    roots: Tensor
    producers: List[str]
    frozen_reason: Optional[str] = None

    @property
    def num_elements(self) -> int:
        return self.roots.numel()


@dataclass
class PruningGraph:
    """Everything the mutator and the exporter need, derived from one trace."""
    trace: TraceResult
    groups: List[ChannelGroup]
    frozen_groups: List[ChannelGroup]
    element_of_root: Dict[int, Tuple[int, int]] = field(default_factory=dict)

    def roots(self, nodes: Tensor) -> Tensor:
        return self.trace.uf.roots(nodes)

    def frozen_report(self) -> List[dict]:
        """One entry per frozen group: its name, size and why it cannot be pruned."""
        return [dict(group=g.name, size=g.num_elements, producers=g.producers,
                     reason=g.frozen_reason) for g in self.frozen_groups]


def _module_of(param_name: str) -> str:
    return param_name.rsplit('.', 1)[0] if '.' in param_name else param_name


def _piece_keys(trace: TraceResult) -> Dict[int, tuple]:
    """For each root, the pieces of every adapter-sized split (``trace.split_pieces``) that
    hold it. Roots with different keys never share a unit: each piece then keeps at least one
    channel (HorNet's ``dims[i]`` never drops to 0), and a unit never spans pieces."""
    found: Dict[int, Dict[int, set]] = {}
    for s, pieces in enumerate(trace.split_pieces):
        for i, nodes in enumerate(pieces):
            for r in trace.uf.roots(nodes).tolist():
                found.setdefault(r, {}).setdefault(s, set()).add(i)
    return {r: tuple((s, frozenset(d[s])) for s in sorted(d)) for r, d in found.items()}


def build_pruning_graph(trace: TraceResult) -> PruningGraph:
    uf = trace.uf
    producer_slots = [s for s in trace.slots if s.role == 'producer']
    # a producer slot links its channels into one unit, except across the pieces of a split
    # sized by an adapter: one segment (slot index, roots) per piece key
    keys = _piece_keys(trace)
    segments: List[Tuple[int, Tensor]] = []
    for i, slot in enumerate(producer_slots):
        roots = uf.roots(slot.nodes)
        if not keys:
            segments.append((i, roots))
            continue
        parts: Dict[tuple, List[int]] = {}
        for r in roots.tolist():
            parts.setdefault(keys.get(r, ()), []).append(r)
        segments += [(i, torch.tensor(rs, dtype=torch.long)) for rs in parts.values()]
    # union segments that share a channel (residual adds, tied splits, ...)
    owner_of_root: Dict[int, int] = {}
    parent = list(range(len(segments)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (_, roots) in enumerate(segments):
        for r in roots.tolist():
            j = owner_of_root.setdefault(r, i)
            if j != i:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    members: Dict[int, List[int]] = {}
    for i in range(len(segments)):
        members.setdefault(find(i), []).append(i)

    groups, frozen = [], []
    names_used: Dict[str, int] = {}
    element_of_root: Dict[int, Tuple[int, int]] = {}
    for leader in sorted(members):
        seen, order = set(), []
        for i in members[leader]:
            for r in segments[i][1].tolist():
                if r not in seen:
                    seen.add(r)
                    order.append(r)
        slots = [producer_slots[segments[i][0]] for i in members[leader]]
        names = list(dict.fromkeys(slot.name for slot in slots))
        # named after a layer it produces whole, if any (a slot split into pieces is shared)
        whole = [slot.name for i, slot in zip(members[leader], slots)
                 if segments[i][1].numel() == slot.nodes.numel()]
        name = _module_of((whole or names)[0])
        names_used[name] = names_used.get(name, 0) + 1
        if names_used[name] > 1:
            name = f'{name}#{names_used[name] - 1}'
        group = ChannelGroup(name, torch.tensor(order, dtype=torch.long), names)
        reasons = [uf.frozen[r] for r in order if r in uf.frozen]
        if reasons:
            group.frozen_reason = reasons[0]
            frozen.append(group)
        elif group.num_elements < 2:
            group.frozen_reason = 'a single channel cannot be pruned (units keep >= 1)'
            frozen.append(group)
        else:
            for local, r in enumerate(order):
                element_of_root[r] = (len(groups), local)
            groups.append(group)
    return PruningGraph(trace, groups, frozen, element_of_root)
