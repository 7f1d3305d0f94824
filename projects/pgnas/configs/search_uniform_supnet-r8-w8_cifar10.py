# Uniform random sampling on the *same* PGNAS supernet: one drop rate for every unit, chosen so
# that a candidate's expected multiply-adds equal the posterior's ('cost_matched').
_base_ = ['./search_pgnas_supnet-r8-w8_cifar10.py']
train_cfg = dict(sampler='uniform', drop_rate='cost_matched')
