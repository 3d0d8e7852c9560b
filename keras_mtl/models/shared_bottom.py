"""Shared-bottom multi-task model (hard parameter sharing)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_mtl.features import Feature
from keras_mtl.layers import MLP
from keras_mtl.models._common import encode_inputs, finish_model
from keras_mtl.tasks import Task, check_tasks


def build_shared_bottom(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    bottom_units: Sequence[int] = (64,),
    tower_units: Sequence[int] = (8,),
    dropout: float = 0.0,
    compile: bool | dict = True,
    name: str = "shared_bottom",
) -> keras.Model:
    """One bottom MLP shared by all tasks, then one tower per task.

    Args:
        features: the input feature specs.
        tasks: the `Task`s; the model outputs one prediction per task.
        bottom_units: widths of the shared bottom. Defaults to (64,).
        tower_units: widths of each task tower. Defaults to (8,).
        dropout: dropout rate in the bottom and towers. Defaults to 0.
        compile: True compiles with per-task defaults
            (`keras_mtl.compile_model`), a dict passes arguments to it, False
            leaves the model uncompiled. Defaults to True.
        name: model name.

    Returns:
        A functional `keras.Model`: inputs named after the features, outputs a
        dict keyed by task name, each of shape `(batch,)`.

    Example:
    >>> model = build_shared_bottom([DenseFeature("x", dim=10)],
    ...                             [Task("a"), Task("b", "regression")])

    References:
        Caruana, "Multitask Learning", Machine Learning 28 (1997).
    """
    tasks = check_tasks(tasks)
    inputs, x = encode_inputs(features)
    shared = MLP(bottom_units, dropout=dropout, name="bottom")(x)
    return finish_model(
        inputs, [shared] * len(tasks), tasks, tower_units, dropout, name, compile
    )
