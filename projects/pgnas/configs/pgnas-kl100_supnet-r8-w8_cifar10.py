# Variant of the PGNAS supernet: loss_kl weighted x100 (kl_weight=100.0), a 100x stronger prior,
# the same as N = 100 instead of 10k in the KL with l fixed: the entropy term pulling p towards
# 0.5 and the gated kernels' decay (5e-4 -> 5e-2) both grow 100x. Same 8 epochs, same data,
# p_logit lr x30 as the main supernet. Asks whether a stronger prior keeps the learned drop
# rates from collapsing to p ~ 0.
_base_ = ['./pgnas_supnet-r8-w8_cifar10.py']
model = dict(kl_weight=100.0)
