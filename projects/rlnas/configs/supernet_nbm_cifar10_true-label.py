# Supervised SPOS control: the NAS-Bench-Macro supernet (one uniform path per iteration) on the
# true labels. CPU-sized: 5k images, 4 epochs; W0 is saved to work_dir/init_weights.pth.
# supernet_nbm_cifar10_random-label.py is this config with random labels.
#   PYTHONPATH=. python tools/train.py projects/rlnas/configs/supernet_nbm_cifar10_true-label.py
_base_ = [
    './_base_/spaces/nas_bench_macro.py',
    './_base_/datasets/cifar10_cached.py',
    './_base_/default_runtime.py',
]

model = dict(
    type='rlnas.SPOSClassifier',
    backbone={{_base_.supernet}},
    num_classes=10,
    channels_last=True,
    data_preprocessor={{_base_.data_preprocessor}})

max_epochs = 4
# lr 0.1 diverges within 10 iterations on the path-switching supernet (batch 64); clip too
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True),
    clip_grad=dict(max_norm=5.0))
param_scheduler = dict(
    type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs,
    convert_to_iter_based=True)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
val_cfg = val_dataloader = val_evaluator = None  # one-shot accuracy is measured by the search
custom_hooks = [dict(type='rlnas.SaveInitWeightsHook')]
