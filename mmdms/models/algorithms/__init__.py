from .ddp_wrapper import DMSDistributedDataParallel
from .dms_algorithm import DMSAlgorithm, build_architecture, dms_train_step

__all__ = ['DMSAlgorithm', 'DMSDistributedDataParallel', 'build_architecture', 'dms_train_step']
