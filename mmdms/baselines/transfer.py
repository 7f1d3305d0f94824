"""Carry weights from a pruned model to a more strongly pruned one (iterative pruning)."""
from typing import Dict, Mapping

import torch
from torch import Tensor


def transfer_state(state_dict: Mapping[str, Tensor], previous: dict, structure: dict,
                   prefix: str = '') -> Dict[str, Tensor]:
    """Slice the weights of a model pruned to ``previous`` down to ``structure``.

    Both structures are in supernet coordinates (kept indices of the supernet's channels).
    ``previous`` may be ``{'slots': {}}`` for the unpruned supernet. Tensors the structure
    does not touch are copied. ``structure`` must keep a subset of ``previous``'s channels.
    Removed blocks are not supported (magnitude pruning changes widths only).
    """
    if structure.get('removed_blocks'):
        raise ValueError('transfer_state handles width pruning only; the structure removes '
                         f'blocks {structure["removed_blocks"][:3]}')
    out = {}
    for key, tensor in state_dict.items():
        name = key[len(prefix):] if prefix and key.startswith(prefix) else key
        new = tensor
        for dim, entry in structure['slots'].get(name, {}).items():
            before = previous['slots'].get(name, {}).get(dim)
            held = before['kept'] if before is not None else list(range(entry['size']))
            if new.shape[int(dim)] != len(held):
                raise ValueError(f'{key!r} has {new.shape[int(dim)]} channels along dim {dim}; '
                                 f'the previous structure keeps {len(held)}')
            position = {c: i for i, c in enumerate(held)}
            missing = [c for c in entry['kept'] if c not in position]
            if missing:
                raise ValueError(f'{key!r} dim {dim}: channels {missing[:5]} were pruned '
                                 'before and have no weights to carry over')
            index = torch.tensor([position[c] for c in entry['kept']], dtype=torch.long)
            new = new.index_select(int(dim), index)
        out[key] = new.clone()
    return out
