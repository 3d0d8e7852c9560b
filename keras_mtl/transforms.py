"""Invertible label transforms of regression tasks (e.g. log-scale targets).

`Task("dwell", "regression", transform="log1p")` trains the task on
`forward(label)` and returns predictions on the label's own scale: the task's
tower predicts `z` on the transformed scale, an `InverseTransform` layer turns
it into `inverse(z)` (the model's output for the task, in `predict`, after a
`.keras` load and in every SavedModel signature), and the task's default loss
and metric (`MaskedMeanSquaredError` and `MaskedMSE` with `transform=`) compare
`forward(label)` with `forward(prediction)`, i.e. on the transformed scale
again. A loss passed to `compile` for such a task sees the label's scale
unless it is given the transform too; a model built by hand (not by a
builder) needs the `InverseTransform` layer on the task's output itself.

A transform is a small serializable object with `forward` and `inverse` in
`keras.ops`. Subclass `Transform` (and register the subclass with
`keras.saving.register_keras_serializable`) for your own.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mtl")
class Transform:
    """An invertible transform of a regression label: `z = forward(y)`, `y = inverse(z)`.

    Subclasses override `forward` and `inverse` (both in `keras.ops`, applied
    elementwise), `domain_floor` when labels must exceed a value, and
    `get_config` when they take arguments. Two transforms are equal when they
    are of one class with one config. The base class is the identity.

    Attributes:
        domain_floor: float or None. Labels must be greater than this (e.g. -1
            for log1p); `make_dataset` rejects others. None: no bound.

    Example:
    >>> @keras.saving.register_keras_serializable(package="doc")
    ... class Sqrt(Transform):
    ...     domain_floor = -1e-12  # labels must be >= 0
    ...     def forward(self, y):
    ...         return keras.ops.sqrt(y)
    ...     def inverse(self, z):
    ...         return keras.ops.square(z)
    >>> km.Task("dwell", "regression", transform=Sqrt()).transform
    Sqrt()
    >>> float(Sqrt().inverse(Sqrt().forward(9.0)))
    9.0
    """

    domain_floor: float | None = None

    def forward(self, y):
        """The transformed label (the scale the task is trained on)."""
        return y

    def inverse(self, z):
        """The label's scale from the transformed scale (what `predict` returns)."""
        return z

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Transform:
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, repr(sorted(self.get_config().items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="keras_mtl")
class Identity(Transform):
    """No transform: train and predict on the label's own scale ("identity").

    Example:
    >>> float(Identity().inverse(Identity().forward(3.0)))
    3.0
    """


@keras.saving.register_keras_serializable(package="keras_mtl")
class Log1p(Transform):
    """`z = log(1 + y)`, `y = exp(z) - 1` ("log1p"): log-scale targets.

    For skewed non-negative labels such as dwell time, revenue or counts.
    Labels must be > -1. `inverse` clips `z` to at most `max_log` before the
    exponential, so a prediction stays finite in float32 (exp(88.7)
    overflows), and `forward` clips `y` to at least -1 + 1e-7, so the log of
    a prediction near -1 stays finite.

    Args:
        max_log: float. Largest `z` taken by `inverse`. Defaults to 80.

    Example:
    >>> t = Log1p()
    >>> float(t.forward(np.float32(np.e - 1)))
    1.0
    >>> round(float(t.inverse(2.0)), 4)  # e² - 1
    6.3891
    """

    domain_floor = -1.0

    def __init__(self, max_log: float = 80.0):
        self.max_log = float(max_log)

    def forward(self, y):
        return ops.log1p(ops.maximum(y, -1.0 + 1e-7))

    def inverse(self, z):
        return ops.expm1(ops.minimum(z, self.max_log))

    def get_config(self) -> dict:
        return {"max_log": self.max_log}


#: The built-in transforms by name (`Task(..., transform=name)`).
TRANSFORMS = {"identity": Identity, "log1p": Log1p}


def get_transform(identifier) -> Transform | None:
    """A `Transform` from a name in `TRANSFORMS`, a `Transform`, its serialized
    config (a dict) or None (no transform).

    Example:
    >>> get_transform("log1p")
    Log1p(max_log=80.0)
    >>> get_transform("log")
    Traceback (most recent call last):
    ...
    ValueError: transform must be one of ['identity', 'log1p'], a Transform or None; got 'log'.
    """
    if identifier is None or isinstance(identifier, Transform):
        return identifier
    if isinstance(identifier, str) and identifier in TRANSFORMS:
        return TRANSFORMS[identifier]()
    if isinstance(identifier, dict):
        transform = keras.saving.deserialize_keras_object(identifier)
        if isinstance(transform, Transform):
            return transform
    raise ValueError(
        f"transform must be one of {sorted(TRANSFORMS)}, a Transform or None; got "
        f"{identifier!r}."
    )


def serialize_transform(transform: Transform | None):
    """A built-in transform's name, another's Keras config, or None."""
    if transform is None:
        return None
    for name, cls in TRANSFORMS.items():
        if transform == cls():
            return name
    return keras.saving.serialize_keras_object(transform)


def to_transformed_scale(tasks, predictions: dict) -> dict:
    """Predictions of the tasks with a transform, moved to their training scale.

    A model returns every task on its label's scale; this gives
    `task.transform.forward(prediction)` (e.g. the predicted mean of
    log(1 + dwell)) for each task of `tasks` that has a transform and is in
    `predictions` (what `model.predict` returns), as numpy arrays.

    Args:
        tasks: sequence of `Task` (e.g. `model.tasks`).
        predictions: dict. Outputs keyed by task name.

    Returns:
        dict keyed by the names of those tasks.

    Example:
    >>> tasks = [km.Task("ctr"), km.Task("dwell", "regression", transform="log1p")]
    >>> to_transformed_scale(tasks, {"ctr": np.array([0.5]),
    ...                              "dwell": np.array([np.e - 1])})
    {'dwell': array([1.], dtype=float32)}
    """
    return {
        task.name: np.asarray(
            ops.convert_to_numpy(
                task.transform.forward(ops.cast(predictions[task.name], "float32"))
            )
        )
        for task in tasks
        if task.transform is not None and task.name in predictions
    }
