"""Runs a strategy's `step_weights` on hand-made gradients, traced once (its
fixed-iteration loops are slow op by op), on whichever Keras backend runs the
tests."""

import keras
import numpy as np


def _traced(step):
    """`step` compiled the way the backend's train step compiles it: a
    `tf.function` on TensorFlow, `jax.jit` on JAX; torch runs it eagerly."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(step, autograph=False)
    if backend == "jax":
        import jax

        return jax.jit(step)
    return step


def step_weights(strategy, vectors, traced=False):
    """The step's weights from one gradient vector per task (`[]`: absent);
    `traced` for the solvers with loops."""
    gradients = [
        [keras.ops.convert_to_tensor(np.asarray(v, "float32"))] if len(v) else []
        for v in vectors
    ]
    scaled = [keras.ops.convert_to_tensor(1.0)] * len(vectors)
    step = strategy.step_weights
    if traced:
        step = _traced(step)
    weights = step(scaled, gradients)
    if isinstance(weights, (list, tuple)):
        return np.asarray([keras.ops.convert_to_numpy(w) for w in weights], "float64")
    return np.asarray(keras.ops.convert_to_numpy(weights), "float64")
