import pickle

import pytest
import torch
from mmengine.logging import MessageHub

from projects.pgnas.tools.publish_checkpoint import publish


def test_publish_makes_a_weights_only_checkpoint(tmp_path):
    hub = MessageHub.get_instance('pgnas-publish-test')
    hub.update_scalar('train/loss', 1.5)
    src, dst = tmp_path / 'epoch_1.pth', tmp_path / 'published.pth'
    state = {'backbone.w': torch.arange(6.).view(2, 3)}
    torch.save(dict(state_dict=state, meta=dict(epoch=1, cfg='...', seed=0),
                    message_hub=hub.state_dict()), src)
    # what tools/test.py hits with a raw training checkpoint under torch >= 2.6
    with pytest.raises(pickle.UnpicklingError):
        torch.load(src, weights_only=True)
    publish(str(src), str(dst))
    out = torch.load(dst, weights_only=True)
    assert set(out) == {'state_dict', 'meta'}
    assert torch.equal(out['state_dict']['backbone.w'], state['backbone.w'])
    assert out['meta'] == dict(epoch=1, seed=0, published_from='epoch_1.pth')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth', 'published.pth']
