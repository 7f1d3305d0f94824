"""Fixtures for the test suite; plain helpers live in mmdms_testing.py."""
import os.path as osp

import pytest

from mmdms_testing import REPO


@pytest.fixture
def cifar_available():
    if not osp.isdir(osp.join(REPO, 'data', 'cifar10', 'train')):
        pytest.skip('data/cifar10 not prepared (run tools/dataset_converters/prepare_data.py)')
