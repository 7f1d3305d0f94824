# NAS-Bench-Macro (Su et al., CVPR 2021): 8 searchable layers in stages of 2/3/3 at 64/128/256
# channels, the first of each stage with stride 2; choices 0 = identity (1x1 conv + BN where the
# shape changes), 1 = MBConv e3 k3, 2 = MBConv e6 k5. 3^8 = 6,561 architectures.
candidate_ops = dict(
    id=dict(type='IdentityOp'),
    mb3k3=dict(type='InvertedResidual', expand_ratio=3, kernel_size=3),
    mb6k5=dict(type='InvertedResidual', expand_ratio=6, kernel_size=5))
search_layers = [
    dict(out_channels=channels, stride=2 if i == 0 else 1, choices=['id', 'mb3k3', 'mb6k5'])
    for channels, depth in [(64, 2), (128, 3), (256, 3)] for i in range(depth)
]
supernet = dict(
    type='rlnas.SinglePathSupernet',
    layers=search_layers,
    candidate_ops=candidate_ops,
    stem=dict(out_channels=32, kernel_size=3, stride=1),
    head_channels=1280)
