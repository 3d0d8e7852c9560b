"""Functional-API builders; each returns a `keras.Model` with dict outputs by task."""

from keras_mtl.models.mmoe import build_mmoe, build_omoe
from keras_mtl.models.shared_bottom import build_shared_bottom

__all__ = ["build_mmoe", "build_omoe", "build_shared_bottom"]
