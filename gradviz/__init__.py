"""gradviz: see vanishing and exploding gradients happen, and get fixed, on real MNIST."""

import os

# TensorFlow's C++ start-up chatter (oneDNN notices, CPU feature lines) hides our own output;
# keep warnings and errors. setdefault: a user who set the variable keeps their choice.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
