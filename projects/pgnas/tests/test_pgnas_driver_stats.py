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
