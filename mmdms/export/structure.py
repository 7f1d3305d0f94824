"""Apply a pruning structure (kept indices per parameter dimension, removed blocks) to a model,
and read/write it as JSON atomically."""
import json
from typing import Dict, Union

import torch
from torch import nn

from mmdms.utils.fileio import atomic_write_text
from .adapters import apply_adapter, update_layer_attributes
from .rewrites import install_forward_rewrites

STRUCTURE_VERSION = 1


class RemovedBlock(nn.Identity):
    """Stands in for a removed residual block: returns its first input unchanged and ignores
    any further arguments the parent passes to the block (e.g. Conformer's fusion features)."""

    def forward(self, x, *args, **kwargs):
        return x


class StructureError(ValueError):
    """The structure does not fit the model, or the file is not a valid structure."""


def _split_name(name: str):
    return name.rsplit('.', 1) if '.' in name else ('', name)


def validate_structure(structure: dict) -> None:
    if not isinstance(structure, dict) or 'slots' not in structure:
        raise StructureError('not a pruning structure: expected a JSON object with "slots"')
    if structure.get('version') != STRUCTURE_VERSION:
        raise StructureError(f'unsupported structure version {structure.get("version")!r} '
                             f'(this mmdms reads version {STRUCTURE_VERSION})')
    for name, dims in structure['slots'].items():
        for dim, entry in dims.items():
            kept = entry.get('kept') if isinstance(entry, dict) else None
            size = entry.get('size') if isinstance(entry, dict) else None
            if not isinstance(kept, list) or not isinstance(size, int):
                raise StructureError(f'slot {name!r} dim {dim}: needs "size" and "kept"')
            if kept != sorted(set(kept)) or (kept and (kept[0] < 0 or kept[-1] >= size)):
                raise StructureError(f'slot {name!r} dim {dim}: kept indices must be sorted, '
                                     f'unique and inside [0, {size})')


def apply_structure(model: nn.Module, structure: dict) -> nn.Module:
    """Prune ``model`` in place to ``structure`` and return it.

    Parameters and buffers are sliced to their kept indices; layer attributes
    (``in_channels``, ``num_features``, ...) and registered adapters follow, registered forward
    rewrites are installed (:mod:`mmdms.export.rewrites`); removed blocks
    leave their ``nn.Sequential`` parent, or become :class:`RemovedBlock` in other containers
    (a removed block computes ``x + 0``, so both are exact).
    """
    validate_structure(structure)
    install_forward_rewrites(model)  # the forwards the supernet was traced with
    tensors: Dict[str, torch.Tensor] = dict(model.named_parameters())
    tensors.update(dict(model.named_buffers()))
    modules = dict(model.named_modules())
    touched = {}
    for name, dims in structure['slots'].items():
        if name not in tensors:
            raise StructureError(f'structure names {name!r}, which the model does not have: '
                                 'the structure was made for another config')
        module_name, attr = _split_name(name)
        module = modules[module_name]
        if module_name not in touched:
            touched[module_name] = (isinstance(module, nn.modules.conv._ConvNd)
                                    and module.groups > 1
                                    and module.groups == module.in_channels)
        tensor = getattr(module, attr)
        new = tensor.data
        for dim, entry in dims.items():
            dim = int(dim)
            if new.dim() <= dim or new.shape[dim] != entry['size']:
                raise StructureError(
                    f'{name!r} has shape {tuple(tensor.shape)}, but the structure expects '
                    f'{entry["size"]} along dim {dim}: the structure was made for another config')
            index = torch.tensor(entry['kept'], dtype=torch.long, device=new.device)
            new = new.index_select(dim, index)
        new = new.clone()
        if isinstance(tensor, nn.Parameter):
            setattr(module, attr, nn.Parameter(new, requires_grad=tensor.requires_grad))
        else:
            module._buffers[attr] = new
    for module_name, was_depthwise in touched.items():
        update_layer_attributes(modules[module_name], was_depthwise)
    for module_name, entry in structure.get('heads', {}).items():
        module = modules.get(module_name)
        if module is None or getattr(module, 'num_heads', None) != entry['num_heads']:
            raise StructureError(f'structure prunes heads of {module_name!r}, which the model '
                                 f'does not have with {entry["num_heads"]} heads')
        module.num_heads = len(entry['kept'])
    for module in model.modules():
        apply_adapter(module)
    for name in structure.get('removed_blocks', []):
        parent_name, child = _split_name(name)
        if name not in modules:
            raise StructureError(f'structure removes block {name!r}, which the model does not '
                                 'have')
        parent = modules[parent_name]
        if isinstance(parent, nn.Sequential):
            delattr(parent, child)
        else:
            setattr(parent, child, RemovedBlock())
    return model


def save_structure(structure: dict, path: str) -> None:
    """Write JSON to a temporary file beside ``path``, then rename: never a half file."""
    validate_structure(structure)
    atomic_write_text(path, json.dumps(structure))


def load_structure(path_or_dict: Union[str, dict]) -> dict:
    if isinstance(path_or_dict, dict):
        structure = path_or_dict
    else:
        try:
            with open(path_or_dict) as f:
                structure = json.load(f)
        except json.JSONDecodeError as e:
            raise StructureError(f'{path_or_dict}: corrupted structure file ({e})') from None
    validate_structure(structure)
    return structure
