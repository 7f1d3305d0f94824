"""DMSAlgorithm: any mmpretrain / mmdet / mmyolo model plus learnable width, depth and heads."""
import copy
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.model import BaseModel, revert_sync_batchnorm
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from mmdms.export import apply_structure
from mmdms.registry import MODELS
from mmdms.utils import load_config

PIPELINES = ('np', 'p', 'p-')


def build_architecture(architecture: Union[str, dict]) -> nn.Module:
    """Build the wrapped model from a config dict or a (``pkg::``) config path."""
    if isinstance(architecture, nn.Module):
        return architecture
    if isinstance(architecture, str):
        cfg = load_config(architecture)
        model_cfg = copy.deepcopy(cfg.model)
        if cfg.get('default_scope') and '_scope_' not in model_cfg:
            model_cfg['_scope_'] = cfg.default_scope
    else:
        model_cfg = copy.deepcopy(architecture)
    if '_scope_' not in model_cfg and '.' not in str(model_cfg.get('type', '')):
        # a bare type belongs to the config's own scope (e.g. YOLODetector under mmyolo)
        from mmengine.registry import DefaultScope
        current = DefaultScope.get_current_instance()
        if current is not None and current.scope_name != 'mmdms':
            model_cfg['_scope_'] = current.scope_name
    scope = model_cfg.get('_scope_') or str(model_cfg.get('type', '')).split('.')[0]
    if scope in ('mmpretrain', 'mmdet', 'mmyolo'):
        __import__(f'{scope}.models')  # make sure the package registered its models
    return MODELS.build(model_cfg)


def dms_train_step(caller: nn.Module, algorithm: 'DMSAlgorithm', data,
                   optim_wrapper: Union[OptimWrapper, OptimWrapperDict]) -> Dict[str, Tensor]:
    """One search iteration: forward with soft masks, backward once, then step the weights'
    and the structure's optimizers, fold mask gradients into importance, clamp ratios.

    ``caller`` runs the forward (the DDP wrapper in distributed runs, else the algorithm).
    """
    if isinstance(optim_wrapper, OptimWrapperDict):
        wrappers = dict(optim_wrapper.items())
    else:
        wrappers = dict(architecture=optim_wrapper)
    main = wrappers.get('architecture') or wrappers['mutator']
    with main.optim_context(algorithm):
        data = algorithm.data_preprocessor(data, True)
        losses = caller._run_forward(data, mode='loss')
    parsed_loss, log_vars = algorithm.parse_losses(losses)
    scale = loss_scale(main)  # read before update_params: the scaler updates it after stepping
    main.update_params(parsed_loss)
    mutator_wrapper = wrappers.get('mutator')
    # AMP: the mask and ratio gradients carry the loss scale; a step with inf/NaN gradients
    # (skipped by the weights' GradScaler) must not reach importance or ratios either
    finite = algorithm.mutator.unscale_grads(scale) if scale != 1.0 else True
    if finite:
        algorithm.mutator.update_importance(reduce_across_ranks=algorithm.distributed)
    else:
        algorithm.mutator.discard_grads()
    if mutator_wrapper is not None and mutator_wrapper is not main and main.should_update():
        if finite:
            mutator_wrapper.step()
        mutator_wrapper.zero_grad()
    algorithm.mutator.clamp_ratios()
    return log_vars


def loss_scale(optim_wrapper: OptimWrapper) -> float:
    """The loss scale an ``AmpOptimWrapper`` multiplies the loss by (1 without AMP, or when
    its GradScaler is disabled, e.g. on CPU where autocast runs bfloat16 unscaled)."""
    scaler = getattr(optim_wrapper, 'loss_scaler', None)
    if scaler is None or not scaler.is_enabled():
        return 1.0
    return float(scaler.get_scale())


@MODELS.register_module()
class DMSAlgorithm(BaseModel):
    """Differentiable Model Scaling of a wrapped model.

    ``loss`` mode returns the wrapped model's losses plus
    ``loss_resource = loss_weight * log(R / T)`` when the soft resource ``R`` (FLOPs or params,
    straight-through: value = hard count) exceeds the current target ``T``. Other modes run the
    wrapped model with *hard* masks outside training, so validation during the search measures
    the model that export would produce.

    Args:
        architecture: the model to scale, as a config dict or a config path (``mmyolo::...``).
        mutator: :class:`DMSMutator` config.
        target_ratio: final resource target as a fraction of the supernet's (e.g. 0.5).
        resource: ``'flops'`` or ``'params'``.
        loss_weight: ``w`` of the resource loss (the paper's sweep favours 1.0).
        input_shape: demo input used once to trace the model.
        two_sided_hold: once the target has reached ``target_ratio`` (the hold phase of the
            schedule), use ``w * |log(R / T)|`` so the structure settles *on* the budget
            instead of below it. The paper's loss is one-sided; with it our 300-iteration CPU
            search ended at 0.477 for a 0.500 target, because below the target only the weak
            task-loss gradient pulls the ratios back.
        data_preprocessor: leave None to use the wrapped model's.
        pipeline: ``'np'`` search from scratch (DMS_np), ``'p'`` from pretrained weights
            (DMS_p: load them with ``load_from`` / ``init_cfg``), ``'p-'`` structure parameters
            only (weights frozen, BN statistics still updated).
        init_cfg: usual MMEngine init config.
    """

    def __init__(self,
                 architecture: Union[str, dict],
                 mutator: Optional[dict] = None,
                 target_ratio: float = 0.5,
                 resource: str = 'flops',
                 loss_weight: float = 1.0,
                 input_shape: Tuple[int, ...] = (1, 3, 224, 224),
                 pipeline: str = 'np',
                 two_sided_hold: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if not 0.0 < target_ratio <= 1.0:
            raise ValueError(f'target_ratio must be in (0, 1], got {target_ratio}: it is the '
                             'fraction of the supernet\'s resource to keep')
        if resource not in ('flops', 'params'):
            raise ValueError(f"resource must be 'flops' or 'params', got {resource!r}")
        if pipeline not in PIPELINES:
            raise ValueError(f'pipeline must be one of {PIPELINES}, got {pipeline!r}')
        self._architecture_cfg = architecture
        arch = build_architecture(architecture)
        if data_preprocessor is None or (isinstance(data_preprocessor, dict)
                                         and 'type' not in data_preprocessor):
            # the wrapped model's own preprocessor (a type-less dict is the runner passing the
            # config's top-level ``data_preprocessor``, which the wrapped model already used)
            data_preprocessor = getattr(arch, 'data_preprocessor', None)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        from mmengine.dist import is_distributed
        self.distributed = is_distributed()
        if not self.distributed:
            arch = revert_sync_batchnorm(arch)
        self.architecture = arch
        self.target_ratio = target_ratio
        self.resource = resource
        self.loss_weight = loss_weight
        self.input_shape = tuple(input_shape)
        self.pipeline = pipeline
        self.two_sided_hold = two_sided_hold
        self.register_buffer('current_target_ratio', torch.tensor(1.0))
        mutator = dict(mutator or dict(type='DMSMutator'))
        if '.' not in str(mutator.get('type', '')):
            mutator.setdefault('_scope_', 'mmdms')  # ours under any runner's default scope
        self.mutator = MODELS.build(mutator)
        demo = torch.randn(*self.input_shape)
        self.mutator.prepare_from_supernet(self.architecture,
                                           lambda: self._call_tensor(self.architecture, demo))
        if pipeline == 'p-':
            for p in self.architecture.parameters():
                p.requires_grad_(False)

    @staticmethod
    def _call_tensor(model: nn.Module, inputs: Tensor):
        if isinstance(model, BaseModel):
            return model(inputs, mode='tensor')
        return model(inputs)

    # ------------------------------------------------------------------ targets & resources
    def set_target_ratio(self, ratio: float) -> None:
        self.current_target_ratio.fill_(float(ratio))

    @property
    def original_resource(self) -> float:
        return self.mutator.original_resources[self.resource]

    def resource_loss(self) -> Dict[str, Tensor]:
        soft = self.mutator.resources()[self.resource]
        original = self.original_resource
        target = self.current_target_ratio.to(soft) * original
        log_ratio = torch.log(soft / target)
        holding = float(self.current_target_ratio) <= self.target_ratio + 1e-9
        if self.two_sided_hold and holding:
            loss = self.loss_weight * log_ratio.abs()
        else:
            loss = self.loss_weight * torch.clamp(log_ratio, min=0.0)
        # counts are float64 (exact integers); the loss joins the task losses in float32
        return dict(loss_resource=loss.float(),
                    resource_ratio=(soft / original).detach().float(),
                    target_ratio=self.current_target_ratio.detach().clone())

    # ------------------------------------------------------------------ forward
    def forward(self,
                inputs: Tensor,
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        self.mutator.set_mode('soft' if self.training else 'hard')
        if mode == 'loss':
            losses = self.architecture(inputs, data_samples, mode='loss')
            losses.update(self.resource_loss())
            return losses
        return self.architecture(inputs, data_samples, mode=mode)

    def train_step(self, data, optim_wrapper):
        return dms_train_step(self, self, data, optim_wrapper)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.pipeline == 'p-' and mode:
            # DMS_p-: weights frozen, but batch norm keeps adapting to the masked network
            for m in self.architecture.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.train(True)
        return self

    # ------------------------------------------------------------------ export
    def structure(self) -> dict:
        return self.mutator.structure()

    def unmasked_architecture(self) -> nn.Module:
        """A fresh copy of the wrapped model with the current weights and no mask hooks."""
        clean = build_architecture(self._architecture_cfg)
        if not self.distributed:
            clean = revert_sync_batchnorm(clean)
        clean.load_state_dict(self.architecture.state_dict())
        return clean

    def export_architecture(self) -> nn.Module:
        """A physically pruned copy of the wrapped model (original classes, no hooks)."""
        return apply_structure(self.unmasked_architecture(), self.structure())
