"""Cross-stitch network: one network per task, mixed layer by layer."""

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
def build_cross_stitch(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    hidden_units: Sequence[int] = (32, 16),
    tower_units: Sequence[int] = (8,),
    self_weight: float = 0.9,
    dropout: float = 0.0,
    hidden_dropout: float = 0.0,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """Per-task hidden stacks whose activations are mixed after every layer.

    Each task has its own hidden layers (`ParallelDense`, one branch per task,
    named `hidden_1, hidden_2, ...`). After layer `l` a `CrossStitch` unit
    (`cross_stitch_l`) replaces task `s`'s activations with
    `Σ_t α_l[s, t] h_t`, where the `T x T` matrix `α_l` is learned: the model
    finds how much each pair of tasks should share at each depth, from none
    (`α` diagonal) to full sharing (uniform rows). Each task's tower reads its
    own mixed stack.

    The embeddings are shared by all tasks: one `FeatureEncoder`
    (`feature_encoder`) feeds every task network. In recommendation models the
    embedding tables hold almost all parameters and are trained on sparse ids,
    so a copy per task would multiply the model's size and starve each copy of
    updates; sharing them also makes the model comparable with shared-bottom
    and MMoE, which differ from it only above the embeddings. Use
    `build_single_task` for per-task embeddings.

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass); the model outputs
            one prediction per task.
        hidden_units: widths of each task's hidden layers; a cross-stitch unit
            follows each. Must not be empty. Defaults to (32, 16).
        tower_units: widths of each task tower. Defaults to (8,).
        self_weight: initial diagonal of every `α` (off-diagonal entries start
            at `(1 - self_weight) / (T - 1)`). Defaults to 0.9, the paper's.
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        hidden_dropout: float. Dropout after each task's hidden layers (before
            the cross-stitch unit, where there is one). Defaults to 0.
        compile: True compiles with per-task defaults
            (`MultiTaskModel.compile`), a dict passes arguments to it, False
            leaves the model uncompiled. Defaults to True.
        name: model name. Defaults to None: "cross_stitch".

    Returns:
        A `MultiTaskModel`: inputs named after the features, outputs a dict keyed
        by task name, each of shape `(batch,)` (`(batch, num_classes)` for a
        multiclass task). The learned mixing matrices are
        `model.get_layer(f"cross_stitch_{l}").weights_matrix`.

    Example:
    >>> features = [km.SparseFeature("user", vocabulary_size=100, embedding_dim=4),
    ...             km.DenseFeature("age", mean=40.0, std=12.0)]
    >>> model = build_cross_stitch(features, [Task("income"), Task("marital")],
    ...                            hidden_units=(32, 16))
    >>> np.asarray(model.get_layer("cross_stitch_1").weights_matrix)
    array([[0.9, 0.1],
           [0.1, 0.9]], dtype=float32)

    References:
        Misra et al., "Cross-stitch Networks for Multi-task Learning", CVPR 2016
        (arXiv:1604.03539).
    """
    tasks = check_builder_tasks(build_cross_stitch, tasks)
    check_dropout(build_cross_stitch, dropout=dropout)
    inputs, x = encode_inputs(features)
    h = per_task_hidden(
        "build_cross_stitch",
        x,
        len(tasks),
        hidden_units,
        hidden_dropout,
        self_weight=self_weight,
    )
    name = name or "cross_stitch"
    return finish_model(inputs, h, tasks, tower_units, dropout, name, compile)
