"""Keep checkpoints loadable with ``torch.load(weights_only=True)`` (torch >= 2.6 default).

MMEngine stores the message hub's ``HistoryBuffer`` objects in checkpoints; they pickle bound
methods through ``builtins.getattr``, which the safe unpickler rightly refuses (allow-listing
``getattr`` would defeat it). This hook turns them into plain lists before saving and back
after loading, so our checkpoints need no ``weights_only=False``.
"""
import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

from mmdms.registry import HOOKS

PLAIN_BUFFER = '__history_buffer__'


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def history_to_plain(buffer: HistoryBuffer) -> dict:
    log, count = buffer.data
    return {PLAIN_BUFFER: True, 'log_history': log.tolist(), 'count_history': count.tolist(),
            'max_length': buffer.max_length}


def plain_to_history(value: dict) -> HistoryBuffer:
    return HistoryBuffer(value['log_history'], value['count_history'], value['max_length'])


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Plain-data message hub in checkpoints (see module docstring). Added by tools/train.py."""

    priority = 'VERY_LOW'  # after every other hook has put its data in the checkpoint

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get('message_hub')
        if not isinstance(hub, dict):
            return
        scalars = hub.get('log_scalars', {})
        hub['log_scalars'] = {
            k: history_to_plain(v) if isinstance(v, HistoryBuffer) else v
            for k, v in scalars.items()}
        if 'runtime_info' in hub:
            hub['runtime_info'] = _plain(hub['runtime_info'])
        if 'meta' in checkpoint:
            checkpoint['meta'] = _plain(checkpoint['meta'])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get('message_hub')
        if not isinstance(hub, dict):
            return
        hub['log_scalars'] = {
            k: plain_to_history(v) if isinstance(v, dict) and v.get(PLAIN_BUFFER) else v
            for k, v in hub.get('log_scalars', {}).items()}
