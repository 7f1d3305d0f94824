"""PGNAS search: sample candidates, score each with its own weights, keep the best.

Runs in the train slot of an MMEngine ``Runner`` (as mmrazor's search loops do):
``tools/train.py SEARCH_CONFIG --cfg-options load_from=SUPERNET.pth``. The loop's dataloader
is the held-out split carved from the training images; there is no fine-tuning, not even of
batch-norm statistics: a candidate is ``w * alpha`` with the supernet's ``w``.
"""
import math
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.runner import BaseLoop
from torch.utils.data import DataLoader

from ..export import export_candidate
from ..fileio import atomic_write_json
from ..models.candidates import (branch_costs, candidate_context, candidate_cost,
                                 candidate_seed, dropout_units, sample_candidate)
from ..registry import LOOPS


def cost_matched_drop_rate(model, costs: Dict[str, int]) -> float:
    """The uniform rate whose expected candidate cost equals the posterior's.

    ``sum_u c_u k_u (1 - r) = sum_u c_u k_u (1 - p_u)``  =>  ``r = sum w_u p_u / sum w_u``.
    """
    num, den = 0., 0.
    for name, unit in dropout_units(model).items():
        weight = costs[name] * unit.num_channels
        num += weight * float(unit.drop_rate.detach())
        den += weight
    return num / den


class StagePrefixCache:
    """Exact shortcut for scoring many candidates of a staged backbone (SupNet-R).

    The stem is not gated, and a stage whose units all keep every channel computes the same
    function for every such candidate. So the stem output, and the output of each leading
    run of all-keep stages, are computed once per held-out batch and reused: a candidate
    starts at its first stage that drops something. The same ops run on the same tensors,
    so the logits are bitwise those of ``model(inputs, mode='tensor')`` (checked on the
    first candidate; the cache switches itself off on any mismatch). Posterior candidates,
    which rarely drop in the first stages, are scored about twice as fast.
    """

    def __init__(self, model):
        backbone = getattr(model, 'backbone', None)
        names = list(dropout_units(model))
        stages = list(getattr(backbone, 'stage_names', []))
        self.stage_units = [[n for n in names if n.startswith(f'backbone.{s}.')]
                            for s in stages]
        self.enabled = (hasattr(backbone, 'stem') and bool(stages)
                        and getattr(model, 'with_neck', False)
                        and getattr(model, 'with_head', False)
                        and sum(map(len, self.stage_units)) == len(names))
        self.stages = [getattr(backbone, s) for s in stages] if self.enabled else []
        self.outputs = {}  # batch index -> [stem out, out of stage 1, ...] (all-keep prefix)
        self.checked = False

    def keep_prefix(self, candidate) -> int:
        """How many leading stages keep every channel of the candidate."""
        k = 0
        while k < len(self.stage_units) and all(
                bool(candidate[u].all()) for u in self.stage_units[k]):
            k += 1
        return k

    def logits(self, model, batch_index: int, inputs, prefix: int):
        out = self.outputs.get(batch_index)
        if out is None:
            out = self.outputs[batch_index] = [model.backbone.stem(inputs)]
        start = min(len(out) - 1, prefix)
        x = out[start]
        for s in range(start, len(self.stages)):
            x = self.stages[s](x)
            if s + 1 <= prefix and len(out) == s + 1:
                out.append(x)
        return model.head(model.neck((x, )))


@LOOPS.register_module()
class PGNASSearchLoop(BaseLoop):
    """Draw ``num_candidates`` masks, rank them by held-out top-1 accuracy, export the best.

    Args:
        runner: the MMEngine runner.
        dataloader: the held-out split (no augmentation), given as the runner's
            ``train_dataloader``.
        num_candidates (int): C, candidates drawn. Defaults to 200.
        sampler (str): ``'posterior'`` (each unit's learned ``p``: PGNAS) or ``'uniform'``
            (one predefined rate for every unit: random sampling baseline).
        drop_rate (float | str, optional): the uniform rate, or ``'cost_matched'`` for the
            rate with the posterior's expected multiply-adds.
        seed (int): candidate ``i`` is drawn with seed ``candidate_seed(seed, i)``.
        report_at (Sequence[int]): also report/export the best of the first ``n``
            candidates for each ``n`` (e.g. 50 and 200 from a single run of 200).
        export (bool): export the best candidate(s) as static models.
        out_dir (str, optional): where results go; the runner's work dir by default.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 num_candidates: int = 200,
                 sampler: str = 'posterior',
                 drop_rate: Optional[Union[float, str]] = None,
                 seed: int = 0,
                 report_at: Sequence[int] = (),
                 export: bool = True,
                 out_dir: Optional[str] = None):
        super().__init__(runner, dataloader)
        if sampler not in ('posterior', 'uniform'):
            raise ValueError(f"sampler must be 'posterior' or 'uniform', got {sampler!r}")
        if sampler == 'uniform' and drop_rate is None:
            raise ValueError("sampler='uniform' needs drop_rate (a float or 'cost_matched')")
        if sampler == 'posterior' and drop_rate is not None:
            raise ValueError("sampler='posterior' uses the learned rates; drop drop_rate")
        if isinstance(drop_rate, str) and drop_rate != 'cost_matched':
            raise ValueError(f"drop_rate must be a float or 'cost_matched', got {drop_rate!r}")
        if num_candidates < 1:
            raise ValueError('num_candidates must be >= 1')
        self.num_candidates = num_candidates
        self.sampler = sampler
        self.drop_rate = drop_rate
        self.seed = seed
        self.report_at = sorted({n for n in report_at if n <= num_candidates}
                                | {num_candidates})
        self.export = export
        self.out_dir = out_dir
        self._iter = 0

    # Runner.train() reads these.
    @property
    def iter(self) -> int:
        return self._iter

    @property
    def max_iters(self) -> int:
        return self.num_candidates

    @property
    def epoch(self) -> int:
        return 0

    @property
    def max_epochs(self) -> int:
        return 1

    def _heldout_batches(self, model) -> List[tuple]:
        """Preprocess the held-out split once; every candidate sees the same tensors."""
        batches = []
        with torch.no_grad():
            for data in self.dataloader:
                data = model.data_preprocessor(data, False)
                labels = torch.cat([s.gt_label for s in data['data_samples']])
                batches.append((data['inputs'], labels.to(data['inputs'].device)))
        return batches

    @staticmethod
    def _accuracy(model, batches, cache=None, candidate=None) -> float:
        """Held-out top-1; with ``cache`` (a :class:`StagePrefixCache`) and the candidate
        set on the model, shared stage outputs are reused (same result, less compute)."""
        use_cache = cache is not None and cache.enabled and candidate is not None
        prefix = cache.keep_prefix(candidate) if use_cache else 0
        correct, total = 0, 0
        with torch.no_grad():
            for b, (inputs, labels) in enumerate(batches):
                if use_cache and not cache.checked:
                    plain = model(inputs, mode='tensor')
                    fast = cache.logits(model, b, inputs, prefix)
                    cache.checked = True
                    if not torch.equal(plain, fast):
                        cache.enabled, cache.outputs, use_cache = False, {}, False
                    logits = plain
                elif use_cache:
                    logits = cache.logits(model, b, inputs, prefix)
                else:
                    logits = model(inputs, mode='tensor')
                correct += int((logits.argmax(1) == labels).sum())
                total += labels.numel()
        return 100. * correct / total

    def run(self):
        runner = self.runner
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        model.eval()
        out_dir = self.out_dir or runner.work_dir
        batches = self._heldout_batches(model)
        costs = branch_costs(model)
        full_cost = sum(costs[n] * u.num_channels for n, u in dropout_units(model).items())
        if self.sampler == 'uniform' and self.drop_rate == 'cost_matched':
            rate = cost_matched_drop_rate(model, costs)
        else:
            rate = None if self.sampler == 'posterior' else float(self.drop_rate)
        supernet_acc = self._accuracy(model, batches)
        runner.logger.info(f'PGNAS search: sampler={self.sampler} drop_rate={rate} '
                           f'C={self.num_candidates} held-out={sum(len(b[1]) for b in batches)}'
                           f' supernet (mean network) acc={supernet_acc:.2f}')
        records, candidates, start = [], [], time.time()
        cache = StagePrefixCache(model)
        for index in range(self.num_candidates):
            candidate = sample_candidate(model, self.seed, index, rate)
            with candidate_context(model, candidate):
                acc = self._accuracy(model, batches, cache, candidate)
            kept = sum(int(m.sum()) for m in candidate.values())
            records.append(
                dict(index=index, seed=candidate_seed(self.seed, index), acc=acc,
                     cost_ratio=candidate_cost(candidate, costs) / full_cost,
                     kept_channels=kept,
                     dropped_branches=sum(int(m.sum()) == 0 for m in candidate.values())))
            candidates.append(candidate)
            self._iter = index + 1
            if (index + 1) % 10 == 0 or index + 1 == self.num_candidates:
                best = max(r['acc'] for r in records)
                runner.logger.info(f'candidate {index + 1}/{self.num_candidates}: '
                                   f'acc={acc:.2f} best={best:.2f} '
                                   f'({time.time() - start:.0f}s)')
        runner.logger.info(f'stage-prefix cache: enabled={cache.enabled}')
        results = dict(
            sampler=self.sampler, drop_rate=rate, seed=self.seed,
            num_candidates=self.num_candidates, supernet_heldout_acc=supernet_acc,
            heldout_size=sum(len(b[1]) for b in batches),
            drop_rates={n: float(u.drop_rate.detach()) for n, u in dropout_units(model).items()},
            search_seconds=time.time() - start, candidates=records, best={})
        for n in self.report_at:
            # ties: the earliest candidate, so the best of n is reproducible from its index
            best = max(records[:n], key=lambda r: (r['acc'], -r['index']))
            entry = dict(best)
            if self.export:
                entry['export'] = export_candidate(
                    model, candidates[best['index']], runner.cfg, out_dir, f'best_of_{n}',
                    meta=dict(sampler=self.sampler, index=best['index'], seed=best['seed'],
                              heldout_acc=best['acc']))
            results['best'][str(n)] = entry
            runner.logger.info(f'best of {n}: candidate {best["index"]} '
                               f'acc={best["acc"]:.2f} cost={best["cost_ratio"]:.3f}')
        atomic_write_json(osp.join(out_dir, 'search_results.json'), results)
        return model


def summarize(accs: Sequence[float]) -> dict:
    """Mean, std, max of candidate accuracies (for tables)."""
    n = len(accs)
    mean = sum(accs) / n
    std = math.sqrt(sum((a - mean)**2 for a in accs) / max(n - 1, 1))
    return dict(mean=mean, std=std, max=max(accs), min=min(accs), n=n)
