"""The driver's report statistics (pure functions, no runs)."""
import argparse
import importlib.util
import itertools
import os.path as osp

import pytest

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))


@pytest.fixture(scope='module')
def driver():
    spec = importlib.util.spec_from_file_location(
        'pgnas_run_experiment', osp.join(REPO, 'projects/pgnas/tools/run_experiment.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_expected_best_of_matches_brute_force(driver):
    values = [3., 1., 4., 1.5, 5., 9., 2.]
    for c in (1, 2, 3, 7):
        subsets = list(itertools.combinations(values, c))
        brute = sum(max(s) for s in subsets) / len(subsets)
        assert driver.expected_best_of(values, c) == pytest.approx(brute)
    assert driver.expected_best_of(values, 1) == pytest.approx(sum(values) / len(values))


def test_aggregate_pairs_winners_by_seed(driver):
    def search(accs):
        cands = [dict(index=i, acc=a, cost_ratio=1.) for i, a in enumerate(accs)]
        best = {str(c): max(cands[:c], key=lambda r: (r['acc'], -r['index']))
                for c in (2, 4)}
        return dict(candidates=cands, best=best)

    searches = {('pgnas', 0): search([50, 52, 51, 53]), ('uniform', 0): search([49, 51, 54, 40]),
                ('pgnas', 1): search([51, 50, 50, 50]), ('uniform', 1): search([48, 50, 50, 47])}
    tests = {'pgnas_seed0_best_of_4': 52.5, 'uniform_seed0_best_of_4': 52.0,
             'pgnas_seed1_best_of_4': 50.0, 'uniform_seed1_best_of_4': 49.0}
    args = argparse.Namespace(report_at=[2, 4])
    agg, paired = driver.aggregate(args, searches, tests)
    assert [p['heldout_acc'] for p in agg['pgnas']['4']['per_seed']] == [53, 51]
    assert agg['pgnas']['4']['heldout_mean_std'] == (52, pytest.approx(2**0.5))
    assert agg['uniform']['2']['pooled']['n'] == 4
    p4 = paired['pgnas-uniform@4']
    assert p4['heldout_diff'] == [-1, 1] and p4['heldout_wins'] == 1
    assert p4['test_diff'] == [pytest.approx(0.5), pytest.approx(1.0)] and p4['test_wins'] == 2
    p2 = paired['pgnas-uniform@2']
    assert p2['test_diff'] == [None, None] and p2['test_diff_mean_std'] == (None, None)
    assert set(paired) == {'pgnas-uniform@2', 'pgnas-uniform@4'}


def test_variant_option_plans_named_variants(driver):
    base = ['--work-dir', 'w', '--seeds', '0', '1', '--variant-seeds', '0', '2']
    # no --variant: the main experiment only
    args = driver.parse_args(base)
    assert args.variant == []
    assert 'pgnas_plr10' not in driver.active_supernets(args)
    assert {n for n, _ in driver.active_searches(args)} == set(driver.MAIN_SEARCHES)
    # a bare --variant keeps meaning plr10, with the names existing work dirs use
    args = driver.parse_args(base + ['--variant'])
    assert args.variant == ['plr10']
    assert driver.active_supernets(args) == ['pgnas', 'fixedp', 'pgnas_plr10']
    assert [r for r in driver.active_searches(args) if r[0] not in driver.MAIN_SEARCHES] == [
        ('plr10_pgnas', 0), ('plr10_uniform', 0), ('plr10_pgnas', 2), ('plr10_uniform', 2)]
    # several named variants: each its own supernet, searches and pair
    args = driver.parse_args(base + ['--variant', 'plr10', 'kl10', '--jobs', '1'])
    assert args.variant == ['plr10', 'kl10'] and args.jobs == 1
    assert driver.active_supernets(args)[2:] == ['pgnas_plr10', 'pgnas_kl10']
    assert driver.SEARCHES['kl10_pgnas'][1] == driver.SEARCHES['kl10_uniform'][1] == 'pgnas_kl10'
    assert driver.SEARCHES['kl10_uniform'][3] == 'kl10_pgnas'
    assert ('kl10_pgnas', 'kl10_uniform') in driver.PAIRS
    assert ('plr10_pgnas', 'plr10_uniform') in driver.PAIRS
    steps = {s[0]: s for s in driver.build_steps(args)}
    assert {'train_pgnas_plr10', 'train_pgnas_kl10', 'search_kl10_pgnas_seed2',
            'search_kl10_uniform_seed0', 'search_plr10_uniform_seed2'} <= set(steps)
    assert 'search_kl10_pgnas_seed1' not in steps  # variant searches use --variant-seeds
    assert driver.VARIANTS['kl10'][0] in steps['train_pgnas_kl10'][1]
    search = steps['search_kl10_uniform_seed0']
    assert 'load_from=w/supernet_pgnas_kl10/supernet_pgnas_kl10.pth' in search[1]
    assert search[2] == ['publish_pgnas_kl10']
    assert set(driver.COLORS) >= set(driver.SEARCHES)
    for name in driver.VARIANTS:
        assert osp.isfile(osp.join(REPO, driver.VARIANTS[name][0]))
    # unknown names are refused
    with pytest.raises(SystemExit):
        driver.parse_args(base + ['--variant', 'nope'])
