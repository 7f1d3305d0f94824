# Baseline supernet: the same recipe and budget, but the drop rate is predefined (p = 0.1 for
# every unit, not learned), i.e. uniform random path/channel dropout as in one-shot NAS.
_base_ = ['./pgnas_supnet-r8-w8_cifar10.py']
model = dict(backbone=dict(dropout_cfg=dict(init_drop_rate=0.1, learnable=False)))
