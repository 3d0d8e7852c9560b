"""PLE and CGC: task-specific plus shared experts, extracted level by level."""

from __future__ import annotations

from collections.abc import Sequence

from keras_mtl._checks import check_bool, check_positive_int
from keras_mtl.features import Feature
from keras_mtl.layers import CustomizedGateControl
from keras_mtl.layers._mixing import check_gate
from keras_mtl.models._common import (
    TOWER_TASK_TYPES,
    builds,
    check_builder_tasks,
    check_dropout,
    encode_inputs,
    encode_selected_inputs,
    finish_model,
)
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.tasks import Task


def _per_level(name: str, value, num_levels: int, is_item) -> list:
    """`value` for every level: one setting repeated, or a list of one per level."""
    if is_item(value):
        return [value] * num_levels
    values = list(value)
    if len(values) != num_levels or not all(is_item(v) for v in values):
        raise ValueError(
            f"build_ple: {name} must be one setting or a list of {num_levels} (one "
            f"per level), got {value!r}."
        )
    return values


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_units(value) -> bool:
    return isinstance(value, (list, tuple)) and all(_is_count(u) for u in value)


@builds(TOWER_TASK_TYPES)
def build_ple(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    num_levels: int = 2,
    num_shared_experts: int | Sequence[int] = 2,
    num_task_experts: int | Sequence[int] = 2,
    expert_units: Sequence[int] | Sequence[Sequence[int]] = (16,),
    tower_units: Sequence[int] = (8,),
    use_gate_bias: bool = False,
    gate: str = "softmax",
    attention_units: int | None = None,
    feature_selection: bool = False,
    dropout: float = 0.0,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """Progressive layered extraction: stacked CGC levels, then one tower per task.

    At every level each task has its own experts and all tasks share some
    experts; a task's gate mixes its own and the shared experts, and (below the
    last level) a shared gate mixes every expert of the level. Level j's task k
    experts and gate read task k's output of level j - 1, its shared experts and
    gate read the shared output, so the representations are separated
    progressively. The last level feeds the task towers. `num_levels=1` is CGC.

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass); one output per
            task.
        num_levels: int. Extraction levels. Defaults to 2 (the paper's).
        num_shared_experts: int, or one int per level. Shared experts per level.
            Defaults to 2.
        num_task_experts: int, or one int per level. Experts per task per level.
            Defaults to 2.
        expert_units: sequence of int, or one such sequence per level. Hidden
            widths of every expert. Defaults to (16,) (single-layer experts, as
            in the paper).
        tower_units: widths of each task tower. Defaults to (8,).
        use_gate_bias: add a bias inside the gates. Defaults to False.
        gate: "softmax" (the paper's: `softmax(W x)` over the experts) or
            "attention" (a task query from the input over expert keys from the
            experts' outputs, scaled dot product; `keras_mtl.layers.CustomizedGateControl`).
            Defaults to "softmax".
        attention_units: int or None. Query / key width of the attention
            gates. Defaults to None: the experts' output width.
        feature_selection: bool. Per-task feature selection in front of the
            first level: a `keras_mtl.layers.FeatureSelection` (named
            "feature_selection") re-weights the feature fields once per task
            and once for the shared experts ("shared"); task k's experts and
            gate read task k's view, the shared experts (and gate) the shared
            view. Every expert still runs once, so it costs only the selection
            itself. `keras_mtl.feature_weights(model, data)` tables the
            weights. Defaults to False.
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        compile: True compiles with per-task defaults, a dict passes arguments to
            `MultiTaskModel.compile`, False leaves the model uncompiled.
        name: model name. Defaults to None: "ple" ("cgc" for one level).

    Returns:
        A `MultiTaskModel` with inputs named after the features and a dict of
        outputs keyed by task name. The levels are `CustomizedGateControl`
        layers named "level_1", "level_2", ... ("cgc" for one level);
        `keras_mtl.gate_weights(model, data)` reads which experts each gate uses.

    Example:
    >>> features = [km.SparseFeature("user", vocabulary_size=100, embedding_dim=4),
    ...             km.DenseFeature("age", mean=40.0, std=12.0)]
    >>> model = build_ple(features, [Task("ctr"), Task("watch_time", "regression")],
    ...                   num_levels=2, num_shared_experts=2, num_task_experts=2)
    >>> x = {"user": np.array([3, 7]), "age": np.array([31.0, 52.0])}
    >>> {task: p.shape for task, p in model.predict(x, verbose=0).items()}
    {'ctr': (2,), 'watch_time': (2,)}

    References:
        Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task
        Learning (MTL) Model for Personalized Recommendations", RecSys 2020.
    """
    owner = build_cgc if num_levels == 1 else build_ple
    tasks = check_builder_tasks(owner, tasks)
    check_dropout(owner, dropout=dropout)
    check_gate(owner.__name__, gate, attention_units)
    check_bool(owner.__name__, "feature_selection", feature_selection)
    check_positive_int("build_ple", "num_levels", num_levels)
    shared = _per_level("num_shared_experts", num_shared_experts, num_levels, _is_count)
    own = _per_level("num_task_experts", num_task_experts, num_levels, _is_count)
    units = _per_level("expert_units", expert_units, num_levels, _is_units)
    task_names = tuple(t.name for t in tasks)
    if feature_selection:  # [task_1, ..., task_T, shared], as a lower level's
        inputs, x = encode_selected_inputs(features, (*task_names, "shared"))
    else:
        inputs, x = encode_inputs(features)
    for j in range(num_levels):
        last = j == num_levels - 1
        x = CustomizedGateControl(
            len(tasks),
            num_task_experts=own[j],
            num_shared_experts=shared[j],
            expert_units=units[j],
            output_shared=not last,
            gate_names=task_names,
            use_gate_bias=use_gate_bias,
            gate=gate,
            attention_units=attention_units,
            name="cgc" if num_levels == 1 else f"level_{j + 1}",
        )(x)
    name = name or ("cgc" if num_levels == 1 else "ple")
    return finish_model(inputs, x, tasks, tower_units, dropout, name, compile)


@builds(TOWER_TASK_TYPES)
def build_cgc(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    num_shared_experts: int = 2,
    num_task_experts: int = 2,
    expert_units: Sequence[int] = (16,),
    tower_units: Sequence[int] = (8,),
    use_gate_bias: bool = False,
    gate: str = "softmax",
    attention_units: int | None = None,
    feature_selection: bool = False,
    dropout: float = 0.0,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """Customized gate control: `build_ple(..., num_levels=1)`.

    One level of task-specific and shared experts with one gate per task (a
    task's gate mixes its own and the shared experts), then the towers.

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass); one output per
            task.
        num_shared_experts: int. Experts shared by every task. Defaults to 2.
        num_task_experts: int. Experts of each task. Defaults to 2.
        expert_units: sequence of int. Hidden widths of every expert. Defaults
            to (16,).
        tower_units: widths of each task tower. Defaults to (8,).
        use_gate_bias: add a bias inside the gates. Defaults to False.
        gate: "softmax" (the paper's: `softmax(W x)` over the experts) or
            "attention" (a task query from the input over expert keys from the
            experts' outputs, scaled dot product; `keras_mtl.layers.CustomizedGateControl`).
            Defaults to "softmax".
        attention_units: int or None. Query / key width of the attention
            gates. Defaults to None: the experts' output width.
        feature_selection: bool. Per-task feature selection, as `build_ple`'s:
            task k's experts and gate read task k's view of the features, the
            shared experts the "shared" view. Defaults to False.
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        compile: True compiles with per-task defaults, a dict passes arguments to
            `MultiTaskModel.compile`, False leaves the model uncompiled.
        name: model name. Defaults to None: "cgc".

    Returns:
        A `MultiTaskModel` as `build_ple` returns; the level is the
        `CustomizedGateControl` layer named "cgc".

    References:
        Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task
        Learning (MTL) Model for Personalized Recommendations", RecSys 2020.
    """
    return build_ple(
        features,
        tasks,
        num_levels=1,
        num_shared_experts=num_shared_experts,
        num_task_experts=num_task_experts,
        expert_units=expert_units,
        tower_units=tower_units,
        use_gate_bias=use_gate_bias,
        gate=gate,
        attention_units=attention_units,
        feature_selection=feature_selection,
        dropout=dropout,
        compile=compile,
        name=name,
    )
