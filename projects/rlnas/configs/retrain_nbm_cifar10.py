# Train one architecture of the space from scratch with NAS-Bench-Macro's recipe (50 epochs,
# SGD 0.9, wd 5e-4, batch 256, cosine) on all 50k images, tested on the 10k test images.
# projects/rlnas/tools/export_subnet.py writes a copy of this config with the searched arch.
_base_ = ['./supernet_nbm_cifar10_true-label.py']
arch = '22222222'
model = dict(backbone=dict(fixed_arch=arch))  # a standalone network: only this path is built
custom_hooks = []

train_dataloader = dict(
    batch_size=256, dataset=dict(num_per_class=None))
test_dataset = dict(
    type='rlnas.CachedImageFolder',
    data_root='data/cifar10/test',
    cache_file='work_dirs/rlnas/cifar10_test.npz',
    pipeline={{_base_.test_pipeline}},
    test_mode=True)
test_dataloader = dict(
    batch_size=500,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=test_dataset)
test_evaluator = dict(type='Accuracy', topk=(1, ))
val_dataloader = dict(
    _delete_=True,
    batch_size=500,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=test_dataset)
val_evaluator = dict(_delete_=True, type='Accuracy', topk=(1, ))

max_epochs = 50
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True),
    clip_grad=dict(max_norm=5.0))
param_scheduler = dict(
    type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs,
    convert_to_iter_based=True)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
val_cfg = dict(_delete_=True)
test_cfg = dict()
default_hooks = dict(checkpoint=dict(save_best='accuracy/top1', rule='greater'))
