"""FLOPs, params and CPU latency of a model built from a config, measured on the model."""
import statistics
import time

import torch

from mmdms.analysis import count_complexity
from mmdms.registry import MODELS


def build_eval_model(model_cfg: dict) -> torch.nn.Module:
    return MODELS.build(model_cfg).eval()


def complexity(model: torch.nn.Module, input_shape) -> dict:
    """``mmdms.analysis.count_complexity`` (mmengine's counting) of one forward."""
    return count_complexity(model, torch.randn(*input_shape),
                            lambda m, x: m(x, mode='tensor'))


@torch.no_grad()
def latency_ms(model: torch.nn.Module, input_shape, repeats: int = 30, threads: int = 1) -> float:
    """Median wall time of one forward (``mode='tensor'``) on ``threads`` CPU threads."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.randn(*input_shape)
        for _ in range(3):
            model(x, mode='tensor')
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x, mode='tensor')
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(old)
    return 1e3 * statistics.median(times)
