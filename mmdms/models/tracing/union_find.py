"""Union-find over integer channel nodes, with vectorised bulk unions."""
from typing import Dict, Iterable, List

import torch


class UnionFind:
    """Disjoint sets over nodes ``0..n-1`` that grow on demand.

    Every node is one channel of one parameter dimension (a row of a conv weight, an element
    of a BN scale, ...). Two nodes end in the same set when the traced graph proves they are
    the same channel seen from two layers (residual add, concat into a conv, ...).
    """

    def __init__(self):
        self.parent: List[int] = []
        self.frozen: Dict[int, str] = {}  # node -> why it must never be pruned

    def __len__(self) -> int:
        return len(self.parent)

    def new_nodes(self, count: int) -> torch.Tensor:
        start = len(self.parent)
        self.parent.extend(range(start, start + count))
        return torch.arange(start, start + count, dtype=torch.long)

    def find(self, node: int) -> int:
        parent = self.parent
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if ra > rb:
            ra, rb = rb, ra
        self.parent[rb] = ra  # the older node stays the root: roots follow creation order
        reason = self.frozen.pop(rb, None)
        if reason is not None and ra not in self.frozen:
            self.frozen[ra] = reason
        return ra

    def union_pairs(self, a: torch.Tensor, b: torch.Tensor) -> None:
        """Union ``a[i]`` with ``b[i]`` for all i, skipping duplicate pairs first."""
        if a.numel() == 0:
            return
        a, b = a.reshape(-1).long(), b.reshape(-1).long()
        differ = a != b
        a, b = a[differ], b[differ]
        if a.numel() == 0:
            return
        base = int(max(a.max(), b.max())) + 1
        codes = torch.unique(a * base + b)  # 1-D unique is far faster than unique(dim=1)
        for code in codes.tolist():
            self.union(code // base, code % base)

    def freeze(self, nodes: Iterable[int], reason: str) -> None:
        for node in nodes:
            root = self.find(int(node))
            self.frozen.setdefault(root, reason)

    def frozen_reason(self, node: int):
        return self.frozen.get(self.find(node))

    def roots(self, nodes: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.find(n) for n in nodes.tolist()], dtype=torch.long)
