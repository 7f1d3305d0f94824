"""Strip an MMEngine training checkpoint to ``dict(state_dict, meta)`` for search and test.

A checkpoint written by ``Runner.train`` also pickles the message hub, whose ``HistoryBuffer``
objects reference their statistics methods through ``getattr``; torch >= 2.6 loads with
``weights_only=True`` and refuses that (``mmdms.utils.setup_torch_load`` does not allow-list
it). The published file holds tensors and plain metadata only, so ``tools/test.py`` and the
search loop load it safely.

    python projects/pgnas/tools/publish_checkpoint.py IN.pth OUT.pth

Only publish checkpoints you trust (your own training runs): reading the full training
checkpoint needs ``weights_only=False``.
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..')))
from projects.pgnas.pgnas.fileio import atomic_write  # noqa: E402


def publish(src: str, dst: str) -> dict:
    checkpoint = torch.load(src, map_location='cpu', weights_only=False)
    if 'state_dict' not in checkpoint:
        raise KeyError(f'{src} has no "state_dict": not an MMEngine checkpoint')
    meta = checkpoint.get('meta', {})
    keep = {k: meta[k] for k in ('epoch', 'iter', 'seed', 'experiment_name', 'mmengine_version')
            if k in meta and isinstance(meta[k], (int, float, str))}
    keep['published_from'] = osp.basename(src)
    out = dict(state_dict={k: v.detach().cpu() for k, v in checkpoint['state_dict'].items()},
               meta=keep)
    atomic_write(dst, lambda tmp: torch.save(out, tmp))
    return out


def main():
    parser = argparse.ArgumentParser(description='Strip a training checkpoint to weights')
    parser.add_argument('src', help='checkpoint written by tools/train.py')
    parser.add_argument('dst', help='output path (written atomically)')
    args = parser.parse_args()
    out = publish(args.src, args.dst)
    torch.load(args.dst, weights_only=True)  # what tools/test.py will do
    print(f'{args.dst}: {len(out["state_dict"])} tensors, meta={out["meta"]}')


if __name__ == '__main__':
    main()
