max_epochs = 8

# Gated branch kernels get no ordinary weight decay: the PGNAS prior l^2(1-p)/(2N)||W||^2 in
# loss_kl replaces it. Custom keys match by substring, longest first, so p_logit gets its own
# entry: no decay on a logit, and 30x the learning rate, because SGD at the weights' rate moves
# p by < 0.01 in a CPU-sized schedule (a pilot: 0.100 -> 0.107 max at 1x, 0.01-0.57 at 30x).
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True),
    paramwise_cfg=dict(
        custom_keys={
            '.branches.': dict(decay_mult=0.),
            'dropout.p_logit': dict(decay_mult=0., lr_mult=30.),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=0., by_epoch=True, begin=1,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=4)
val_cfg = dict()
test_cfg = dict()
