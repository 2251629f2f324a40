"""Optimizer updates as fused TensorFlow kernels (one op per variable), following Keras 3's rules.

Keras 3 writes each update as several element-wise ops per variable; inside gradviz's compiled
step the fused kernels trace faster and run faster. tests/test_train.py checks every optimizer
here against Keras' own on the same gradients.
"""

from __future__ import annotations

from gradviz.config import RunConfig
from gradviz.signal.step_bound import MOMENTUM
from gradviz.training.tf_setup import keras, tf

# Keras 3 defaults for the optimizers gradviz offers.
ADAM_BETA_1, ADAM_BETA_2, EPSILON = 0.9, 0.999, 1e-7
RMSPROP_RHO = 0.9
SLOTS = {"sgd": 0, "momentum": 1, "rmsprop": 2, "adam": 2}


def optimizer_state(config: RunConfig, variables: list) -> tuple[list[list[tf.Variable]], tf.Variable]:
    """A new run's optimizer state over `variables`: its slots (none for SGD, one list per slot
    otherwise) and its step count, both moved by `apply_update` inside the traced step."""
    slots = [[tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False) for v in variables]
             for _ in range(SLOTS[config.optimizer])]
    return slots, tf.Variable(0.0, trainable=False)


def apply_update(kind: str, variables: list, slots: list, iterations: tf.Variable, grads: list[tf.Tensor],
                 lr: tf.Tensor, live: tf.Tensor | float = 1.0) -> tf.Operation:
    """One `kind` update of every variable; returns an op that runs after all of them.

    `live` 0 with all-zero gradients leaves every variable unchanged (learning rate and
    momentum are scaled by it); only the optimizer's own state moves.
    """
    step = iterations.assign_add(1.0)
    # Scalars built once per step, not once per variable: a Python float passed to a raw op
    # becomes a new constant node each time, and graph size is what tracing time scales with.
    momentum, rho, beta_1, beta_2, epsilon = (
        tf.constant(v, tf.float32) for v in (MOMENTUM, RMSPROP_RHO, ADAM_BETA_1, ADAM_BETA_2, EPSILON))
    lr, momentum = lr * live, momentum * live
    if kind == "adam":
        beta_1_power, beta_2_power = tf.pow(beta_1, step), tf.pow(beta_2, step)
    updates = []
    for i, (var, grad) in enumerate(zip(variables, grads)):
        slot = [s[i].handle for s in slots]
        if kind == "sgd":
            op = tf.raw_ops.ResourceApplyGradientDescent(var=var.handle, alpha=lr, delta=grad)
        elif kind == "momentum":  # accum = momentum * accum - lr * grad; var += accum
            op = tf.raw_ops.ResourceApplyKerasMomentum(var=var.handle, accum=slot[0], lr=lr, grad=grad,
                                                       momentum=momentum)
        elif kind == "rmsprop":  # Keras: var -= lr * grad / sqrt(ms + eps), momentum 0
            op = tf.raw_ops.ResourceApplyRMSProp(var=var.handle, ms=slot[0], mom=slot[1], lr=lr, rho=rho,
                                                 momentum=tf.zeros([]), epsilon=epsilon, grad=grad)
        else:
            op = tf.raw_ops.ResourceApplyAdam(
                var=var.handle, m=slot[0], v=slot[1], beta1_power=beta_1_power, beta2_power=beta_2_power,
                lr=lr, beta1=beta_1, beta2=beta_2, epsilon=epsilon, grad=grad)
        updates.append(op)
    return tf.group(updates)


def keras_optimizer(config: RunConfig) -> keras.optimizers.Optimizer:
    """The plain-Keras optimizer a config names, clipping included: what `model.fit` would use."""
    clip = dict([config.clipping]) if config.clipping else {}
    lr = config.learning_rate
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, **clip)
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(lr, momentum=MOMENTUM, **clip)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(lr, rho=RMSPROP_RHO, epsilon=EPSILON, **clip)
    return keras.optimizers.Adam(lr, beta_1=ADAM_BETA_1, beta_2=ADAM_BETA_2, epsilon=EPSILON, **clip)
