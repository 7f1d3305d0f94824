import json
import logging
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmpretrain.structures import DataSample
from torch.utils.data import DataLoader

from projects.pgnas.pgnas.engine import PGNASSearchLoop
from projects.pgnas.pgnas.models import sample_candidate
from projects.pgnas.tests.conftest import build, tiny_model_cfg, warm_up_bn


def _loader(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n, ), generator=g)
    items = [dict(inputs=images[i], data_samples=DataSample().set_gt_label(int(labels[i])))
             for i in range(n)]
    return DataLoader(items, batch_size=16, collate_fn=pseudo_collate)


def _runner(model, tmp_path, model_cfg):
    cfg = Config(dict(model=model_cfg, default_scope='mmpretrain', test_cfg=dict(),
                      test_dataloader=dict(batch_size=2), test_evaluator=dict(type='Accuracy')))
    return SimpleNamespace(model=model, logger=logging.getLogger('pgnas-test'),
                           work_dir=str(tmp_path), cfg=cfg)


@pytest.mark.parametrize('sampler,drop_rate', [('posterior', None), ('uniform', 0.3),
                                               ('uniform', 'cost_matched')])
def test_search_keeps_the_best_and_exports_it(tmp_path, sampler, drop_rate):
    torch.manual_seed(0)
    cfg = tiny_model_cfg()
    model = warm_up_bn(build(cfg))
    loop = PGNASSearchLoop(_runner(model, tmp_path, cfg), _loader(), num_candidates=8,
                           sampler=sampler, drop_rate=drop_rate, seed=5, report_at=(3, ))
    loop.run()
    with open(osp.join(tmp_path, 'search_results.json')) as f:
        res = json.load(f)
    accs = [r['acc'] for r in res['candidates']]
    assert len(accs) == 8 and loop.iter == 8
    assert res['best']['8']['acc'] == max(accs)
    assert res['best']['3']['acc'] == max(accs[:3])
    expected_rate = {None: None, 0.3: 0.3, 'cost_matched': pytest.approx(0.1, abs=1e-6)}
    assert res['drop_rate'] == expected_rate[drop_rate]
    assert all(0 < r['cost_ratio'] <= 1 for r in res['candidates'])
    # the exported best reproduces its held-out accuracy on the same data
    best = res['best']['8']
    exported = Config.fromfile(best['export']['config'])
    static = build(exported.model).eval()
    static.load_state_dict(torch.load(best['export']['checkpoint'],
                                      weights_only=True)['state_dict'])
    correct = total = 0
    with torch.no_grad():
        for data in _loader():
            data = static.data_preprocessor(data, False)
            pred = static(data['inputs'], mode='tensor').argmax(1)
            labels = torch.cat([s.gt_label for s in data['data_samples']])
            correct += int((pred == labels).sum())
            total += labels.numel()
    assert 100. * correct / total == pytest.approx(best['acc'])
    # and it is the candidate drawn with the recorded index
    cand = sample_candidate(model, 5, best['index'],
                            None if drop_rate is None else res['drop_rate'])
    assert sum(int(m.sum()) for m in cand.values()) == best['kept_channels']


def test_bad_arguments_are_refused(tmp_path):
    cfg = tiny_model_cfg()
    runner = _runner(build(cfg), tmp_path, cfg)
    with pytest.raises(ValueError, match='drop_rate'):
        PGNASSearchLoop(runner, _loader(), sampler='uniform')
    with pytest.raises(ValueError, match='learned'):
        PGNASSearchLoop(runner, _loader(), sampler='posterior', drop_rate=0.2)
    with pytest.raises(ValueError, match='sampler'):
        PGNASSearchLoop(runner, _loader(), sampler='evolution')


def test_stage_prefix_cache_gives_the_plain_logits():
    """Reusing the stem / all-keep-stage outputs is exact: bitwise the plain forward."""
    from projects.pgnas.pgnas.engine.search_loop import StagePrefixCache
    from projects.pgnas.pgnas.models import candidate_context
    torch.manual_seed(0)
    model = warm_up_bn(build(tiny_model_cfg()))
    batches = [torch.randn(8, 3, 32, 32) for _ in range(2)]
    cache = StagePrefixCache(model)
    assert cache.enabled and len(cache.stage_units) == 3
    prefixes = set()
    for rate in (0.0, 0.02, 0.05, 0.3):
        for index in range(6):
            cand = sample_candidate(model, 1, index, rate)
            prefix = cache.keep_prefix(cand)
            prefixes.add(prefix)
            with candidate_context(model, cand), torch.no_grad():
                for b, x in enumerate(batches):
                    assert torch.equal(cache.logits(model, b, x, prefix),
                                       model(x, mode='tensor'))
    assert prefixes >= {0, 3}  # both the cold path and the fully cached prefix ran
    assert len(cache.outputs[0]) == 4  # stem + 3 all-keep stages stored
    # the loop's accuracy is the same with and without the cache
    data = [(x, torch.arange(8) % 10) for x in batches]
    cache2 = StagePrefixCache(model)
    for index in range(4):
        cand = sample_candidate(model, 2, index, 0.05)
        with candidate_context(model, cand):
            assert (PGNASSearchLoop._accuracy(model, data, cache2, cand)
                    == PGNASSearchLoop._accuracy(model, data))
    assert cache2.checked and cache2.enabled
