# DMS search (DMS_np) on CIFAR-10 with mmpretrain's CIFAR ResNet-18, narrowed to 16 base
# channels so it runs on CPU (the supernet: ~35 MFLOPs per image).
# ---- fill these -------------------------------------------------------------------------
target_ratio = 0.5        # final FLOPs as a fraction of the supernet's
structure_lr = 5e-3       # Adam lr of the pruning ratios (paper: 5e-3)
resource_loss_weight = 1.0
search_iters = 300        # ~1/10 of a retraining schedule in the paper; CPU-sized here
# -------------------------------------------------------------------------------------------
_base_ = ['../_base_/datasets/cifar10_jpg.py', '../_base_/dms_runtime.py']

architecture = dict(
    _scope_='mmpretrain',
    type='ImageClassifier',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        type='ResNet_CIFAR', depth=18, stem_channels=16, base_channels=16, num_stages=4,
        out_indices=(3, ), style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead', num_classes=10, in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))

model = dict(
    type='DMSAlgorithm',
    architecture=architecture,
    mutator=dict(type='DMSMutator'),
    target_ratio=target_ratio,
    resource='flops',
    loss_weight=resource_loss_weight,
    input_shape=(1, 3, 32, 32))

optim_wrapper = dict(
    constructor='DMSOptimWrapperConstructor',
    architecture=dict(
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)),
    mutator=dict(optimizer=dict(type='Adam', lr=structure_lr, betas=(0.0, 0.999))))
param_scheduler = dict(
    architecture=[dict(type='CosineAnnealingLR', T_max=search_iters, by_epoch=False,
                       eta_min=1e-3)],
    mutator=[])

train_cfg = dict(type='IterBasedTrainLoop', max_iters=search_iters, val_interval=search_iters)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                     interval=search_iters // 2, max_keep_ckpts=2))
custom_hooks = [dict(type='DMSSearchHook', decay_fraction=0.8, interval=10)]
log_processor = dict(by_epoch=False)
