"""L2-constrained soft sharing: per-task networks pulled towards each other."""

from __future__ import annotations

from collections.abc import Sequence

from keras_mtl.features import Feature
from keras_mtl.models._common import (
    TOWER_TASK_TYPES,
    builds,
    check_builder_tasks,
    check_dropout,
    encode_inputs,
    finish_model,
    per_task_hidden,
)
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.tasks import Task


@builds(TOWER_TASK_TYPES)
def build_l2_constrained(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    hidden_units: Sequence[int] = (32, 16),
    tower_units: Sequence[int] = (8,),
    coupling: float = 1e-3,
    dropout: float = 0.0,
    hidden_dropout: float = 0.0,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """Per-task hidden stacks with an L2 penalty between corresponding layers.

    Every task has its own hidden layers (`ParallelDense`, one branch per task,
    named `hidden_1, hidden_2, ...`), and training minimises

        Σ_k L_k + coupling · Σ_l Σ_{i<j} ||θ_l^i - θ_l^j||²

    where `θ_l^k` are the kernel and bias of task `k`'s layer `l`. For two tasks
    this is the MMoE paper's L2-constrained baseline,
    `L_1 + L_2 + α ||θ_1 - θ_2||²`; with more tasks the penalty is summed over
    every pair. `coupling = 0` gives independent task networks on shared
    embeddings; a large `coupling` approaches a shared bottom. The penalty is
    added by the layers (`model.losses`) and so is part of the `loss` that
    `fit` reports.

    The embeddings are shared by all tasks (one `FeatureEncoder`,
    `feature_encoder`), as in shared-bottom and MMoE; only the hidden layers are
    per task. The task towers are not coupled: they are free per-task heads, as
    the penalty in the paper ties the hidden layers.

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass); the model outputs
            one prediction per task.
        hidden_units: widths of each task's hidden layers. Must not be empty.
            Defaults to (32, 16).
        tower_units: widths of each task tower. Defaults to (8,).
        coupling: float >= 0. The penalty weight `α`. Defaults to 1e-3.
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        hidden_dropout: float. Dropout after each task's hidden layers.
            Defaults to 0.
        compile: True compiles with per-task defaults
            (`MultiTaskModel.compile`), a dict passes arguments to it, False
            leaves the model uncompiled. Defaults to True.
        name: model name. Defaults to None: "l2_constrained".

    Returns:
        A `MultiTaskModel`: inputs named after the features, outputs a dict keyed
        by task name, each of shape `(batch,)` (`(batch, num_classes)` for a
        multiclass task). Each hidden layer's unscaled
        distance is `model.get_layer(f"hidden_{l}").coupling_penalty()`.

    Example:
    >>> features = [km.SparseFeature("user", vocabulary_size=100, embedding_dim=4),
    ...             km.DenseFeature("age", mean=40.0, std=12.0)]
    >>> model = build_l2_constrained(features, [Task("income"), Task("marital")],
    ...                              hidden_units=(32, 16), coupling=1e-3)
    >>> model.get_layer("hidden_1").coupling
    0.001

    References:
        Duong et al., "Low Resource Dependency Parsing: Cross-lingual Parameter
        Sharing in a Neural Network Parser", ACL 2015.
        Ma et al., "Modeling Task Relationships in Multi-task Learning with
        Multi-gate Mixture-of-Experts", KDD 2018 (the L2-constrained baseline).
    """
    tasks = check_builder_tasks(build_l2_constrained, tasks)
    check_dropout(build_l2_constrained, dropout=dropout)
    inputs, x = encode_inputs(features)
    h = per_task_hidden(
        "build_l2_constrained",
        x,
        len(tasks),
        hidden_units,
        hidden_dropout,
        coupling=coupling,
    )
    name = name or "l2_constrained"
    return finish_model(inputs, h, tasks, tower_units, dropout, name, compile)
