"""One module per DVC stage, each a thin CLI (``main(argv=None)``) over pure functions."""

import os

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing on a CPU-only machine, tf.data
# attribute notices) drowns the stage's own log; Python-level errors still raise.
# Set before anything imports TensorFlow; an explicit value in the environment wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
