"""CI-sized run of the CIFAR-10 DMS_np investigation driver
(``tools/experiments/cifar10_dms_ablation.py --smoke``): every variant runs with its overrides
in its own work dir, the diagnostic full-retrain arm reuses the variant's search, the table
reports the runs' own numbers, and a second invocation trains nothing."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from mmdms_testing import REPO

DRIVER = osp.join(REPO, 'tools', 'experiments', 'cifar10_dms_ablation.py')


def run_driver(*args):
    return subprocess.run([sys.executable, DRIVER, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    work = tmp_path_factory.mktemp('exp_cifar10_ablation_smoke')
    proc = run_driver('--smoke', '--work-dir', str(work))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(work=work, stdout=proc.stdout)


def result(work, variant, arm, seed=0):
    with open(osp.join(work, variant, 'results', f'{arm}_b0.5_s{seed}.json')) as f:
        return json.load(f)


def test_variants_run_with_their_own_overrides(smoke):
    work = smoke['work']
    short = result(work, 'uniform_short_schedule', 'uniform')
    assert short['total_iters'] == 16  # the variant's total_iters, not the base's 20
    assert result(work, 'uniform_short_schedule', 'uniform', seed=1)['seed'] == 1  # own seeds
    assert not osp.exists(osp.join(work, 'widths_only', 'results', 'dms_np_b0.5_s1.json'))
    with open(osp.join(work, 'uniform_short_schedule', 'experiment.json')) as f:
        assert json.load(f)['total_iters'] == 16
    widths_only = result(work, 'widths_only', 'dms_np')
    assert not [u for u in widths_only['widths'] if u['kind'] == 'block']  # no depth units
    for r in (short, widths_only):
        assert abs(r['flops_ratio'] - 0.5) < 0.02


def test_full_retrain_reuses_the_search_and_trains_every_iteration(smoke):
    work = smoke['work']
    full = result(work, 'widths_only', 'dms_full_retrain')
    dms = result(work, 'widths_only', 'dms_np')
    assert full['structure'] == dms['structure']  # the same searched structure
    assert full['iters'] == dict(retrain=20)
    assert full['search_iters_not_counted'] == 4
    assert dms['iters'] == dict(search=4, retrain=16)
    assert full['flops'] == dms['flops']


def test_table_reports_each_runs_own_numbers(smoke):
    work = smoke['work']
    with open(osp.join(work, 'cifar10_ablation.json')) as f:
        table = json.load(f)
    got = {(r['variant'], r['arm']): r['top1']['values'] for r in table['rows']}
    assert set(got) == {('uniform_short_schedule', 'uniform'), ('widths_only', 'dms_np'),
                        ('widths_only', 'dms_full_retrain')}
    seeds = {('uniform_short_schedule', 'uniform'): [0, 1]}
    for (variant, arm), values in got.items():
        assert values == [pytest.approx(result(work, variant, arm, seed)['top1'])
                          for seed in seeds.get((variant, arm), [0])]
    text = open(osp.join(work, 'results.md')).read()
    assert '<!-- cifar10_ablation:begin -->' in text and '**Final**' in text
    assert osp.isfile(osp.join(work, 'cifar10_ablation.png'))


def test_second_invocation_trains_nothing(smoke):
    proc = run_driver('--smoke', '--work-dir', str(smoke['work']))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('done earlier') == 4
    assert 'step done' not in proc.stdout


def test_unknown_variant_is_refused_with_the_known_names(tmp_path):
    proc = run_driver('--smoke', '--work-dir', str(tmp_path), '--variants', 'nope')
    assert proc.returncode != 0
    assert "unknown variants ['nope']" in proc.stderr and 'widths_only' in proc.stderr
