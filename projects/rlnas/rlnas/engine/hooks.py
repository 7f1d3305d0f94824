"""Keep the supernet's weights at initialisation (W0) and at the end (Wt) as plain state dicts."""
import os.path as osp

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..registry import HOOKS
from ..utils import atomic_save


def _state(runner) -> dict:
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@HOOKS.register_module()
class SaveInitWeightsHook(Hook):
    """Save the model's weights before the first step (``init_file``) and after the last one
    (``final_file``) to the work dir.

    The angle metric compares every candidate's weights with W0, so W0 must survive the run; it
    is written when training starts from iteration 0 (after MMEngine's weight init and any
    ``load_from``), and a resumed run must find it already there. Both files hold only tensors,
    so they load with ``torch.load(weights_only=True)``, unlike full MMEngine checkpoints.
    """
    priority = 'VERY_HIGH'

    def __init__(self, init_file: str = 'init_weights.pth',
                 final_file: str = 'final_weights.pth'):
        self.init_file, self.final_file = init_file, final_file

    def before_train(self, runner) -> None:
        path = osp.join(runner.work_dir, self.init_file)
        if runner.iter > 0:
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'resumed at iteration {runner.iter} but {path} is missing: the weights at '
                    'initialisation are lost, so angles cannot be computed; restart the run')
            runner.logger.info(f'resumed; initial weights stay in {path}')
            return
        if runner.rank == 0:
            atomic_save(dict(state_dict=_state(runner), meta=dict(iter=0, seed=runner.seed)),
                        path)
            runner.logger.info(f'saved the weights at initialisation to {path}')

    def after_train(self, runner) -> None:
        if self.final_file and runner.rank == 0:
            path = osp.join(runner.work_dir, self.final_file)
            atomic_save(dict(state_dict=_state(runner), meta=dict(iter=runner.iter)), path)
            runner.logger.info(f'saved the final weights to {path}')
