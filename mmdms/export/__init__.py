"""Turn hard masks into physically smaller models of the original classes."""
from .adapters import apply_adapter, update_layer_attributes
from .exporter import ExportError, export_pruned, pruned_config
from .pruned_model import build_pruned_model
from .rewrites import forward_rewrite, install_forward_rewrites
from .structure import (RemovedBlock, StructureError, apply_structure, load_structure, save_structure,
                        validate_structure)

__all__ = [
    'apply_structure', 'load_structure', 'save_structure', 'validate_structure',
    'StructureError', 'RemovedBlock', 'apply_adapter', 'update_layer_attributes', 'build_pruned_model', 'export_pruned',
    'pruned_config', 'ExportError', 'forward_rewrite', 'install_forward_rewrites'
]
