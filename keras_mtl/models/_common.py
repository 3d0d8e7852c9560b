"""What every builder shares: inputs, encoder, towers, the model, compile.

The options the builders have in common (`dropout`, `name`, the task types) are
described once, in the `keras_mtl.models` docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras

from keras_mtl._checks import check_rate, check_units
from keras_mtl.features import Feature, check_features, make_inputs
from keras_mtl.layers import (
    CrossStitch,
    FeatureEncoder,
    FeatureSelection,
    InverseTransform,
    ParallelDense,
    TaskTower,
)
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.tasks import Task, check_tasks

#: Task types of the builders whose heads are `TaskTower`s (one per task).
TOWER_TASK_TYPES = ("binary", "regression", "multiclass")
#: Task types of the funnel builders (ESMM, ESM², AITM): event probabilities.
FUNNEL_TASK_TYPES = ("binary",)


def builds(task_types: Sequence[str]) -> Callable[[Callable], Callable]:
    """Decorator: record on a builder the task types it builds, as `task_types`.

    The builder checks its tasks against `builder.task_types`
    (`check_builder_tasks`) and the registry reads them from it, so each
    builder states them once, above its definition.
    """

    def mark(builder: Callable) -> Callable:
        builder.task_types = tuple(task_types)
        return builder

    return mark


def check_builder_tasks(builder: Callable, tasks: Sequence[Task]) -> list[Task]:
    """`check_tasks(tasks)`, then reject any task whose type `builder` cannot build.

    `builder` is a builder marked with `builds`. The error names the builder,
    the task, its type and what the builder supports, before any layer is built.
    """
    owner, supported = builder.__name__, builder.task_types
    tasks = check_tasks(tasks)
    for task in tasks:
        if task.type not in supported:
            hint = (
                " (a ranking task scores a candidate list: see build_dupn)"
                if task.type == "ranking"
                else ""
            )
            raise ValueError(
                f"{owner}: task {task.name!r} has type {task.type!r}; {owner} "
                f"supports {', '.join(supported)}{hint}."
            )
    return tasks


def check_dropout(builder: Callable, **rates: float) -> None:
    """Reject a dropout rate outside [0, 1), naming `builder` and the argument."""
    for arg, rate in rates.items():
        check_rate(builder.__name__, arg, rate)


def encode_inputs(features: Sequence[Feature]):
    """`(inputs dict, encoded vector)` for a list of feature specs."""
    features = check_features(features)
    inputs = make_inputs(features)
    return inputs, FeatureEncoder(features, name="feature_encoder")(inputs)


def encode_selected_inputs(features: Sequence[Feature], names: Sequence[str]):
    """`(inputs dict, list of encoded vectors)`: `encode_inputs`' vector
    re-weighted field by field once per name (a `FeatureSelection` named
    "feature_selection" over the encoder's fields, one field per feature)."""
    features = check_features(features)
    inputs = make_inputs(features)
    encoder = FeatureEncoder(features, name="feature_encoder")
    fields = encoder.output_fields
    select = FeatureSelection(
        [width for _, width in fields],
        names,
        field_names=[name for name, _ in fields],
        name="feature_selection",
    )
    return inputs, select(encoder(inputs))


def make_model(
    inputs: dict,
    outputs: dict,
    tasks: Sequence[Task],
    name: str,
    compile: bool | dict,
) -> MultiTaskModel:
    """The `MultiTaskModel`, compiled for `tasks` unless `compile` is False.

    `compile` is True (defaults), False (leave uncompiled) or a dict of
    `MultiTaskModel.compile` arguments (`compile=True` is `model.compile()`).
    Every output is float32 (`float32_outputs`). The output of each task with
    a `Task.transform` then passes through an `InverseTransform` named
    `{task}_inverse_transform`, in float32: the builder's head predicts the
    transformed scale, the model returns the label's scale.
    """
    outputs = float32_outputs(outputs)
    if tasks and isinstance(outputs, dict):
        outputs = dict(outputs)
        for task in check_tasks(tasks):
            if task.transform is not None and task.name in outputs:
                outputs[task.name] = InverseTransform(
                    task.transform,
                    name=f"{task.name}_inverse_transform",
                    dtype="float32",  # exp(z) - 1 overflows float16 above z = 11
                )(outputs[task.name])
    model = MultiTaskModel(inputs, outputs, tasks=tasks, name=name)
    if compile:
        model.compile(**(compile if isinstance(compile, dict) else {}))
    return model


def float32_outputs(outputs: dict) -> dict:
    """`outputs` with each floating output that is not float32 cast to float32.

    Under a mixed-precision policy (`keras.mixed_precision.set_dtype_policy(
    "mixed_float16")` or "mixed_bfloat16") the layers compute in float16 or
    bfloat16; as Keras recommends, the model's outputs are float32 again, so
    predictions, losses and metrics see float32. Each such output passes
    through a float32 linear `Activation` named `{task}_float32`; float32
    outputs (the default policy) are left as they are, so a float32 model has
    no extra layer.
    """
    if not isinstance(outputs, dict):
        return outputs
    cast = {}
    for task, tensor in outputs.items():
        dtype = keras.backend.standardize_dtype(tensor.dtype)
        if "float" in dtype and dtype != "float32":
            tensor = keras.layers.Activation(
                "linear", dtype="float32", name=f"{task}_float32"
            )(tensor)
        cast[task] = tensor
    return cast


def finish_model(
    inputs: dict,
    task_inputs: Sequence,
    tasks: Sequence[Task],
    tower_units: Sequence[int],
    tower_dropout: float,
    name: str,
    compile: bool | dict,
) -> MultiTaskModel:
    """One `TaskTower` per task on its own input, then `make_model`."""
    outputs = {
        task.name: TaskTower(
            tower_units,
            task.type,
            dropout=tower_dropout,
            num_classes=task.num_classes,
            name=f"{task.name}_tower",
        )(x)
        for task, x in zip(tasks, task_inputs)
    }
    return make_model(inputs, outputs, tasks, name, compile)


def per_task_hidden(
    owner: str,
    x,
    num_tasks: int,
    hidden_units: Sequence[int],
    hidden_dropout: float,
    coupling: float = 0.0,
    self_weight: float | None = None,
) -> list:
    """One hidden stack per task on the shared `x` (soft parameter sharing).

    Layer `i` is `ParallelDense(num_tasks, units, coupling)` named `hidden_i`,
    then dropout at rate `hidden_dropout` (`dropout_i`, when > 0) and, when
    `self_weight` is given, a `CrossStitch` unit named `cross_stitch_i`.
    `owner` names the builder in errors. Returns the T task tensors.
    """
    hidden_units = check_units(owner, "hidden_units", hidden_units, allow_empty=False)
    check_rate(owner, "hidden_dropout", hidden_dropout)
    h = x
    for i, units in enumerate(hidden_units, start=1):
        h = ParallelDense(num_tasks, units, coupling=coupling, name=f"hidden_{i}")(h)
        if hidden_dropout:
            drop = keras.layers.Dropout(hidden_dropout, name=f"dropout_{i}")
            h = [drop(t) for t in h]
        if self_weight is not None:
            h = CrossStitch(self_weight, name=f"cross_stitch_{i}")(h)
    return h
