"""Optimizer updates as fused TensorFlow kernels (one op per variable), following Keras 3's rules.

Keras 3 writes each update as several element-wise ops per variable; inside gradviz's compiled
step the fused kernels trace faster and run faster. tests/test_train.py checks every optimizer
here against Keras' own on the same gradients.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from gradviz.config import RunConfig

# Keras 3 defaults for the optimizers gradviz offers.
MOMENTUM = 0.9
ADAM_BETA_1, ADAM_BETA_2, EPSILON = 0.9, 0.999, 1e-7
RMSPROP_RHO = 0.9
SLOTS = {"sgd": 0, "momentum": 1, "rmsprop": 2, "adam": 2}


class FusedOptimizer:
    """SGD, SGD with momentum, RMSprop and Adam over a fixed list of variables."""

    def __init__(self, config: RunConfig, variables: list):
        self.kind, self.lr = config.optimizer, config.learning_rate
        self.variables = list(variables)
        self.slots = [[tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False) for v in self.variables]
                      for _ in range(SLOTS[self.kind])]
        self.iterations = tf.Variable(0.0, trainable=False)

    def apply(self, grads: list[tf.Tensor]) -> tf.Operation:
        """One update of every variable; returns an op that runs after all of them."""
        step = self.iterations.assign_add(1.0)
        updates = []
        for i, (var, grad) in enumerate(zip(self.variables, grads)):
            slot = [s[i].handle for s in self.slots]
            if self.kind == "sgd":
                op = tf.raw_ops.ResourceApplyGradientDescent(var=var.handle, alpha=self.lr, delta=grad)
            elif self.kind == "momentum":  # accum = momentum * accum - lr * grad; var += accum
                op = tf.raw_ops.ResourceApplyKerasMomentum(var=var.handle, accum=slot[0], lr=self.lr, grad=grad,
                                                           momentum=MOMENTUM)
            elif self.kind == "rmsprop":  # Keras: var -= lr * grad / sqrt(ms + eps), momentum 0
                op = tf.raw_ops.ResourceApplyRMSProp(var=var.handle, ms=slot[0], mom=slot[1], lr=self.lr,
                                                     rho=RMSPROP_RHO, momentum=0.0, epsilon=EPSILON, grad=grad)
            else:
                op = tf.raw_ops.ResourceApplyAdam(
                    var=var.handle, m=slot[0], v=slot[1], beta1_power=tf.pow(ADAM_BETA_1, step),
                    beta2_power=tf.pow(ADAM_BETA_2, step), lr=self.lr, beta1=ADAM_BETA_1, beta2=ADAM_BETA_2,
                    epsilon=EPSILON, grad=grad)
            updates.append(op)
        return tf.group(updates)


def keras_optimizer(config: RunConfig) -> keras.optimizers.Optimizer:
    """The plain-Keras optimizer a config names, clipping included: what `model.fit` would use."""
    clip = {f: getattr(config, f) for f in ("clipnorm", "global_clipnorm", "clipvalue") if getattr(config, f) is not None}
    lr = config.learning_rate
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, **clip)
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(lr, momentum=MOMENTUM, **clip)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(lr, rho=RMSPROP_RHO, epsilon=EPSILON, **clip)
    return keras.optimizers.Adam(lr, beta_1=ADAM_BETA_1, beta_2=ADAM_BETA_2, epsilon=EPSILON, **clip)
