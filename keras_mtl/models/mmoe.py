"""MMoE and OMoE: mixtures of experts with per-task gates or one shared gate."""

from __future__ import annotations

from collections.abc import Sequence

from keras_mtl._checks import check_bool
from keras_mtl.features import Feature
from keras_mtl.layers import MixtureOfExperts
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


@builds(TOWER_TASK_TYPES)
def build_mmoe(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    num_experts: int = 8,
    expert_units: Sequence[int] = (16,),
    tower_units: Sequence[int] = (8,),
    single_gate: bool = False,
    use_gate_bias: bool = False,
    gate: str = "softmax",
    attention_units: int | None = None,
    feature_selection: bool = False,
    dropout: float = 0.0,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """Multi-gate mixture-of-experts: shared experts, one softmax gate per task.

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass); the model outputs
            one prediction per task.
        num_experts: number of experts. Defaults to 8 (the paper's).
        expert_units: hidden widths of each expert. Defaults to (16,).
        tower_units: widths of each task tower. Defaults to (8,).
        single_gate: one gate shared by every task (OMoE, as `build_omoe`).
            Defaults to False.
        use_gate_bias: add a bias in the gates. Defaults to False (the paper's).
        gate: "softmax" (the paper's: `softmax(W x)` over the experts) or
            "attention" (a task query from the input over expert keys from the
            experts' outputs, scaled dot product; `keras_mtl.layers.MixtureOfExperts`).
            Defaults to "softmax".
        attention_units: int or None. Query / key width of the attention
            gates. Defaults to None: the experts' output width.
        feature_selection: bool. Give every gate its own view of the features:
            a `keras_mtl.layers.FeatureSelection` (named "feature_selection")
            re-weights the feature fields once per task, and task k's gate and
            the experts it mixes read task k's view, so the experts run once
            per task (T times the expert compute, the same expert weights).
            The OMoE gate is one selection, "shared", read by every task.
            `keras_mtl.feature_weights(model, data)` tables the weights.
            Defaults to False.
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        compile: True compiles with per-task defaults, a dict passes arguments to
            `MultiTaskModel.compile`, False leaves the model uncompiled.
        name: model name. Defaults to None: "mmoe" ("omoe" with `single_gate`).

    Returns:
        A `MultiTaskModel` with inputs named after the features and a dict of
        outputs keyed by task name. `keras_mtl.gate_weights(model, data)` reads
        which experts each task uses (the gates are named after the tasks; the
        OMoE gate is named "shared").

    Example:
    >>> features = [km.SparseFeature("user", vocabulary_size=100, embedding_dim=4),
    ...             km.DenseFeature("age", mean=40.0, std=12.0)]
    >>> model = build_mmoe(features, [Task("income"), Task("marital")],
    ...                    num_experts=8, expert_units=(16,), tower_units=(8,))
    >>> x = {"user": np.array([3, 7]), "age": np.array([31.0, 52.0])}
    >>> {task: p.shape for task, p in model.predict(x, verbose=0).items()}
    {'income': (2,), 'marital': (2,)}

    With `feature_selection=True` each task weighs the features first (every
    weight starts at 1; training moves them):

    >>> model = build_mmoe(features, [Task("income"), Task("marital")],
    ...                    feature_selection=True)
    >>> km.feature_weights(model, x)["feature_selection"]
          income  marital
    user     1.0      1.0
    age      1.0      1.0

    References:
        Ma et al., "Modeling Task Relationships in Multi-task Learning with
        Multi-gate Mixture-of-Experts", KDD 2018.
    """
    owner = build_omoe if single_gate else build_mmoe
    tasks = check_builder_tasks(owner, tasks)
    check_dropout(owner, dropout=dropout)
    check_gate(owner.__name__, gate, attention_units)
    check_bool(owner.__name__, "feature_selection", feature_selection)
    gate_names = ("shared",) if single_gate else tuple(t.name for t in tasks)
    if feature_selection:  # one view per gate; the experts run on each
        inputs, views = encode_selected_inputs(features, gate_names)
        x = views if len(views) > 1 else views[0]
    else:
        inputs, x = encode_inputs(features)
    mixed = MixtureOfExperts(
        num_experts,
        expert_units,
        gate_names=gate_names,
        use_gate_bias=use_gate_bias,
        gate=gate,
        attention_units=attention_units,
        name="experts",
    )(x)
    task_inputs = [mixed[0]] * len(tasks) if single_gate else mixed
    name = name or ("omoe" if single_gate else "mmoe")
    return finish_model(inputs, task_inputs, tasks, tower_units, dropout, name, compile)


@builds(TOWER_TASK_TYPES)
def build_omoe(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    num_experts: int = 8,
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
    """One-gate mixture-of-experts: `build_mmoe(..., single_gate=True)`.

    Every task reads the same gated mixture of the shared experts (the MMoE
    paper's OMoE baseline).

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass); the model outputs
            one prediction per task.
        num_experts: number of experts. Defaults to 8.
        expert_units: hidden widths of each expert. Defaults to (16,).
        tower_units: widths of each task tower. Defaults to (8,).
        use_gate_bias: add a bias in the gate. Defaults to False.
        gate: "softmax" (the paper's: `softmax(W x)` over the experts) or
            "attention" (a task query from the input over expert keys from the
            experts' outputs, scaled dot product; `keras_mtl.layers.MixtureOfExperts`).
            Defaults to "softmax".
        attention_units: int or None. Query / key width of the attention
            gates. Defaults to None: the experts' output width.
        feature_selection: bool. One learned selection of the feature fields
            (named "shared", as the gate) in front of the experts and the
            gate; every task reads the same mixture, so the tasks share it.
            Defaults to False.
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        compile: True compiles with per-task defaults, a dict passes arguments to
            `MultiTaskModel.compile`, False leaves the model uncompiled.
        name: model name. Defaults to None: "omoe".

    Returns:
        A `MultiTaskModel` as `build_mmoe` returns; its one gate is named
        "shared".

    References:
        Ma et al., "Modeling Task Relationships in Multi-task Learning with
        Multi-gate Mixture-of-Experts", KDD 2018 (the OMoE baseline).
    """
    return build_mmoe(
        features,
        tasks,
        num_experts=num_experts,
        expert_units=expert_units,
        tower_units=tower_units,
        single_gate=True,
        use_gate_bias=use_gate_bias,
        gate=gate,
        attention_units=attention_units,
        feature_selection=feature_selection,
        dropout=dropout,
        compile=compile,
        name=name,
    )
