"""Fixed per-task loss weights."""

from __future__ import annotations

import keras

from keras_mtl.weighting.loss_weighting import LossWeighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class FixedWeighting(LossWeighting):
    """Constant weights: `L = Σ_k w_k L_k`.

    The same loss as compiling with `Task.loss_weight` alone, but reported like
    every other strategy (`{task}_weight` in the logs).

    Args:
        weights: dict of task name to weight w_k >= 0; tasks not named get 1.
            Defaults to None (all 1).

    Example:
    >>> compile_model(model, tasks, loss_weighting=FixedWeighting({"marital": 0.5}))
    """
