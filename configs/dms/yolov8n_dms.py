# DMS search of YOLOv8 on COCO (MMYOLO), as in the paper: a deepen 0.5 / widen 0.5 supernet
# searched to the FLOPs of YOLOv8-n for 30 epochs, then retrained (yolov8n_dms_retrain.py).
# ---- fill these -------------------------------------------------------------------------
target_ratio = 0.237      # FLOPs of YOLOv8-n / FLOPs of the d0.5-w0.5 supernet (4.40G / 18.6G)
structure_lr = 5e-3       # Adam lr of the pruning ratios
resource_loss_weight = 1.0
search_epochs = 30
# -------------------------------------------------------------------------------------------
_base_ = 'mmyolo::yolov8/yolov8_s_syncbn_fast_8xb16-500e_coco.py'

deepen_factor = 0.5
widen_factor = 0.5
architecture = _base_.model
architecture.backbone.deepen_factor = deepen_factor
architecture.backbone.widen_factor = widen_factor
architecture.neck.deepen_factor = deepen_factor
architecture.neck.widen_factor = widen_factor
architecture.bbox_head.head_module.widen_factor = widen_factor

model = dict(
    _delete_=True,
    type='mmdms.DMSAlgorithm',
    architecture=architecture,
    mutator=dict(type='mmdms.DMSMutator'),
    target_ratio=target_ratio,
    resource='flops',
    loss_weight=resource_loss_weight,
    input_shape=(1, 3, 640, 640))

optim_wrapper = dict(
    _delete_=True,
    constructor='mmdms.DMSOptimWrapperConstructor',
    architecture=dict(
        type='OptimWrapper',
        clip_grad=dict(max_norm=10.0),
        optimizer=dict(type='SGD', lr=_base_.base_lr, momentum=0.937,
                       weight_decay=_base_.weight_decay, nesterov=True,
                       batch_size_per_gpu=_base_.train_batch_size_per_gpu),
        constructor='YOLOv5OptimizerConstructor'),
    mutator=dict(optimizer=dict(type='Adam', lr=structure_lr, betas=(0.0, 0.999))))

# MMYOLO's YOLOv5ParamSchedulerHook drives a single optimizer; DMS has two, so the same
# warmup + linear decay is written as standard schedulers on the weights only.
param_scheduler = dict(
    _delete_=True,
    architecture=[
        dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
        dict(type='LinearLR', start_factor=1.0, end_factor=_base_.lr_factor, by_epoch=True,
             begin=0, end=search_epochs),
    ],
    mutator=[])
default_hooks = dict(param_scheduler=dict(_delete_=True, type='ParamSchedulerHook'))
# No EMA during the search (it would average the pruning ratios too) and one pipeline.
custom_hooks = [dict(type='mmdms.DMSSearchHook', decay_fraction=0.8, interval=50)]
model_wrapper_cfg = dict(type='mmdms.DMSDistributedDataParallel')
# configs inherited through `mmyolo::` get `_scope_` on every typed dict; the runner passes it on
# to the collate function as a keyword, which yolov5_collate rejects
train_dataloader = dict(collate_fn=dict(_delete_=True, type='yolov5_collate'))
train_cfg = dict(
    _delete_=True, type='EpochBasedTrainLoop', max_epochs=search_epochs, val_interval=10)
