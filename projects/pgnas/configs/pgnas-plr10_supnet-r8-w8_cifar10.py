# Variant of the PGNAS supernet: p_logit learns at 10x the weights' rate instead of 30x (same
# 8 epochs, same data). Asks whether a slower p keeps the posterior less collapsed.
_base_ = ['./pgnas_supnet-r8-w8_cifar10.py']
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'dropout.p_logit': dict(decay_mult=0., lr_mult=10.)}))
