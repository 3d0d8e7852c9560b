"""Runs a strategy's `step_weights` on hand-made gradients, traced once (its
fixed-iteration loops are slow op by op)."""

import numpy as np
import tensorflow as tf


def step_weights(strategy, vectors, traced=False):
    """The step's weights from one gradient vector per task (`[]`: absent);
    `traced` for the solvers with loops."""
    gradients = [[tf.constant(v, "float32")] if len(v) else [] for v in vectors]
    scaled = [tf.constant(1.0)] * len(vectors)
    step = strategy.step_weights
    if traced:
        step = tf.function(step, autograph=False)
    return np.asarray(step(scaled, gradients), "float64")
