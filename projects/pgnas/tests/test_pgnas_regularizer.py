import math

import pytest
import torch

from projects.pgnas.pgnas.models import concrete_dropout_kl, dropout_units


def test_kl_matches_hand_computation():
    p = torch.tensor(0.25)
    weight = torch.tensor([[1., 2.], [3., -1.]])  # ||W||^2 = 15
    value = concrete_dropout_kl(p, weight, num_channels=4, length_scale=2., num_samples=100)
    expected = 2.**2 * 0.75 / 200 * 15 + 4 / 100 * (0.25 * math.log(0.25) +
                                                     0.75 * math.log(0.75))
    assert value.item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.225 - 0.0224934, abs=1e-6)


def test_classifier_loss_dict_has_kl(tiny_model):
    model = tiny_model
    model.train()
    units = dropout_units(model)
    modules = dict(model.named_modules())
    # an independent hand computation from the parameters
    expected = 0.
    for name, unit in units.items():
        w = modules[name.rsplit('.', 1)[0]].conv.weight.detach()
        p = torch.sigmoid(unit.p_logit.detach()).item()
        k = w.shape[1]
        expected += 0.7**2 * (1 - p) / (2 * 1000) * w.pow(2).sum().item()
        expected += k / 1000 * (p * math.log(p) + (1 - p) * math.log(1 - p))
    from mmpretrain.structures import DataSample
    samples = [DataSample().set_gt_label(i % 10) for i in range(4)]
    losses = model.loss(torch.randn(4, 3, 32, 32), samples)
    assert set(losses) >= {'loss', 'loss_kl'}
    assert losses['loss_kl'].item() == pytest.approx(expected, rel=1e-5)
    assert losses['drop_rate_mean'].item() == pytest.approx(0.1, abs=1e-6)
    # the KL reaches both the rates and the gated kernels
    losses['loss_kl'].backward()
    unit = next(iter(units.values()))
    assert unit.p_logit.grad is not None and unit.p_logit.grad.abs().item() > 0
    assert len(units) == 18  # 6 mixed convs x 3 branches


def test_paramwise_cfg_turns_weight_decay_off_for_gated_kernels(tiny_model):
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile('projects/pgnas/configs/_base_/schedules/cifar10_sgd_cosine.py')
    wrapper = build_optim_wrapper(tiny_model, cfg.optim_wrapper)
    names = {id(p): n for n, p in tiny_model.named_parameters()}
    seen = set()
    for group in wrapper.optimizer.param_groups:
        for param in group['params']:
            name = names[id(param)]
            if name.endswith('p_logit'):
                assert group['weight_decay'] == 0. and group['lr'] == pytest.approx(3.0)
                seen.add('p')
            elif '.branches.' in name:
                assert group['weight_decay'] == 0. and group['lr'] == pytest.approx(0.1)
                seen.add('gated')
            elif name == 'head.fc.weight':
                assert group['weight_decay'] == pytest.approx(5e-4)
                seen.add('head')
    assert seen == {'p', 'gated', 'head'}


def test_fixed_rate_model_still_regularises_weights(build_tiny):
    model = build_tiny(learnable=False, init_drop_rate=0.1)
    assert not any(n.endswith('p_logit') for n, _ in model.named_parameters())
    assert model.kl_regularizer().requires_grad  # through the kernels


def test_kl_weight_scales_loss_and_gradient_to_p(tiny_model):
    from copy import deepcopy
    strong = deepcopy(tiny_model)
    strong.kl_weight = 10.0  # as built with kl_weight=10.0 (checked below)
    grads = []
    for model in (tiny_model, strong):
        kl = model.kl_regularizer()
        kl.backward()
        unit = next(iter(dropout_units(model).values()))
        grads.append((kl.detach(), unit.p_logit.grad.clone()))
    (kl1, g1), (kl10, g10) = grads
    assert torch.allclose(kl10, 10 * kl1, rtol=1e-5)
    assert g1.abs().item() > 0 and torch.allclose(g10, 10 * g1, rtol=1e-5)


def test_kl_weight_is_validated(build_tiny):
    from projects.pgnas.tests.conftest import build, tiny_model_cfg
    assert build(dict(tiny_model_cfg(), kl_weight=10.0)).kl_weight == 10.0
    assert build_tiny().kl_weight == 1.0
    for bad in (0, -1.0, float('nan'), float('inf'), '10'):
        with pytest.raises(ValueError, match='kl_weight must be a positive'):
            build(dict(tiny_model_cfg(), kl_weight=bad))
