import json
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))


@pytest.mark.slow
@pytest.mark.skipif(not osp.isfile(osp.join(REPO, 'data/cifar10/meta/classes.txt')),
                    reason='CIFAR-10 is not prepared under data/cifar10')
def test_driver_quick_run_end_to_end(tmp_path):
    """Train both supernets, search, export and test through tools/*.py on toy sizes."""
    work = tmp_path / 'exp'
    subprocess.run([sys.executable, 'projects/pgnas/tools/run_experiment.py', '--quick',
                    '--work-dir', str(work)], cwd=REPO, check=True, timeout=3000)
    with open(work / 'report' / 'summary.json') as f:
        summary = json.load(f)
    assert set(summary['searches']) == {'pgnas_seed0', 'uniform_seed0', 'fixedp_seed0'}
    for name, res in summary['searches'].items():
        assert len(res['heldout_accs']) == 6
        assert res['best']['6']['acc'] == max(res['heldout_accs'])
    # every exported best candidate was loaded and tested by tools/test.py
    assert len([k for k in summary['test_acc'] if '_best_of_' in k]) == 6
    assert all(0 <= v <= 100 for v in summary['test_acc'].values())
    assert (work / 'report' / 'candidates.png').stat().st_size > 1000
