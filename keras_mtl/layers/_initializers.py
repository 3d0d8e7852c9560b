"""Initializers of the layers' stacked kernels (experts, parallel branches)."""

from __future__ import annotations

import copy

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mtl")
class StackedInitializer(keras.initializers.Initializer):
    """Initialises a stack of matrices as if each were its own 2-D kernel.

    Keras computes fan-in/fan-out of a 3-D kernel as a convolution's, which would
    shrink every expert's weights; drawing each slice on its own keeps each expert
    initialised like a plain Dense layer. Each slice gets its own initializer
    instance (and its own seed when one was given): a Keras initializer instance
    repeats its draws, and identical experts would never diverge.

    Args:
        initializer: initializer (name, config or instance) of one slice.
        axis: int. The stacking axis. Defaults to 0.

    Returns:
        Called with `shape`, a tensor of that shape whose slices along `axis`
        are independent draws of `initializer`.

    Example:
    >>> init = StackedInitializer(keras.initializers.GlorotUniform(seed=1))
    >>> tuple(init((3, 4, 5)).shape)
    (3, 4, 5)
    """

    def __init__(self, initializer="glorot_uniform", axis: int = 0):
        self.initializer = keras.initializers.serialize(
            keras.initializers.get(initializer)
        )
        self.axis = int(axis)

    def _slice_initializer(self, i: int):
        config = copy.deepcopy(self.initializer)
        if (
            isinstance(config, dict)
            and config.get("config", {}).get("seed") is not None
        ):
            config["config"]["seed"] += i
        return keras.initializers.deserialize(config)

    def __call__(self, shape, dtype=None):
        shape, axis = tuple(shape), self.axis
        inner = shape[:axis] + shape[axis + 1 :]
        slices = [self._slice_initializer(i)(inner, dtype) for i in range(shape[axis])]
        return ops.stack(slices, axis)

    def get_config(self):
        return {"initializer": self.initializer, "axis": self.axis}


def stacked_initializer(initializer, axis: int = 0) -> StackedInitializer:
    """A `StackedInitializer` drawing each slice along `axis` from `initializer`."""
    return StackedInitializer(initializer, axis)


def add_start_weight(layer, name: str, start):
    """`layer.add_weight(name)` of `start`'s shape, initialised to the numpy
    array `start` (a mixing matrix or layer weights with a chosen start)."""
    return layer.add_weight(
        name=name,
        shape=start.shape,
        initializer=lambda shape, dtype=None: ops.convert_to_tensor(start, dtype),
    )
