# SupNet-R, CPU size: a ResNet-8-style CIFAR net (stem + 3 stages x 1 basic block, widths
# 8/16/32) whose six 3x3 convs are mixed ops of parallel 1x1 / 3x3 / 3x3-dilation-2 branches,
# each branch gated by one concrete-dropout unit over its input channels (18 units).
num_train_samples = 10000  # N: keep equal to 10 * train_per_class
# l^2 / N acts as a weight decay: l = sqrt(5e-4 * N) matches the 5e-4 of the ungated weights.
length_scale = (5e-4 * num_train_samples)**0.5

model = dict(
    type='pgnas.PGNASClassifier',
    num_train_samples=num_train_samples,
    length_scale=length_scale,
    backbone=dict(
        type='pgnas.SupNetR',
        stage_channels=(8, 16, 32),
        stage_blocks=(1, 1, 1),
        stem_channels=8,
        branches=[
            dict(name='k1', kernel_size=1, dilation=1),
            dict(name='k3', kernel_size=3, dilation=1),
            dict(name='k3d2', kernel_size=3, dilation=2),
        ],
        dropout_cfg=dict(
            init_drop_rate=0.1, temperature=0.2, learnable=True, eval_mode='mean')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=32,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
