"""tools/experiments/cifar10_dms_vs_baselines.py and mmdms.baselines.

Unit tests check the baseline builders on a tiny conv net against hand-computed values; the
smoke test runs the real driver (``--smoke``: tiny CIFAR-10 subset, one seed and budget, a
few iterations per arm) and checks its numbers against independent measurements, then that a
second invocation trains nothing and that an interrupted training resumes.
"""
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch import nn

from mmdms_testing import REPO
from mmdms.analysis import count_complexity
from mmdms.baselines import (OffsetCosineLR, l1_channel_norms, magnitude_structure,
                             strict_ranking, transfer_state, uniform_structure)
from mmdms.export import apply_structure
from mmdms.models.mutators import DMSMutator
from mmdms.registry import MODELS
from mmdms.utils import register_all_modules

register_all_modules(init_default_scope=False)
DRIVER = osp.join(REPO, 'tools', 'experiments', 'cifar10_dms_vs_baselines.py')
ARMS = ('uniform', 'dms_np', 'dms_np_inherit', 'l1_oneshot', 'l1_iterative')


class TinyNet(nn.Module):
    """``a`` and ``b`` produce the same channels (their outputs are added): one unit with
    two producers; ``c`` produces a unit of its own; ``fc`` makes the (frozen) logits."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(3, 6, 1)
        self.c = nn.Conv2d(6, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        y = F.relu(self.a(x) + self.b(x))
        z = F.relu(self.bn(self.c(y)))
        return self.fc(z.mean((2, 3)))


def _traced(seed=0):
    torch.manual_seed(seed)
    model = TinyNet().eval()
    mutator = DMSMutator(prune_depth=False)
    x = torch.randn(1, 3, 8, 8)
    mutator.prepare_from_supernet(model, lambda: model(x))
    units = {mutator.graph.groups[i].name: i for i in range(len(mutator.channel_units))}
    return model, mutator, units


def _clean_copy(model):
    clean = TinyNet()
    clean.load_state_dict(model.state_dict())
    return clean.eval()


def test_l1_norms_equal_hand_computed_per_channel_norms():
    model, mutator, units = _traced()
    assert sorted(units) == ['a', 'c']
    norms = l1_channel_norms(mutator, model.state_dict())
    row_l1 = lambda w: w.detach().abs().sum((1, 2, 3)).double()  # noqa: E731
    torch.testing.assert_close(norms[units['a']], row_l1(model.a.weight) + row_l1(model.b.weight))
    torch.testing.assert_close(norms[units['c']], row_l1(model.c.weight))


def test_l1_norms_of_a_pruned_model_map_back_to_supernet_channels():
    model, mutator, units = _traced()
    full = l1_channel_norms(mutator, model.state_dict())
    structure, _ = magnitude_structure(mutator, 0.5, model.state_dict(), tolerance=0.5)
    pruned = apply_structure(_clean_copy(model), structure)
    again = l1_channel_norms(mutator, pruned.state_dict(), structure)
    row_l1 = lambda w: w.detach().abs().sum((1, 2, 3)).double()  # noqa: E731
    for name, producers in (('a', ('a', 'b')), ('c', ('c', ))):
        i = units[name]
        kept = structure['slots'][f'{name}.weight']['0']['kept']
        assert 0 < len(kept) < full[i].numel()
        # the kept channels are exactly the largest-norm ones of the supernet
        assert set(torch.topk(full[i], len(kept)).indices.tolist()) == set(kept)
        # norms of the pruned weights land on the supernet positions, 0 elsewhere
        expected = torch.zeros_like(full[i])
        expected[kept] = sum(row_l1(getattr(pruned, p).weight) for p in producers)
        torch.testing.assert_close(again[i], expected)


def test_strict_ranking_breaks_ties_by_position():
    ranks = strict_ranking(torch.tensor([1.0, 3.0, 1.0, 0.0, 3.0]))
    assert ranks.tolist() == [2.0, 4.0, 1.0, 0.0, 3.0]


def test_uniform_structure_keeps_the_first_channels_at_the_budget():
    model, mutator, units = _traced()
    structure, report = uniform_structure(mutator, 0.5, tolerance=0.2)
    assert report['within_tolerance']
    kept_a = structure['slots']['a.weight']['0']['kept']
    assert kept_a == list(range(len(kept_a))) and 0 < len(kept_a) < 6
    x = torch.randn(1, 3, 8, 8)
    ratio = count_complexity(apply_structure(_clean_copy(model), structure), x)['flops'] / \
        count_complexity(_clean_copy(model), x)['flops']
    assert ratio == pytest.approx(report['ratio'], rel=1e-6)


def test_iterative_transfer_equals_direct_slicing():
    model, mutator, _ = _traced()
    x = torch.randn(2, 3, 8, 8)
    first, _ = magnitude_structure(mutator, 0.75, model.state_dict(), tolerance=0.3)
    step1 = apply_structure(_clean_copy(model), first)
    step1.load_state_dict(transfer_state(model.state_dict(), dict(slots={}), first))
    second, _ = magnitude_structure(mutator, 0.4, step1.state_dict(), previous=first,
                                    tolerance=0.3)
    step2 = apply_structure(_clean_copy(model), second)
    step2.load_state_dict(transfer_state(step1.state_dict(), first, second))
    direct = apply_structure(_clean_copy(model), second)  # sliced from the supernet at once
    with torch.no_grad():
        torch.testing.assert_close(step2(x), direct(x))
    with pytest.raises(ValueError, match='pruned before'):
        transfer_state(step2.state_dict(), second, first)


def test_offset_cosine_continues_the_global_curve():
    def lrs(total, offset, steps):
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
        scheduler = OffsetCosineLR(opt, total=total, offset=offset, eta_min=0.001)
        values = []
        for _ in range(steps):
            values.append(opt.param_groups[0]['lr'])
            opt.step()
            scheduler.step()
        return values

    whole = lrs(10, 0, 10)
    expected = [0.001 + 0.099 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(10)]
    assert whole == pytest.approx(expected)
    assert lrs(10, 4, 6) == pytest.approx(whole[4:])
    with pytest.raises(ValueError):
        OffsetCosineLR(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), total=5,
                       offset=6)


# ---------------------------------------------------------------------------- driver smoke


def _run_driver(work_dir):
    start = time.time()
    proc = subprocess.run([sys.executable, DRIVER, '--smoke', '--work-dir', str(work_dir)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, time.time() - start


def _load(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    if not osp.isdir(osp.join(REPO, 'data', 'cifar10', 'train')):
        pytest.skip('data/cifar10 not prepared (run tools/dataset_converters/prepare_data.py)')
    work = tmp_path_factory.mktemp('exp_cifar10_smoke')
    proc, seconds = _run_driver(work)
    return dict(work=work, stdout=proc.stdout, seconds=seconds)


def _results(work):
    return {name[:-len('.json')]: _load(osp.join(work, 'results', name))
            for name in os.listdir(osp.join(work, 'results'))}


def test_smoke_every_arm_hits_the_budget_measured_independently(smoke):
    work = smoke['work']
    exp = Config.fromfile(osp.join(REPO, 'configs', 'experiments',
                                   'cifar10_dms_vs_baselines_smoke.py'))
    results = _results(work)
    assert sorted(results) == sorted(f'{arm}_b0.5_s0' for arm in ARMS)
    x = torch.randn(1, 3, 32, 32)
    call = lambda m, inputs: m(inputs, mode='tensor')  # noqa: E731
    supernet = count_complexity(MODELS.build(exp.architecture), x, call)
    for r in results.values():
        model = MODELS.build(dict(type='mmdms.PrunedModel', architecture=exp.architecture,
                                  structure=osp.join(work, r['structure'])))
        counted = count_complexity(model, x, call)
        assert counted['flops'] / supernet['flops'] == pytest.approx(0.5, rel=0.02), r['arm']
        assert counted['flops'] == r['flops'] and counted['params'] == r['params']
        assert r['supernet_flops'] == supernet['flops']


def test_smoke_result_fields_are_consistent(smoke):
    work = smoke['work']
    results = _results(work)
    for r in results.values():
        assert r['total_iters'] == sum(r['iters'].values()) == 20
        assert 0.0 <= r['top1'] <= 100.0
        assert r['flops_ratio'] == pytest.approx(r['flops'] / r['supernet_flops'])
        assert r['cpu_seconds'] > 0 and r['latency_ms'] > 0 and r['attempts'] == 1
        assert {w['kind'] for w in r['widths']} >= {'channel'}
    assert results['dms_np_b0.5_s0']['iters'] == dict(search=4, retrain=16)
    assert results['l1_oneshot_b0.5_s0']['iters'] == dict(pretrain=10, finetune=10)
    assert results['l1_iterative_b0.5_s0']['iters'] == dict(pretrain=10, finetune1=5,
                                                            finetune2=5)
    # both DMS arms retrain the same exported structure; the L1 arms use the uniform arm's
    # common keep factor (same counts, other channels)
    assert results['dms_np_b0.5_s0']['structure'] == \
        results['dms_np_inherit_b0.5_s0']['structure']
    counts = lambda r: [w['kept'] for w in r['widths']]  # noqa: E731
    assert counts(results['l1_oneshot_b0.5_s0']) == counts(results['uniform_b0.5_s0']) == \
        counts(results['l1_iterative_b0.5_s0'])
    # the inheriting DMS arm really started from the exported weights
    step = _load(osp.join(work, 'runs', 's0', 'b0.5', 'dms_np_inherit', 'retrain', 'step.json'))
    assert step['init_weights'].endswith(osp.join('dms_export', 'pruned.pth'))
    # the accuracy in the result is the stock evaluator's, as logged by the test loop
    uniform = _load(osp.join(work, 'runs', 's0', 'b0.5', 'uniform', 'train', 'step.json'))
    assert uniform['metrics']['accuracy/top1'] == results['uniform_b0.5_s0']['top1']


def test_smoke_tables_and_plot_are_written(smoke):
    work = smoke['work']
    text = open(osp.join(work, 'results.md')).read()
    assert '<!-- cifar10:begin -->' in text and '**Final**: all 5 planned runs' in text
    for label in ('Uniform width scaling', 'DMS_np (search + retrain from scratch)',
                  'L1-magnitude, one-shot', 'L1-magnitude, iterative'):
        assert label in text
    report = _load(osp.join(work, 'cifar10.json'))
    assert len(report['summary']) == 5 and len(report['runs']) == 5
    by_arm = {row['arm']: row for row in report['summary']}
    assert by_arm['uniform']['top1_mean'] == _results(work)['uniform_b0.5_s0']['top1']
    with open(osp.join(work, 'cifar10_widths.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_smoke_second_invocation_trains_nothing_and_cut_off_training_resumes(smoke):
    work = smoke['work']
    before = {n: (r, os.path.getmtime(osp.join(work, 'results', n + '.json')))
              for n, r in _results(work).items()}
    _run_driver(work)
    last = _load(osp.join(work, 'invocations.json'))['invocations'][-1]
    assert last['steps_executed'] == 0 and last['failed'] == []
    after = _results(work)
    for name, (result, mtime) in before.items():
        assert after[name] == result
        assert os.path.getmtime(osp.join(work, 'results', name + '.json')) == mtime

    # a training step cut off after its last checkpoint: only that step runs again, resumed
    train_dir = osp.join(work, 'runs', 's0', 'b0.5', 'uniform', 'train')
    os.remove(osp.join(train_dir, 'step.json'))
    os.remove(osp.join(work, 'results', 'uniform_b0.5_s0.json'))
    _run_driver(work)
    last = _load(osp.join(work, 'invocations.json'))['invocations'][-1]
    assert last['steps_executed'] == 1
    step = _load(osp.join(train_dir, 'step.json'))
    assert step['attempts'] == 2 and step['resumed_from'] == 'iter_20.pth'
    assert _results(work)['uniform_b0.5_s0']['top1'] == before['uniform_b0.5_s0'][0]['top1']
