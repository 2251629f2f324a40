"""The learning-rate law: the largest stable step for a loss of curvature λ (no TensorFlow).

Gradient descent on a quadratic of curvature λ multiplies the error along the top eigenvector by
(1 - ηλ) each step: it shrinks only while η < 2/λ. Heavy-ball momentum β moves the bound to
2(1+β)/λ. Adam and RMSprop divide each step by a running gradient size, so no bound in the
learning rate alone follows for them (None). Between 2/λ and a few times it a run may spike and
then settle somewhere flatter (the catapult, Lewkowycz et al. 2020): the bound says where plain
descent stops being stable, not where learning fails.
"""

from __future__ import annotations

import math

MOMENTUM = 0.9  # heavy-ball β of the "momentum" optimizer (gradviz.training.optim uses this one)
ADAPTIVE = ("adam", "rmsprop")


def stable_lr(lambda_max: float | None, optimizer: str) -> float | None:
    """The largest stable learning rate by the optimizer's simple bound, or None where there is none.

    Args:
        lambda_max: the top eigenvalue of the loss Hessian.
        optimizer: sgd, momentum, adam or rmsprop.
    Returns:
        2/λ for SGD, 2(1+β)/λ for momentum, None for Adam/RMSprop or a λ that is not positive.
    """
    if lambda_max is None or not 0 < lambda_max < math.inf or optimizer in ADAPTIVE:
        return None
    return 2.0 * (1.0 + MOMENTUM if optimizer == "momentum" else 1.0) / lambda_max
