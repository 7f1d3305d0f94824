# DMS search of DeiT-tiny on ImageNet-1k: embedding width, MLP widths, attention heads and
# encoder depth, for ~1/10 of the 300-epoch schedule, then retrained.
# ---- fill these -------------------------------------------------------------------------
target_ratio = 0.8        # final FLOPs as a fraction of DeiT-tiny's
structure_lr = 5e-3
resource_loss_weight = 1.0
search_epochs = 30
# -------------------------------------------------------------------------------------------
_base_ = 'mmpretrain::deit/deit-tiny_4xb256_in1k.py'

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
    architecture=dict(
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
        paramwise_cfg=dict(
            norm_decay_mult=0.0,
            bias_decay_mult=0.0,
            custom_keys={
                '.cls_token': dict(decay_mult=0.0),
                '.pos_embed': dict(decay_mult=0.0)
            }),
        clip_grad=dict(max_norm=5.0)),
    mutator=dict(optimizer=dict(type='Adam', lr=structure_lr, betas=(0.0, 0.999))))
param_scheduler = dict(
    _delete_=True,
    architecture=[
        dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=3,
             convert_to_iter_based=True),
        dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=3),
    ],
    mutator=[])
custom_hooks = [dict(type='mmdms.DMSSearchHook', decay_fraction=0.8, interval=100)]
model_wrapper_cfg = dict(type='mmdms.DMSDistributedDataParallel')
train_cfg = dict(by_epoch=True, max_epochs=search_epochs, val_interval=1)
