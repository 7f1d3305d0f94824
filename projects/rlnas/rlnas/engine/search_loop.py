"""MMEngine loop that runs the evolution search on a trained supernet (``runner.train()``)."""
import copy
import json
import os.path as osp
from typing import Dict, Optional, Sequence

import torch
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop

from ..models.arch import arch_to_str
from ..registry import LOOPS
from ..search import (EvolutionSearcher, LayerwiseAngleScorer, LayerwiseComplexity,
                      OneShotEvaluator, collect_batches)
from ..utils import atomic_write_json


def load_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """State dict of an MMEngine checkpoint (or a bare state dict), 'module.' stripped."""
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    state = ckpt.get('state_dict', ckpt)
    return {k[7:] if k.startswith('module.') else k: v for k, v in state.items()}


@LOOPS.register_module()
class EvolutionSearchLoop(BaseLoop):
    """Evolution search scored by the angle metric (RLNAS) or by one-shot accuracy (SPOS).

    The trained supernet comes from ``supernet_weights`` (e.g. ``final_weights.pth`` of
    :class:`SaveInitWeightsHook`) or, when that is None, from the runner (``load_from``).
    Results go to ``work_dir/result_file``: the top-k candidates with score, FLOPs and params.
    The search state is saved to ``work_dir/state_file`` after every generation and picked up
    again by a rerun (with the same settings; the number of generations may grow).

    Args:
        runner, dataloader: from the runner; the dataloader (training data) is only used to
            recalibrate BN for ``score='accuracy'``.
        score: 'angle' (no data needed) or 'accuracy' (one-shot top-1 on ``val_dataloader``).
        supernet_weights: state dict (or checkpoint) of the trained supernet.
        init_weights: W0; default ``init_weights.pth`` beside ``supernet_weights``/``load_from``.
        val_dataloader: dataloader (config) of the held-out split, for 'accuracy'.
        calib_batches, val_batches: batches used for BN recalibration / validation (None: all
            validation batches).
        constraints: upper bounds, e.g. ``dict(flops=55e6, params=2e6)`` (FLOPs = conv/linear
            multiply-adds on one ``input_shape`` image).
        resume: continue from ``state_file`` when it exists.
        population_size, top_k, num_mutation, num_crossover, mutate_prob, max_epochs, seed: see
            :class:`EvolutionSearcher`.
    """

    def __init__(self, runner, dataloader, score: str = 'angle',
                 supernet_weights: Optional[str] = None, init_weights: Optional[str] = None,
                 val_dataloader=None,
                 calib_batches: int = 4, val_batches: Optional[int] = None,
                 constraints: Optional[dict] = None,
                 input_shape: Sequence[int] = (3, 32, 32),
                 resume: bool = True, result_file: str = 'search_results.json',
                 state_file: str = 'search_state.json', population_size: int = 50,
                 top_k: int = 10, num_mutation: int = 25, num_crossover: int = 25,
                 mutate_prob: float = 0.1, max_epochs: int = 20, seed: int = 0):
        if score not in ('angle', 'accuracy'):
            raise ValueError(f"score must be 'angle' or 'accuracy', got {score!r}")
        if score == 'accuracy' and val_dataloader is None:
            raise ValueError("score='accuracy' needs a val_dataloader")
        if score == 'accuracy' and dataloader is None:
            raise ValueError("score='accuracy' needs the train dataloader for BN recalibration")
        super().__init__(runner, dataloader if dataloader is not None else [])
        self.score = score
        self.supernet_weights, self.init_weights = supernet_weights, init_weights
        self.val_dataloader_cfg = val_dataloader
        self.calib_batches, self.val_batches = calib_batches, val_batches
        self.constraints = {k: float(v) for k, v in (constraints or {}).items() if v is not None}
        unknown = set(self.constraints) - {'flops', 'params'}
        if unknown:
            raise KeyError(f'unknown constraints {sorted(unknown)}; use flops and/or params')
        self.input_shape = tuple(input_shape)
        self.resume = resume
        self.result_file, self.state_file = result_file, state_file
        self.settings = dict(population_size=population_size, top_k=top_k,
                             num_mutation=num_mutation, num_crossover=num_crossover,
                             mutate_prob=mutate_prob, max_epochs=max_epochs, seed=seed)
        self._epoch = 0

    # runner.train() reads these
    @property
    def max_epochs(self):
        return self.settings['max_epochs']

    @property
    def max_iters(self):
        return self.settings['max_epochs']

    @property
    def epoch(self):
        return self._epoch

    @property
    def iter(self):
        return self._epoch

    def _model(self):
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def _score_fn(self, model):
        if self.score == 'angle':
            path = self.init_weights
            if path is None:
                trained = self.supernet_weights or self.runner._load_from
                if not trained:
                    raise ValueError('score="angle" needs init_weights (or supernet_weights / '
                                     'load_from, whose folder holds init_weights.pth)')
                path = osp.join(osp.dirname(trained), 'init_weights.pth')
            if not osp.isfile(path):
                raise FileNotFoundError(f'initial weights {path} not found (SaveInitWeightsHook '
                                        'writes them when the supernet is trained)')
            model_init = copy.deepcopy(model)
            model_init.load_state_dict(load_state_dict(path), strict=True)
            scorer = LayerwiseAngleScorer(model_init.cpu(), copy.deepcopy(model).cpu())
            return scorer.score
        val_loader = self.runner.build_dataloader(self.val_dataloader_cfg)
        evaluator = OneShotEvaluator(model, collect_batches(model, self.dataloader,
                                                            self.calib_batches),
                                     collect_batches(model, val_loader, self.val_batches))
        return evaluator

    def run(self):
        self.runner.call_hook('before_train')
        model = self._model()
        if self.supernet_weights:
            model.load_state_dict(load_state_dict(self.supernet_weights), strict=True)
            self.runner.logger.info(f'loaded the supernet from {self.supernet_weights}')
        num_choices = model.backbone.num_choices
        complexity = LayerwiseComplexity(model, self.input_shape)

        def allowed(arch):
            cost = complexity(arch)
            return all(cost[k] <= v for k, v in self.constraints.items())

        score_fn = None

        def score(arch):
            nonlocal score_fn
            if score_fn is None:  # built lazily: a resumed, finished search needs no data
                score_fn = self._score_fn(model)
            return float(score_fn(arch))

        searcher = EvolutionSearcher(num_choices, score, allowed, **self.settings)
        # everything but the number of generations must match to resume (a finished search
        # can be given more generations)
        settings = {k: v for k, v in self.settings.items() if k != 'max_epochs'}
        meta = dict(score=self.score, constraints=self.constraints, settings=settings)
        state_path = osp.join(self.runner.work_dir, self.state_file)
        if self.resume and osp.isfile(state_path):
            with open(state_path) as f:
                state = json.load(f)
            if state.get('meta') != meta:
                raise ValueError(f'{state_path} was written by a search with other settings '
                                 f'({state.get("meta")}); delete it or use another work_dir')
            searcher.load_state_dict(state['searcher'])
            self.runner.logger.info(f'resumed the search after generation {searcher.epoch}')

        def on_epoch(s, record):
            self._epoch = s.epoch
            atomic_write_json(dict(meta=meta, searcher=s.state_dict()), state_path)
            self.runner.logger.info(
                f'generation {record["epoch"] + 1}/{self.max_epochs}: '
                f'{record["total_evaluated"]} candidates evaluated, best '
                f'{arch_to_str(record["best"], num_choices)} {self.score}='
                f'{record["best_score"]:.6g}')

        searcher.run(on_epoch)
        self._epoch = searcher.epoch
        top = [
            dict(arch=arch_to_str(a, num_choices), score=searcher.scores[a], **complexity(a))
            for a in searcher.top_candidates(self.settings['top_k'])
        ]
        results = dict(score=self.score, constraints=self.constraints, settings=self.settings,
                       num_evaluated=len(searcher.scores), best=top[0], top_k=top,
                       history=searcher.history)
        atomic_write_json(results, osp.join(self.runner.work_dir, self.result_file))
        self.runner.logger.info(f'best: {top[0]}')
        self.runner.call_hook('after_train')
        return model
