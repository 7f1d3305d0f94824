# DMS search of ResNet-50 on ImageNet-1k (mmpretrain): width of every layer and depth of every
# stage, searched for ~1/10 of a retraining schedule, then retrained (resnet50_dms_in1k_retrain).
# ---- fill these -------------------------------------------------------------------------
target_ratio = 0.5        # final FLOPs as a fraction of ResNet-50's 4.1 GFLOPs
structure_lr = 5e-3
resource_loss_weight = 1.0
search_epochs = 10
# -------------------------------------------------------------------------------------------
_base_ = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'

architecture = _base_.model
model = dict(
    _delete_=True,
    type='mmdms.DMSAlgorithm',
    architecture=architecture,
    mutator=dict(type='mmdms.DMSMutator'),
    target_ratio=target_ratio,
    resource='flops',
    loss_weight=resource_loss_weight,
    input_shape=(1, 3, 224, 224))
optim_wrapper = dict(
    _delete_=True,
    constructor='mmdms.DMSOptimWrapperConstructor',
    architecture=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)),
    mutator=dict(optimizer=dict(type='Adam', lr=structure_lr, betas=(0.0, 0.999))))
param_scheduler = dict(
    _delete_=True,
    architecture=[dict(type='CosineAnnealingLR', by_epoch=True, T_max=search_epochs)],
    mutator=[])
custom_hooks = [dict(type='mmdms.DMSSearchHook', decay_fraction=0.8, interval=100)]
model_wrapper_cfg = dict(type='mmdms.DMSDistributedDataParallel')
train_cfg = dict(by_epoch=True, max_epochs=search_epochs, val_interval=1)
