"""Main job of the quick start (until the DMS search lands): the differentiable top-k on a real
model and real data.

It builds mmpretrain's CIFAR ResNet-18 from its shipped config, masks the internal channels of
every residual block (``conv1`` outputs, which nothing else shares) with
:func:`mmdms.models.ops.differentiable_topk`, estimates Taylor importance on real CIFAR-10
batches, and reports how much the loss rises when each block keeps the top-k channels by
importance versus k random channels. Prints a table and writes ``summary.json``.
"""
import argparse
import json
import os
import os.path as osp
import time

import torch
from mmengine.dataset import default_collate
from mmengine.logging import MMLogger
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope

from mmdms.models.ops import ImportanceTracker, differentiable_topk, hard_mask, ratio_for_kept
from mmdms.utils import load_config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default=osp.join(REPO, 'data', 'cifar10'))
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'demo_topk'))
    parser.add_argument('--batches', type=int, default=4, help='batches for importance')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--random-trials', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def build_model_and_data(data_root, batch_size, num_batches):
    import mmpretrain.datasets  # noqa: F401  (registers CustomDataset & transforms)
    import mmpretrain.models  # noqa: F401
    cfg = load_config('mmpretrain::resnet/resnet18_8xb16_cifar10.py')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmengine.registry import DATASETS, MODELS
        model = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()
        dataset = DATASETS.build(
            dict(type='CustomDataset', data_root=osp.join(data_root, 'test'),
                 pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]))
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(dataset), generator=g)[:batch_size * num_batches].tolist()
    batches = [
        model.data_preprocessor(
            default_collate([dataset[i] for i in order[k:k + batch_size]]), training=False)
        for k in range(0, len(order), batch_size)
    ]
    return model, batches


class ChannelMask:
    """Multiplies a conv's output channels by a mask and records the mask's gradient."""

    def __init__(self, conv):
        self.mask = torch.ones(conv.out_channels, requires_grad=True)
        self.tracker = ImportanceTracker(conv.out_channels)
        conv.register_forward_hook(lambda m, i, out: out * self.mask.view(1, -1, 1, 1))


def loss_of(model, batches):
    with torch.no_grad():
        return sum(float(model.loss(**b)['loss']) for b in batches) / len(batches)


def main():
    args = parse_args()
    logger = MMLogger.get_instance('mmdms_demo', log_level='INFO')
    if not osp.isdir(osp.join(args.data_root, 'test')):
        raise FileNotFoundError(f'{args.data_root}/test not found: run '
                                'tools/dataset_converters/prepare_data.py first')
    torch.manual_seed(args.seed)
    start = time.time()
    model, batches = build_model_and_data(args.data_root, args.batch_size, args.batches)
    blocks = [m for m in model.backbone.modules() if type(m).__name__ == 'BasicBlock']
    masks = [ChannelMask(block.conv1) for block in blocks]
    logger.info(f'{len(masks)} masked blocks, {len(batches)} real CIFAR-10 batches')

    for step, batch in enumerate(batches):  # Taylor importance, (m * dL/dm)^2 with EMA
        loss = model.loss(**batch)['loss']
        grads = torch.autograd.grad(loss, [m.mask for m in masks])
        for m, g in zip(masks, grads):
            m.tracker.update_from_mask(m.mask, g)
        logger.info(f'importance step {step + 1}/{len(batches)}: loss {float(loss):.4f}')

    base = loss_of(model, batches)
    rows = []
    g = torch.Generator().manual_seed(args.seed)
    for keep in (0.75, 0.5, 0.25):
        for m in masks:
            n = m.mask.numel()
            ratio = torch.tensor(ratio_for_kept(n, round(keep * n)))
            m.mask.data = hard_mask(differentiable_topk(m.tracker.importance, ratio))
        by_importance = loss_of(model, batches)
        kept = [int(m.mask.sum()) for m in masks]
        random_losses = []
        for _ in range(args.random_trials):
            for m, k in zip(masks, kept):
                m.mask.data = torch.zeros_like(m.mask)
                m.mask.data[torch.randperm(m.mask.numel(), generator=g)[:k]] = 1
            random_losses.append(loss_of(model, batches))
        rows.append(dict(keep_ratio=keep, kept=kept, loss_importance=by_importance,
                         loss_random_mean=sum(random_losses) / len(random_losses),
                         loss_random=random_losses))
    for m in masks:
        m.mask.data = torch.ones_like(m.mask)

    print(f'\nDifferentiable top-k on mmpretrain ResNet-18 (CIFAR), real CIFAR-10, '
          f'unpruned loss {base:.4f}')
    print(f'{"keep":>6} {"channels kept per block":>40} {"loss, top-k":>12} {"loss, random":>13}')
    for r in rows:
        print(f'{r["keep_ratio"]:>6.2f} {str(r["kept"][:4])[:-1] + ", ...]":>40} '
              f'{r["loss_importance"]:>12.4f} {r["loss_random_mean"]:>13.4f}')
    os.makedirs(args.work_dir, exist_ok=True)
    summary = dict(unpruned_loss=base, rows=rows, seconds=time.time() - start)
    tmp = osp.join(args.work_dir, 'summary.json.tmp')
    with open(tmp, 'w') as f:
        json.dump(summary, f, indent=2)
    os.replace(tmp, osp.join(args.work_dir, 'summary.json'))
    print('Note: the weights are untrained (no checkpoint can be downloaded here), so the '
          'Taylor score measures sensitivity of a random network; the DMS search (configs/dms) '
          'learns ratios and weights together.')
    print(f'summary written to {osp.join(args.work_dir, "summary.json")} '
          f'({summary["seconds"]:.1f} s)')


if __name__ == '__main__':
    main()
