"""CI-sized run of the BCCD DMS-search investigation driver
(``tools/experiments/bccd_dms_ablation.py --smoke``): each variant's overrides reach its
search (resource-loss weight, depth units, the masks' temperature), the diagnostic arm reuses
the variant's search, the table reports the runs' own numbers paired with the reference work
dir's YOLOv8-n of the same seed, and a second invocation trains nothing. Also checks that the
shared search settings build a DMSAlgorithm whose width units use ``dms.lambda_scale``."""
import json
import os.path as osp
import shutil
import subprocess
import sys

import pytest
from mmengine.config import Config

from mmdms_testing import REPO
from mmdms.registry import MODELS
from mmdms.utils import register_all_modules

sys.path.insert(0, osp.join(REPO, 'tools', 'experiments'))
from dmsexp.search_settings import dms_search_settings  # noqa: E402

DRIVER = osp.join(REPO, 'tools', 'experiments', 'bccd_dms_ablation.py')
CIFAR_SMOKE = osp.join(REPO, 'configs', 'experiments', 'cifar10_dms_vs_baselines_smoke.py')
REFERENCE_MAP = {0: 0.25, 1: 0.125}  # a reference work dir's YOLOv8-n results, by seed


def run_driver(*args):
    return subprocess.run([sys.executable, DRIVER, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=900)


def load(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    work = tmp_path_factory.mktemp('exp_bccd_ablation_smoke')
    reference = tmp_path_factory.mktemp('exp_bccd_reference')
    (reference / 'results').mkdir()
    for seed, value in REFERENCE_MAP.items():
        (reference / 'results' / f'reference_s{seed}.json').write_text(json.dumps(dict(
            arm='reference', seed=seed, mAP=value, params=3.0e6,
            per_class=dict(Platelets=dict(AP=0.1)))))
    proc = run_driver('--smoke', '--work-dir', str(work), '--reference-work-dir',
                      str(reference))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(work=work, reference=reference, stdout=proc.stdout)


def result(work, variant, arm, seed):
    return load(osp.join(work, variant, 'results', f'{arm}_s{seed}.json'))


def test_variant_overrides_reach_the_search(smoke):
    work = smoke['work']
    weight2 = Config.fromfile(osp.join(work, 'loss_weight_2', 'runs', 's0', 'dms_search',
                                       'config.py'))
    assert weight2.model.loss_weight == 2.0
    assert 'channel_unit_cfg' not in weight2.model.mutator  # the mutator's default
    soft = Config.fromfile(osp.join(work, 'widths_only_lambda', 'runs', 's1', 'dms_search',
                                    'config.py'))
    assert soft.model.mutator.channel_unit_cfg == dict(lambda_scale=0.25)
    assert soft.model.mutator.prune_depth is False
    assert not osp.exists(osp.join(work, 'widths_only_lambda', 'runs', 's0'))  # own seeds
    widths_only = result(work, 'widths_only_lambda', 'dms_np', 1)
    assert not [u for u in widths_only['widths'] if u['kind'] == 'block']
    assert [u for u in result(work, 'loss_weight_2', 'dms_np', 0)['widths']
            if u['kind'] == 'block']  # depth searched by default


def test_full_retrain_reuses_the_variants_search(smoke):
    full = result(smoke['work'], 'widths_only_lambda', 'dms_full_retrain', 1)
    dms = result(smoke['work'], 'widths_only_lambda', 'dms_np', 1)
    assert full['structure'] == dms['structure'] and full['flops'] == dms['flops']


def test_table_pairs_each_run_with_the_reference_of_its_seed(smoke):
    work = smoke['work']
    table = load(osp.join(work, 'bccd_ablation.json'))
    rows = {(r['variant'], r['arm']): r for r in table['rows']}
    assert set(rows) == {('reference', 'reference'), ('loss_weight_2', 'dms_np'),
                         ('widths_only_lambda', 'dms_np'),
                         ('widths_only_lambda', 'dms_full_retrain')}
    assert rows['reference', 'reference']['mAP']['values'] == [0.25, 0.125]
    for (variant, arm), row in rows.items():
        if variant == 'reference':
            continue
        seed = 0 if variant == 'loss_weight_2' else 1
        got = result(work, variant, arm, seed)['mAP']
        assert row['mAP']['values'] == [pytest.approx(got)]
        assert row['delta_vs_reference'] == pytest.approx(got - REFERENCE_MAP[seed])
    text = open(osp.join(work, 'results.md')).read()
    assert '<!-- bccd_ablation:begin -->' in text and '**Final**' in text
    assert osp.isfile(osp.join(work, 'bccd_ablation.png'))
    assert '(bccd_ablation_widths.png)' in text  # every variant's searched widths
    assert osp.isfile(osp.join(work, 'bccd_ablation_widths.png'))


def test_second_invocation_trains_nothing(smoke):
    proc = run_driver('--smoke', '--work-dir', str(smoke['work']), '--reference-work-dir',
                      str(smoke['reference']))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('done earlier') == 3
    assert 'step done' not in proc.stdout


def test_unknown_variant_is_refused_with_the_known_names(tmp_path):
    proc = run_driver('--smoke', '--work-dir', str(tmp_path), '--variants', 'nope')
    assert proc.returncode != 0
    assert "unknown variants ['nope']" in proc.stderr and 'loss_weight_2' in proc.stderr
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize('lambda_scale', [None, 0.25])
def test_search_settings_set_the_width_units_temperature(lambda_scale):
    register_all_modules(init_default_scope=False)
    exp = Config.fromfile(CIFAR_SMOKE)
    dms = dict(exp.dms.to_dict(), lambda_scale=lambda_scale)
    settings = dms_search_settings(dms, exp.architecture.to_dict(), dict(optimizer={}), [],
                                   0.5, exp.input_shape, 1)
    settings['model']['mutator']['fixed_ratios'] = {'depth:*': 0.0}  # as dms.fixed_ratios
    assert dms_search_settings(dict(dms, fixed_ratios={'depth:*': 0.0}), {}, {}, [], 0.5,
                               exp.input_shape, 1)['model']['mutator'] == \
        settings['model']['mutator']
    algorithm = MODELS.build(settings['model'])
    assert all(u.fixed for u in algorithm.mutator.block_units)
    widths = {u.lambda_scale for u in algorithm.mutator.channel_units}
    assert widths == {1.0 if lambda_scale is None else lambda_scale}
    assert {u.lambda_scale for u in algorithm.mutator.block_units} <= {4.0}  # depth untouched
