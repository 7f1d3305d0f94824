# Variant of the PGNAS supernet: loss_kl weighted x10 (kl_weight=10.0), a 10x stronger prior,
# the same as N = 1k instead of 10k in the KL with l fixed: the entropy term pulling p towards
# 0.5 and the gated kernels' decay (5e-4 -> 5e-3) both grow 10x. Same 8 epochs, same data,
# p_logit lr x30 as the main supernet. Asks whether a stronger prior keeps the learned drop
# rates from collapsing to p ~ 0.
_base_ = ['./pgnas_supnet-r8-w8_cifar10.py']
model = dict(kl_weight=10.0)
