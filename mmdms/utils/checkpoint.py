"""Load our own MMEngine checkpoints under torch >= 2.6's ``weights_only=True`` default.

MMEngine 0.10.7 calls ``torch.load`` without ``weights_only``; since torch 2.6 that refuses
anything but tensors and plain containers, and MMEngine checkpoints carry message-hub history
(``HistoryBuffer`` holding numpy arrays). Rather than turning the safety off globally, we
allow-list exactly the types that MMEngine and mmdms write.
"""
import torch


def _checkpoint_safe_globals() -> list:
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    safe = [HistoryBuffer, np.ndarray, np.dtype]
    try:  # numpy >= 1.25 has per-dtype classes that pickles reference
        from numpy import dtypes
        safe += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    except ImportError:  # pragma: no cover
        pass
    for module_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            module = __import__(module_name, fromlist=['_reconstruct', 'scalar'])
            safe += [module._reconstruct, module.scalar]
            break
        except (ImportError, AttributeError):
            continue
    safe += [np.float64, np.float32, np.int64, np.int32, np.bool_]
    return safe


def setup_torch_load() -> None:
    """Allow-list the non-tensor types found in MMEngine/mmdms checkpoints (idempotent)."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:
        add_safe_globals(_checkpoint_safe_globals())


def add_safe_checkpoint_hook(cfg) -> None:
    """Add ``SafeCheckpointHook`` to a config's custom hooks (once), so its checkpoints load
    under torch's ``weights_only`` default."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(h.get('type') in ('SafeCheckpointHook', 'mmdms.SafeCheckpointHook')
               for h in hooks):
        hooks.append(dict(type='mmdms.SafeCheckpointHook'))
    cfg.custom_hooks = hooks
