"""CPU-friendly start of torchrun jobs.

MMEngine 0.10's ``pytorch`` launcher calls ``torch.cuda.set_device`` unconditionally, which
fails on machines without a GPU driver. The Runner skips its own initialisation when a process
group exists, so on CPU we start one (gloo, from torchrun's environment) first.
"""
import os

import torch
import torch.distributed as dist


def init_cpu_distributed(launcher: str, backend: str = 'gloo') -> bool:
    """Initialise ``backend`` for ``launcher='pytorch'`` when CUDA is unavailable.

    Returns True when this call created the process group.
    """
    if launcher != 'pytorch' or torch.cuda.is_available() or not dist.is_available():
        return False
    if dist.is_initialized() or 'RANK' not in os.environ:
        return False
    dist.init_process_group(backend=backend)
    return True
