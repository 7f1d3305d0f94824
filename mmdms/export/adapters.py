"""Small per-class adapters: attributes that a module's forward reads and that must follow
its pruned parameters. Generic PyTorch layers are handled by :func:`update_layer_attributes`;
everything architecture-specific lives here, registered by class name."""
from torch import nn

from mmdms.registry import PRUNING_ADAPTERS


def update_layer_attributes(module: nn.Module, was_depthwise: bool = False) -> None:
    """Make ``in_channels``/``out_features``/``num_features``/... match the sliced tensors."""
    if isinstance(module, nn.modules.conv._ConvNd):
        module.out_channels = module.weight.shape[0]
        if was_depthwise:
            module.groups = module.in_channels = module.out_channels
        else:
            module.in_channels = module.weight.shape[1] * module.groups
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = module.weight.shape
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        tensor = module.weight if module.weight is not None else module.running_mean
        if tensor is not None:
            module.num_features = tensor.shape[0]
    elif isinstance(module, nn.LayerNorm):
        if module.weight is not None:
            module.normalized_shape = (module.weight.shape[0], )
    elif isinstance(module, nn.GroupNorm):
        if module.weight is not None:  # whole groups are pruned: the group size stays
            per_group = module.num_channels // module.num_groups
            module.num_channels = module.weight.shape[0]
            module.num_groups = 1 if module.num_groups == 1 else \
                module.num_channels // per_group


@PRUNING_ADAPTERS.register_module(name='CSPLayerWithTwoConv')
def csp_layer_with_two_conv(module: nn.Module) -> None:
    """mmyolo's C2f splits ``main_conv``'s output into two halves of ``mid_channels``."""
    module.mid_channels = module.main_conv.conv.out_channels // 2


def apply_adapter(module: nn.Module) -> bool:
    """Run the adapter registered for ``module``'s class, if any; True when one ran."""
    adapter = PRUNING_ADAPTERS.get(type(module).__name__)
    if adapter is None:
        return False
    adapter(module)
    return True


@PRUNING_ADAPTERS.register_module(name='MultiheadAttention')
def multihead_attention(module: nn.Module) -> None:
    """mmpretrain's attention reshapes its output to ``embed_dims = num_heads * head_dims``."""
    if hasattr(module, 'head_dims') and hasattr(module, 'embed_dims'):
        module.embed_dims = module.num_heads * module.head_dims


@PRUNING_ADAPTERS.register_module(name='VAN')
def van(module: nn.Module) -> None:
    """mmpretrain's VAN reshapes each stage output to ``block.out_channels`` of the stage's
    last block: keep it equal to the block's (pruned) width."""
    for block in module.modules():
        if type(block).__name__ == 'VANBlock':
            block.out_channels = block.norm1.num_features


@PRUNING_ADAPTERS.register_module(name='LayerNorm2d')
def layer_norm_2d(module: nn.Module) -> None:
    """mmpretrain's channels-first LayerNorm keeps its width in ``num_channels`` as well."""
    module.num_channels = module.normalized_shape[0]


@PRUNING_ADAPTERS.register_module(name='GRN')
def grn(module: nn.Module) -> None:
    """ConvNeXt-V2's GRN: ``in_channels`` follows the sliced ``gamma``/``beta``."""
    module.in_channels = module.gamma.shape[0]


@PRUNING_ADAPTERS.register_module(name='HorNetLayerNorm')
def hornet_layer_norm(module: nn.Module) -> None:
    """HorNet's LayerNorm passes ``normalized_shape`` to ``F.layer_norm`` (channels_last)."""
    module.normalized_shape = (module.weight.shape[0], )


@PRUNING_ADAPTERS.register_module(name='gnConv')
def gn_conv(module: nn.Module) -> None:
    """HorNet's gnConv splits ``proj_in``'s output by ``self.dims``: ``dims[i]`` is the input
    width of ``projs[i]`` and the last one that of ``proj_out`` (each is its own unit)."""
    dims = [p.weight.shape[1] for p in module.projs] + [module.proj_out.weight.shape[1]]
    if module.proj_in.weight.shape[0] != dims[0] + sum(dims):
        raise ValueError(f'gnConv: proj_in has {module.proj_in.weight.shape[0]} outputs, but the '
                         f'pruned widths {dims} need {dims[0] + sum(dims)}')
    module.dims = dims
