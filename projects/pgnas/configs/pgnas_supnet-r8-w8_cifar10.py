# Train the PGNAS supernet: weights and per-branch drop rates p (concrete dropout, tau=0.2,
# p initialised at 0.1) end to end on 10k CIFAR-10 training images.
_base_ = [
    '_base_/models/supnet_r8_w8.py', '_base_/datasets/cifar10_cached.py',
    '_base_/schedules/cifar10_sgd_cosine.py', '_base_/default_runtime.py'
]
model = dict(data_preprocessor={{_base_.data_preprocessor}})
