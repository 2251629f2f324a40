"""TensorFlow and Keras, imported once per process with gradviz's settings: every module that
computes with TensorFlow imports both from here (a test checks that no other module imports them)."""

import logging

from gradviz.training.quiet import native_stderr_silenced

with native_stderr_silenced():  # the CLI's stderr shows gradviz's lines, not TensorFlow's start-up chatter
    import keras
    import tensorflow as tf

# Each graph shape is traced once per process and a new shape is a new trace, on purpose;
# TensorFlow's "excessive retracing" warning would fire when a learner tries many shapes.
tf.get_logger().setLevel(logging.ERROR)
# Grappler's graph optimisation runs once per compiled function and, on the models gradviz builds,
# cost more than it returned: measured on 2 CPU cores, the first call of the 10x256 training chunk
# took 0.18 s with it and 0.06 s without, at the same steps/s (CNN runs were faster without it).
# Runs here are a few hundred steps, so that one-off cost is a visible share of a first run.
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})

__all__ = ["keras", "tf"]
