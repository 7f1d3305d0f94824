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


def build_pruning_graph(trace: TraceResult) -> PruningGraph:
    uf = trace.uf
    producer_slots = [s for s in trace.slots if s.role == 'producer']
    # union producer slots that share a channel (residual adds, tied splits, ...)
    owner_of_root: Dict[int, int] = {}
    slot_parent = list(range(len(producer_slots)))

    def find(i):
        while slot_parent[i] != i:
            slot_parent[i] = slot_parent[slot_parent[i]]
            i = slot_parent[i]
        return i

    slot_roots = []
    for i, slot in enumerate(producer_slots):
        roots = uf.roots(slot.nodes)
        slot_roots.append(roots)
        for r in roots.tolist():
            j = owner_of_root.setdefault(r, i)
            if j != i:
                a, b = find(i), find(j)
                if a != b:
                    slot_parent[max(a, b)] = min(a, b)
    members: Dict[int, List[int]] = {}
    for i in range(len(producer_slots)):
        members.setdefault(find(i), []).append(i)

    groups, frozen = [], []
    element_of_root: Dict[int, Tuple[int, int]] = {}
    for leader in sorted(members):
        seen, order = set(), []
        for i in members[leader]:
            for r in slot_roots[i].tolist():
                if r not in seen:
                    seen.add(r)
                    order.append(r)
        names = [producer_slots[i].name for i in members[leader]]
        group = ChannelGroup(_module_of(names[0]), torch.tensor(order, dtype=torch.long), names)
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
