"""DMSMutator: discovers units by tracing, installs their masks, and describes the structure."""
import fnmatch
import types
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdms.export.rewrites import install_forward_rewrites
from mmdms.export.structure import STRUCTURE_VERSION
from mmdms.registry import MASKED_FORWARDS, MODELS
from ..tracing import PruningGraph, build_pruning_graph, trace_channels
from ..units import DTopkBlockUnit, DTopkChannelUnit, DTopkHeadUnit, DTopkUnit
from .resource_model import ResourceModel, build_terms


class _MaskSource:
    """What a patched layer needs to fetch its mask: the mutator and an index into its flat
    mask vector. Stored in the layer's ``__dict__`` (not a closure), so ``copy.deepcopy`` of
    the whole model (EMA, model soups) points the copy's layers at the copy's mutator."""

    def __init__(self, mutator: 'DMSMutator', index: Tensor):
        self.mutator = mutator
        self.index = index

    def __call__(self) -> Tensor:
        flat = self.mutator._masks()['flat']
        if self.index.device != flat.device:
            self.index = self.index.to(flat.device)
        return flat[self.index]


MASK_ATTR = '_dms_mask_source'
BLOCK_ATTR = '_dms_block_source'


def _weight_masked_linear(self, x):
    """``linear(x * m, W) == linear(x, W * m)``: identical results and gradients for ``m``, but
    the product touches the small weight instead of a whole activation tensor."""
    mask = getattr(self, MASK_ATTR)().to(self.weight.dtype)
    return F.linear(x, self.weight * mask, self.bias)


def _weight_masked_conv(self, x):
    """The conv version of :func:`_weight_masked_linear` (mask on the input-channel dim)."""
    mask = getattr(self, MASK_ATTR)().to(self.weight.dtype)
    shape = [1, -1] + [1] * (self.weight.dim() - 2)
    return self._conv_forward(x, self.weight * mask.view(shape), self.bias)


def _input_mask_hook(module, args):
    """Fallback for layers with their own forward: mask the input activation itself."""
    x = args[0]
    dim = module.__dict__['_dms_mask_dim']
    shape = [1] * x.dim()
    shape[dim] = x.shape[dim]
    mask = getattr(module, MASK_ATTR)().to(x.dtype).view(shape)
    return (x * mask, ) + tuple(args[1:])


WEIGHTS_ATTR = '_dms_masked_weights'
SAVED_WEIGHTS_ATTR = '_dms_saved_weights'


def _swap_in_masked_weights(module, args):
    """Pre-hook of a module whose forward applies a submodule's weight itself
    (``F.linear(x, self.qkv.weight, bias)``): during that forward the weight reads ``W * m``
    (mask on its input dim), which equals masking the input, as for stock layers.

    The tensor goes into ``_parameters`` directly (``setattr`` takes only Parameters), so
    gradients reach both ``W`` and ``m``; :func:`_restore_weights` puts ``W`` back, also when
    the forward raises. A stack of saved weights keeps nested calls correct.
    """
    saved = []
    module.__dict__.setdefault(SAVED_WEIGHTS_ATTR, []).append(saved)
    for path, name, source in module.__dict__[WEIGHTS_ATTR]:
        owner = module.get_submodule(path)
        weight = owner._parameters[name]
        mask = source().to(weight.dtype)
        saved.append((owner, name, weight))
        owner._parameters[name] = weight * mask.view([1, -1] + [1] * (weight.dim() - 2))


def _restore_weights(module, args, output):
    """Forward hook (``always_call``) undoing :func:`_swap_in_masked_weights`."""
    stack = module.__dict__.get(SAVED_WEIGHTS_ATTR)
    for owner, name, weight in reversed(stack.pop() if stack else []):
        owner._parameters[name] = weight


def _block_mask_hook(module, args, output):
    """``x + m_b * f(x)``: scale the output of the module that produces ``f(x)``."""
    mutator, unit_idx, element = getattr(module, BLOCK_ATTR)
    return output * mutator._masks()['block'][unit_idx][element].to(output.dtype)


def _stock_forwards() -> tuple:
    """Forwards that compute exactly ``F.linear`` / ``conv`` of the module's own weight.

    mmcv's ``Linear``/``Conv2d``/``Conv3d`` wrappers (mmpretrain's FFN layers, ``ConvModule``
    built with ``type='Conv'``) only special-case empty inputs on torch < 1.5, so they qualify;
    anything else keeps an input-mask hook (a multiply of the whole activation).
    """
    forwards = [nn.Conv1d.forward, nn.Conv2d.forward, nn.Conv3d.forward, nn.Linear.forward]
    try:
        from mmcv.cnn.bricks import wrappers
        forwards += [wrappers.Linear.forward, wrappers.Conv2d.forward, wrappers.Conv3d.forward]
    except ImportError:  # mmcv is optional for plain PyTorch models
        pass
    return tuple(forwards)


STOCK_FORWARDS = _stock_forwards()


def _hard_kept(mask: Tensor) -> Optional[Tensor]:
    """Indices of the kept channels when ``mask`` is a hard 0/1 mask (checks, export-time
    validation), else None: masked norms then run the native kernel on the kept channels."""
    if mask.requires_grad or not bool(((mask == 0) | (mask == 1)).all()):
        return None
    return torch.nonzero(mask).flatten()


def _masked_layer_norm(self, x):
    """LayerNorm whose statistics cover only the kept channels, so a hard-masked LayerNorm
    equals the physically smaller one exactly.

    Hard (0/1) masks run the native kernel on the kept channels (pruned channels output 0;
    every consumer masks them anyway). Soft masks weight the statistics by the mask, with the
    weighted sums as matrix-vector products rather than element-wise reductions.
    """
    m = getattr(self, MASK_ATTR)().to(x.dtype)
    kept = _hard_kept(m)
    if kept is not None:
        if kept.numel() == m.numel():
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        out = x.new_zeros(x.shape)
        out[..., kept] = F.layer_norm(
            x.index_select(-1, kept), (kept.numel(), ),
            None if self.weight is None else self.weight.index_select(0, kept),
            None if self.bias is None else self.bias.index_select(0, kept), self.eps)
        return out
    total = m.sum().clamp_min(1e-6)
    mean = torch.matmul(x, m).unsqueeze(-1) / total
    var = (torch.matmul(x * x, m).unsqueeze(-1) / total - mean * mean).clamp_min(0)
    y = (x - mean) * torch.rsqrt(var + self.eps)
    if self.weight is not None:
        y = torch.addcmul(self.bias, y, self.weight) if self.bias is not None \
            else y * self.weight
    elif self.bias is not None:
        y = y + self.bias
    return y


def _masked_permuted_layer_norm(self, x, *args, **kwargs):
    """A LayerNorm subclass that permutes around ``F.layer_norm`` (mmpretrain's
    ``LayerNorm2d``): :func:`_masked_layer_norm` over the channel dim of the input that the
    trace found. Further arguments (``data_format``) are the traced ones, so they are ignored."""
    dim = self.__dict__['_dms_mask_dim']
    if x.shape[dim] != self.normalized_shape[0]:
        raise RuntimeError(f'{type(self).__name__} was traced normalising dim {dim} of its input '
                           f'({self.normalized_shape[0]} channels), got shape {tuple(x.shape)}')
    return _masked_layer_norm(self, x.movedim(dim, -1)).movedim(-1, dim).contiguous()


def _masked_group_norm(self, x):
    """One-group GroupNorm (statistics over C, H, W) restricted to the kept channels: the
    counterpart of :func:`_masked_layer_norm` for channels-first layouts (PoolFormer)."""
    m = getattr(self, MASK_ATTR)().to(x.dtype)
    kept = _hard_kept(m)
    if kept is not None:
        if kept.numel() == m.numel():
            return F.group_norm(x, 1, self.weight, self.bias, self.eps)
        out = x.new_zeros(x.shape)
        out[:, kept] = F.group_norm(x.index_select(1, kept), 1,
                                    self.weight.index_select(0, kept),
                                    self.bias.index_select(0, kept), self.eps)
        return out
    shape = [1, -1] + [1] * (x.dim() - 2)
    dims = tuple(range(1, x.dim()))
    weights = m.view(shape)
    total = m.sum().clamp_min(1e-6) * (x[0, 0].numel())
    mean = (x * weights).sum(dims, keepdim=True) / total
    var = ((x * x * weights).sum(dims, keepdim=True) / total - mean * mean).clamp_min(0)
    y = (x - mean) * torch.rsqrt(var + self.eps)
    return y * self.weight.view(shape) + self.bias.view(shape)


@MODELS.register_module()
class DMSMutator(nn.Module):
    """Traces a supernet, builds width and depth units, and applies their masks.

    Masks act on the *inputs of channel-mixing layers* (conv, linear, layer norm): a channel
    multiplied by zero there contributes nothing, so a hard-masked supernet computes exactly
    what the physically pruned model computes. A weight that another module's forward applies
    itself (BEiT's ``F.linear(x, self.qkv.weight, bias)``) reads ``W * m`` during that
    forward, which is the same. A removable block ``x + f(x)`` gets
    ``x + m_b * f(x)`` by scaling the output of the module that produces ``f(x)``.

    Args:
        channel_unit_cfg: options for every :class:`DTopkChannelUnit` (lambda_scale, ...).
        block_unit_cfg: options for every :class:`DTopkBlockUnit`.
        head_unit_cfg: options for every :class:`DTopkHeadUnit`.
        prune_depth: build depth units for removable blocks.
        prune_heads: build head units for attention layers.
        importance_metric: ``taylor`` (DMS default), ``snip`` or ``fisher``.
        importance_decay: EMA decay of importance.
        fixed_ratios: ``{pattern: ratio}``: units whose name (as in :meth:`unit_table`,
            e.g. ``bbox_head.head_module.reg_preds.1.0.conv`` or ``depth:backbone.stage3.1.blocks``)
            matches the ``fnmatch`` pattern keep this pruning ratio for the whole search
            (0 keeps them whole); importance still chooses which elements stay. For parts a
            search should not reshape, e.g. a detection head that a short search from scratch
            would cut to nothing. The first matching pattern wins; a pattern that matches no
            unit is an error.
    """

    def __init__(self,
                 channel_unit_cfg: Optional[dict] = None,
                 block_unit_cfg: Optional[dict] = None,
                 head_unit_cfg: Optional[dict] = None,
                 prune_depth: bool = True,
                 prune_heads: bool = True,
                 importance_metric: str = 'taylor',
                 importance_decay: float = 0.99,
                 fixed_ratios: Optional[Dict[str, float]] = None):
        super().__init__()
        self.fixed_ratios = dict(fixed_ratios or {})
        self.channel_unit_cfg = dict(channel_unit_cfg or {})
        self.block_unit_cfg = dict(block_unit_cfg or {})
        self.head_unit_cfg = dict(head_unit_cfg or {})
        self.prune_depth = prune_depth
        self.prune_heads = prune_heads
        self.importance_metric = importance_metric
        self.importance_decay = importance_decay
        self.channel_units = nn.ModuleList()
        self.block_units = nn.ModuleList()
        self.head_units = nn.ModuleList()
        self._head_of_root: Dict[int, tuple] = {}
        self.graph: Optional[PruningGraph] = None
        self._handles: List[Any] = []
        self._cache: Optional[Dict[str, Any]] = None
        self._block_index: Dict[str, tuple] = {}

    # ------------------------------------------------------------------ building
    def prepare_from_supernet(self, model: nn.Module, forward: Callable[[], Any]) -> None:
        """Trace ``forward()`` (which calls ``model``), create units and install masks."""
        if self.graph is not None:
            raise RuntimeError('DMSMutator.prepare_from_supernet was already called')
        for module in install_forward_rewrites(model):  # export installs the same forwards
            self._handles.append((module, '__dict__', 'forward'))
        trace = trace_channels(model, forward)
        self.graph = build_pruning_graph(trace)
        unit_kwargs = dict(decay=self.importance_decay, metric=self.importance_metric)
        for group in self.graph.groups:
            self.channel_units.append(
                DTopkChannelUnit(group.num_elements, **self.channel_unit_cfg, **unit_kwargs))
        if self.prune_depth:
            stages: Dict[str, List[str]] = {}
            for block in trace.blocks:
                stages.setdefault(block.parent, []).append(block.module)
            for blocks in stages.values():
                unit = DTopkBlockUnit(blocks, **self.block_unit_cfg, **unit_kwargs)
                for i, name in enumerate(blocks):
                    self._block_index[name] = (len(self.block_units), i)
                self.block_units.append(unit)
        if self.prune_heads:
            for site in trace.heads:
                for head, nodes in enumerate(site.nodes):
                    for root in self.graph.roots(nodes).tolist():
                        self._head_of_root[root] = (len(self.head_units), head)
                self.head_units.append(
                    DTopkHeadUnit(site.num_heads, site.module, **self.head_unit_cfg,
                                  **unit_kwargs))
        self._fix_ratios()
        compute, params = build_terms(trace, self._gather_index, self._block_index, model)
        self.resource_model = ResourceModel(compute, params,
                                            [u.num_elements for u in self.block_units])
        with torch.no_grad():
            self.original_resources = {
                k: float(v) for k, v in self.resource_model(
                    torch.ones(self._num_channels() + 1),
                    [torch.ones(u.num_elements) for u in self.block_units], hard=True).items()}
        self._install(model)

    def _fix_ratios(self) -> None:
        """Apply ``fixed_ratios`` to the units it names (see the class docstring)."""
        if not self.fixed_ratios:
            return
        names = [row['unit'] for row in self.unit_table()]
        matched = set()
        for name, unit in zip(names, self.units):
            pattern = next((p for p in self.fixed_ratios if fnmatch.fnmatchcase(name, p)), None)
            if pattern is None:
                continue
            ratio = float(self.fixed_ratios[pattern])
            if not 0.0 <= ratio <= unit.max_ratio:
                raise ValueError(f'fixed_ratios[{pattern!r}] = {ratio} for unit {name}: a ratio '
                                 f'must lie in [0, {unit.max_ratio:.4f}] (it keeps '
                                 f'{unit.min_kept} of {unit.num_elements} at least)')
            unit.fix_ratio(ratio)
            matched.add(pattern)
        unmatched = [p for p in self.fixed_ratios if p not in matched]
        if unmatched:
            raise ValueError(f'fixed_ratios patterns {unmatched} match no unit; units are '
                             f'named like {names[:3]} ... (see DMSMutator.unit_table())')

    @property
    def units(self) -> List[DTopkUnit]:
        return list(self.channel_units) + list(self.block_units) + list(self.head_units)

    def _gather_index(self, nodes: Tensor) -> Tensor:
        """Index into the concatenated channel and head masks for each position; positions
        that no unit governs point at the trailing constant 1."""
        offsets, total = [], 0
        for unit in list(self.channel_units) + list(self.head_units):
            offsets.append(total)
            total += unit.num_elements
        head_offset = len(self.channel_units)
        index = torch.full((nodes.numel(), ), total, dtype=torch.long)
        roots = self.graph.roots(nodes)
        for pos, root in enumerate(roots.tolist()):
            element = self.graph.element_of_root.get(root)
            if element is not None:
                index[pos] = offsets[element[0]] + element[1]
                continue
            head = self._head_of_root.get(root)
            if head is not None:
                index[pos] = offsets[head_offset + head[0]] + head[1]
        return index

    def _install(self, model: nn.Module) -> None:
        """Patch the consumers of prunable channels and the branches of removable blocks.

        Everything a patched layer needs lives in its ``__dict__`` (see :class:`_MaskSource`)
        and every hook is a module-level function, so a deep copy of the model is a working,
        independent supernet. ``self._handles`` records ``(module, kind, key)`` for removal.
        """
        modules = dict(model.named_modules())
        handle = model.register_forward_pre_hook(self._reset_cache)
        self._handles.append((model, '_forward_pre_hooks', handle.id))
        patched = set()  # a module shared by several sites (e.g. a head over FPN levels)
        for site in self.graph.trace.consumers:
            key = site.module if site.applied_in is None else (site.module, site.param)
            if key in patched:
                continue  # its input slot ties all sites' channels together: one mask fits all
            patched.add(key)
            index = self._gather_index(site.nodes)
            if bool((index == index.max()).all()) and index.max() == self._num_channels():
                continue  # nothing prunable reaches this layer
            if site.applied_in is not None:
                self._install_weight_mask(modules[site.applied_in], site, index)
                continue
            module = modules[site.module]
            module.__dict__[MASK_ATTR] = _MaskSource(self, index)
            self._handles.append((module, '__dict__', MASK_ATTR))
            if site.kind == 'layer_norm' and type(module).forward is nn.LayerNorm.forward:
                forward = _masked_layer_norm
            elif site.kind == 'layer_norm':  # checked by the tracer: permutes around layer_norm
                forward = _masked_permuted_layer_norm
                module.__dict__['_dms_mask_dim'] = site.dim
                self._handles.append((module, '__dict__', '_dms_mask_dim'))
            elif site.kind == 'group_norm':
                forward = _masked_group_norm
            elif site.kind == 'masked_forward':
                forward = MASKED_FORWARDS.get(type(module).__name__)
            elif type(module).forward in STOCK_FORWARDS and getattr(module, 'groups', 1) == 1:
                forward = _weight_masked_linear if isinstance(module, nn.Linear) \
                    else _weight_masked_conv
            else:
                forward = None
                module.__dict__['_dms_mask_dim'] = site.dim
                handle = module.register_forward_pre_hook(_input_mask_hook)
                self._handles.append((module, '_forward_pre_hooks', handle.id))
            if forward is not None:
                module.forward = types.MethodType(forward, module)
                self._handles.append((module, '__dict__', 'forward'))
        for block in self.graph.trace.blocks:
            if block.module not in self._block_index:
                continue
            unit_idx, element = self._block_index[block.module]
            for branch in block.branches:
                module = modules[branch]
                module.__dict__[BLOCK_ATTR] = (self, unit_idx, element)
                handle = module.register_forward_hook(_block_mask_hook)
                self._handles.append((module, '_forward_hooks', handle.id))
                self._handles.append((module, '__dict__', BLOCK_ATTR))

    def _install_weight_mask(self, caller: nn.Module, site, index: Tensor) -> None:
        """Mask ``site.param`` of ``site.module`` while ``caller``'s forward, which applies
        it, runs (see :func:`_swap_in_masked_weights`); state in ``caller.__dict__``."""
        path = site.module[len(site.applied_in):].lstrip('.') if site.applied_in \
            else site.module
        entries = caller.__dict__.get(WEIGHTS_ATTR)
        if entries is None:
            entries = caller.__dict__[WEIGHTS_ATTR] = []
            caller.__dict__[SAVED_WEIGHTS_ATTR] = []
            # appended: on the root model it must run after the mask cache reset
            pre = caller.register_forward_pre_hook(_swap_in_masked_weights)
            post = caller.register_forward_hook(_restore_weights, always_call=True)
            self._handles += [(caller, '_forward_pre_hooks', pre.id),
                              (caller, '_forward_hooks', post.id),
                              (caller, '_forward_hooks_always_called', post.id),
                              (caller, '__dict__', WEIGHTS_ATTR),
                              (caller, '__dict__', SAVED_WEIGHTS_ATTR)]
        entries.append((path, site.param, _MaskSource(self, index)))

    def _num_channels(self) -> int:
        """Length of the concatenated channel and head masks (the index of the constant 1)."""
        return sum(u.num_elements for u in list(self.channel_units) + list(self.head_units))

    def remove_hooks(self) -> None:
        """Give every patched layer back its class forward and drop the mask hooks."""
        for module, where, key in self._handles:
            getattr(module, where).pop(key, None)
        self._handles.clear()

    # ------------------------------------------------------------------ masks at run time
    def _reset_cache(self, *args) -> None:
        self._cache = None

    def _masks(self) -> Dict[str, Any]:
        if self._cache is None:
            channel = [u.mask() for u in self.channel_units]
            block = [u.mask() for u in self.block_units]
            head = [u.mask() for u in self.head_units]
            if torch.is_grad_enabled():
                for m in channel + block + head:
                    if m.requires_grad:
                        m.retain_grad()
            units = self.units
            device = units[0].ratio.device if units else 'cpu'
            flat = torch.cat(channel + head + [torch.ones(1, device=device)])
            self._cache = dict(channel=channel, block=block, head=head, flat=flat)
        return self._cache

    def resources(self, hard: bool = False) -> Dict[str, Tensor]:
        """Current FLOPs and params: straight-through soft counts (differentiable in every
        ratio), or the hard counts of the model export would produce (``hard=True``).

        Masks are computed afresh so the resource loss does not leak into the task-loss
        gradients that importance is estimated from.
        """
        channel = [u.mask() for u in self.channel_units]
        head = [u.mask() for u in self.head_units]
        block = [u.mask() for u in self.block_units]
        units = self.units
        device = units[0].ratio.device if units else 'cpu'
        flat = torch.cat(channel + head + [torch.ones(1, device=device)])
        return self.resource_model(flat, block, hard=hard)

    def set_mode(self, mode: str) -> None:
        """``soft`` (search), ``hard`` (0/1, equals the exported model) or ``off``."""
        for unit in self.units:
            unit.set_mode(mode)
        self._cache = None

    # ------------------------------------------------------------------ importance & ratios
    @torch.no_grad()
    def update_importance(self, reduce_across_ranks: bool = False) -> None:
        """Fold the gradients of the last backward pass into each unit's importance EMA."""
        if self._cache is None:
            return
        masks = self._cache['channel'] + self._cache['block'] + self._cache['head']
        for unit, mask in zip(self.units, masks):
            unit.tracker.update_from_mask(mask, mask.grad, reduce_across_ranks)
        self._cache = None

    @torch.no_grad()
    def unscale_grads(self, scale: float) -> bool:
        """Divide the gradients of this step's masks and of the ratios by an AMP loss scale;
        return whether all of them are finite."""
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if self._cache is not None:
            grads += [m.grad for key in ('channel', 'block', 'head') for m in self._cache[key]
                      if m.grad is not None]
        finite = True
        for grad in grads:
            grad.div_(scale)
            finite = finite and bool(torch.isfinite(grad).all())
        return finite

    def discard_grads(self) -> None:
        """Forget this step's mask gradients (a skipped AMP step must not update importance)."""
        self._cache = None

    def clamp_ratios(self) -> None:
        for unit in self.units:
            unit.clamp_ratio()

    # ------------------------------------------------------------------ structure
    def structure(self) -> dict:
        """Kept indices per parameter dimension and removed blocks, from the hard masks.

        The result is plain JSON data; :func:`mmdms.export.apply_structure` rebuilds the pruned
        model from it without tracing again.
        """
        pruned_roots = set()
        units = {}
        for group, unit in zip(self.graph.groups, self.channel_units):
            kept = unit.kept_mask()
            pruned_roots.update(group.roots[~kept].tolist())
            units[group.name] = dict(num_elements=unit.num_elements, kept=int(kept.sum()))
        removed_blocks = []
        for unit in self.block_units:
            kept = unit.kept_mask()
            removed_blocks += [b for b, k in zip(unit.blocks, kept.tolist()) if not k]
            units['depth:' + (unit.blocks[0].rsplit('.', 1)[0])] = dict(
                num_elements=unit.num_elements, kept=int(kept.sum()), blocks=unit.blocks)
        heads = {}
        for site, unit in zip(self.graph.trace.heads, self.head_units):
            kept = unit.kept_mask()
            for nodes, keep in zip(site.nodes, kept.tolist()):
                if not keep:
                    pruned_roots.update(self.graph.roots(nodes).tolist())
            heads[site.module] = dict(num_heads=unit.num_elements,
                                      kept=torch.nonzero(kept).flatten().tolist())
            units['heads:' + site.module] = dict(num_elements=unit.num_elements,
                                                 kept=int(kept.sum()))
        slots: Dict[str, Dict[str, dict]] = {}
        for slot in self.graph.trace.slots:
            roots = self.graph.roots(slot.nodes).tolist()
            kept = [i for i, r in enumerate(roots) if r not in pruned_roots]
            if len(kept) < len(roots):
                slots.setdefault(slot.name, {})[str(slot.dim)] = dict(size=len(roots), kept=kept)
        return dict(version=STRUCTURE_VERSION, slots=slots, removed_blocks=removed_blocks,
                    heads=heads, units=units)

    def unit_table(self) -> List[dict]:
        """One row per unit: name, kind, size, and the layers it touches."""
        rows = []
        for group, unit in zip(self.graph.groups, self.channel_units):
            rows.append(dict(unit=group.name, kind='channel', size=unit.num_elements,
                             kept=unit.num_kept(), layers=sorted({p.rsplit('.', 1)[0]
                                                                  for p in group.producers})))
        for unit in self.block_units:
            rows.append(dict(unit='depth:' + unit.blocks[0].rsplit('.', 1)[0], kind='block',
                             size=unit.num_elements, kept=unit.num_kept(), layers=unit.blocks))
        for unit in self.head_units:
            rows.append(dict(unit='heads:' + unit.module_name, kind='head', size=unit.num_elements,
                             kept=unit.num_kept(), layers=[unit.module_name]))
        return rows
