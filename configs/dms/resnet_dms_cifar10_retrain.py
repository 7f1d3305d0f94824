# Retrain the structure found by resnet_dms_cifar10.py (or use the exported pruned_config.py).
# ---- fill these -------------------------------------------------------------------------
structure = 'work_dirs/dms_demo/export/structure.json'
retrain_iters = 3000
# -------------------------------------------------------------------------------------------
_base_ = ['./resnet_dms_cifar10.py']

model = dict(_delete_=True, type='PrunedModel', architecture=_base_.architecture,
             structure=structure)
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=retrain_iters, by_epoch=False,
                        eta_min=1e-4)]
custom_hooks = []
model_wrapper_cfg = None
train_cfg = dict(type='IterBasedTrainLoop', max_iters=retrain_iters, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=1000))
