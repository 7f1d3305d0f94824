import os.path as osp
import sys

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
if REPO_ROOT not in sys.path:  # `projects.rlnas` imports from the repository root
    sys.path.insert(0, REPO_ROOT)
