# Supervised SPOS baseline: evolution ranked by one-shot top-1 on the held-out split (BN
# recalibrated on 4 training batches per candidate). load_from = the true-label supernet.
_base_ = ['./supernet_nbm_cifar10_true-label.py']

train_cfg = dict(
    _delete_=True,
    type='rlnas.EvolutionSearchLoop',
    score='accuracy',
    calib_batches=4,
    val_batches=None,
    val_dataloader={{_base_.heldout_dataloader}},
    constraints=dict(flops=None, params=None),
    input_shape=(3, 32, 32),
    population_size=50,
    top_k=10,
    num_mutation=25,
    num_crossover=25,
    mutate_prob=0.1,
    max_epochs=20,
    seed=0)
param_scheduler = None
custom_hooks = []
default_hooks = dict(checkpoint=None)
