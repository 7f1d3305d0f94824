"""DDP wrapper whose train_step runs DMS's two-optimizer step (weights + structure)."""
import torch
from mmengine.model import MMDistributedDataParallel

from mmdms.registry import MODEL_WRAPPERS
from .dms_algorithm import dms_train_step


@MODEL_WRAPPERS.register_module()
class DMSDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` + :func:`dms_train_step` (which needs the unwrapped
    algorithm for importance and ratio clamping). Gradients of the ratios are all-reduced by
    DDP like any parameter; importance scores are all-reduced in ``update_importance``.

    On CPU (gloo) the runner's ``device_ids=[local_rank]`` is dropped: DDP accepts device ids
    only for GPU modules.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        if not torch.cuda.is_available():
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)

    def train_step(self, data, optim_wrapper):
        return dms_train_step(self, self.module, data, optim_wrapper)
