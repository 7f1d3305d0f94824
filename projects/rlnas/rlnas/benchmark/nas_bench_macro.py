"""NAS-Bench-Macro: ground truth for ranking architectures of its 3^8 space on CIFAR-10."""
import json
from typing import Dict, Iterable, Optional, Sequence

import numpy as np

from ..utils import shared_data_path

FILENAME = 'nas-bench-macro_cifar10.json'


class NASBenchMacro:
    """Benchmark table: ``mean_acc`` (3 runs, 50 epochs), ``params``, ``flops`` per arch key.

    Args:
        path: the JSON file; default ``$MMDMS_SHARED_DATA`` or ``<repo>/../shared/data``.
    """

    def __init__(self, path: Optional[str] = None):
        self.path = path or shared_data_path(FILENAME)
        with open(self.path) as f:
            table = json.load(f)
        self.archs = sorted(table)
        if not self.archs or any(len(a) != 8 or set(a) - set('012') for a in self.archs):
            raise ValueError(f'{self.path} does not look like NAS-Bench-Macro (8-digit keys of '
                             '0/1/2 expected)')
        self.index = {a: i for i, a in enumerate(self.archs)}
        self.mean_acc = np.array([table[a]['mean_acc'] for a in self.archs])
        self.flops = np.array([table[a]['flops'] for a in self.archs], dtype=float)
        self.params = np.array([table[a]['params'] for a in self.archs], dtype=float)
        # rank 1 = best mean accuracy; ties share the better rank
        self.ranks = 1 + np.array([(self.mean_acc > acc).sum() for acc in self.mean_acc])

    def __len__(self) -> int:
        return len(self.archs)

    def key(self, arch) -> str:
        return arch if isinstance(arch, str) else ''.join(str(int(c)) for c in arch)

    def lookup(self, arch) -> Dict[str, float]:
        i = self.index[self.key(arch)]
        return dict(arch=self.archs[i], mean_acc=float(self.mean_acc[i]), rank=int(self.ranks[i]),
                    flops=float(self.flops[i]), params=float(self.params[i]))

    def arch_tuples(self) -> np.ndarray:
        return np.array([[int(c) for c in a] for a in self.archs], dtype=np.int64)

    def best_under(self, flops_budget: float, by: Optional[np.ndarray] = None) -> Dict[str, float]:
        """The arch with the highest ``by`` (default: benchmark accuracy, i.e. the oracle) among
        those within the FLOPs budget."""
        by = self.mean_acc if by is None else np.asarray(by)
        ok = np.flatnonzero(self.flops <= flops_budget)
        if not len(ok):
            raise ValueError(f'no architecture within {flops_budget} FLOPs')
        # ties go to the first key (argmax), so a pick never peeks at the ground truth
        return self.lookup(self.archs[ok[np.argmax(by[ok])]])


def rank_correlations(scores: Iterable[float], truth: Sequence[float]) -> Dict[str, float]:
    """Kendall tau-b and Spearman rho of ``scores`` against ``truth``."""
    from scipy.stats import kendalltau, spearmanr
    scores, truth = np.asarray(list(scores), float), np.asarray(truth, float)
    if scores.shape != truth.shape:
        raise ValueError(f'{scores.shape} scores for {truth.shape} ground-truth values')
    return dict(kendall_tau=float(kendalltau(scores, truth)[0]),
                spearman_rho=float(spearmanr(scores, truth)[0]))


def ties_at_max(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Indices (within ``mask``) sharing the maximum of ``values``: how ambiguous a pick is."""
    idx = np.flatnonzero(mask)
    return idx[values[idx] == values[idx].max()]
