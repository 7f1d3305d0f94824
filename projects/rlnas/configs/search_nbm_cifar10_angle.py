# RLNAS step 2: evolution search ranked by the angle between W0 and the trained weights
# (no data needed). load_from = the trained supernet; W0 is read from init_weights.pth beside it.
#   PYTHONPATH=. python tools/train.py projects/rlnas/configs/search_nbm_cifar10_angle.py \
#       --cfg-options load_from=work_dirs/rlnas/supernet_random/epoch_4.pth \
#       train_cfg.constraints.flops=55398912
_base_ = ['./supernet_nbm_cifar10_random-label.py']

train_cfg = dict(
    _delete_=True,
    type='rlnas.EvolutionSearchLoop',
    score='angle',
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
