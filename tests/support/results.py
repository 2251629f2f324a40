"""Constructed RunResults: each diagnosis rule's evidence, without training."""

import numpy as np

from gradviz.config import RunConfig
from gradviz.result import RunResult

LAYERS = ["hidden_01", "hidden_02", "output"]
ACTS = ["hidden_01_act", "hidden_02_act"]


def fake_result(config=RunConfig(depth=2), grad_first=1.0, grad_last=1.0, loss=(2.3, 0.3), val_accuracy=0.9,
                update_first=1e-3, global_norm=None, act_stats=None, diverged_at=None, steps=100, per_epoch=50,
                init_stats=None, sharpness=None):
    """A RunResult with the given evidence; `act_stats` at every snapshot unless `init_stats` gives
    snapshot 0's (before training); `sharpness` [(step, λ)]."""
    s = steps if diverged_at is None else diverged_at + 1
    grad = np.ones((s, 3))
    grad[:, 0], grad[:, -1] = grad_first, grad_last
    update = np.full((s, 3), 1e-3)
    update[:, 0] = update_first
    pre = np.ones(s) if global_norm is None else np.asarray(global_norm, float)[:s]
    step_loss = np.linspace(loss[0], loss[-1], s)
    if diverged_at is not None:
        step_loss[-1] = grad[-1, :] = np.nan
    snaps = 1 + (s // per_epoch if diverged_at is None else 1)
    stats = np.zeros((snaps, 2, 4)) if act_stats is None else np.broadcast_to(act_stats, (snaps, 2, 4)).copy()
    if init_stats is not None:
        stats[0] = init_stats
    return RunResult(
        config=config, data={}, layers=LAYERS, act_layers=ACTS, steps_per_epoch=per_epoch, total_steps=steps,
        step=np.arange(s), loss=step_loss, accuracy=np.full(s, 0.5), grad_norm=grad, update_ratio=update,
        global_norm_pre=pre, global_norm_post=pre.copy(),
        epoch=np.arange(snaps, dtype=float), epoch_step=np.arange(snaps) * per_epoch,
        train_loss=np.linspace(loss[0], loss[-1], snaps), train_accuracy=np.full(snaps, 0.5),
        val_loss=np.linspace(loss[0], loss[-1], snaps), val_accuracy=np.linspace(0.1, val_accuracy, snaps),
        weight_edges=np.zeros((3, 2)), weight_hist=np.zeros((snaps, 3, 1)), act_edges=np.zeros((2, 2)),
        pooled_edges=np.zeros(2), pooled_hist=np.zeros((snaps, 1)),
        act_hist=np.zeros((snaps, 2, 1)), act_stats=stats, steps_done=s, diverged_at_step=diverged_at,
        first_bad_layer="hidden_02" if diverged_at is not None else None,
        divergence_origin="forward" if diverged_at is not None else None,
        sharpness=np.array(sharpness or [], dtype=float).reshape(-1, 2),
    )
