# MobileNet-like ImageNet space of ProxylessNAS / SPOS / RLNAS: a fixed 3x3 stem (32, stride 2)
# and a fixed MBConv e1 k3 (16), then 21 searchable layers in 6 stages; choices MBConv
# e{3,6} x k{3,5,7} and skip, where the first layer of a stage (it changes the shape) may not
# skip. 7^15 * 6^6 ~ 2.2e17 architectures. Head: 1x1 conv to 1280, global pool.
_mb_choices = ['mb3k3', 'mb3k5', 'mb3k7', 'mb6k3', 'mb6k5', 'mb6k7']
candidate_ops = dict(
    skip=dict(type='IdentityOp'),
    mb1k3=dict(type='InvertedResidual', expand_ratio=1, kernel_size=3),
    mb3k3=dict(type='InvertedResidual', expand_ratio=3, kernel_size=3),
    mb3k5=dict(type='InvertedResidual', expand_ratio=3, kernel_size=5),
    mb3k7=dict(type='InvertedResidual', expand_ratio=3, kernel_size=7),
    mb6k3=dict(type='InvertedResidual', expand_ratio=6, kernel_size=3),
    mb6k5=dict(type='InvertedResidual', expand_ratio=6, kernel_size=5),
    mb6k7=dict(type='InvertedResidual', expand_ratio=6, kernel_size=7))
# a single-choice layer is a fixed layer: its weights enter every candidate's angle vector
search_layers = [dict(out_channels=16, stride=1, choices=['mb1k3'])] + [
    dict(out_channels=channels, stride=stride if i == 0 else 1,
         choices=_mb_choices if i == 0 else _mb_choices + ['skip'])
    for channels, depth, stride in [(24, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2),
                                    (320, 1, 1)] for i in range(depth)
]
supernet = dict(
    type='rlnas.SinglePathSupernet',
    layers=search_layers,
    candidate_ops=candidate_ops,
    stem=dict(out_channels=32, kernel_size=3, stride=2),
    head_channels=1280)
