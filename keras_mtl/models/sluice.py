"""Sluice network: per-task networks that learn what to share, where and in which subspace."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_mtl._checks import (
    check_fraction,
    check_non_negative,
    check_positive_int,
    check_rate,
    check_units,
)
from keras_mtl.features import Feature
from keras_mtl.layers import LayerMixture, ParallelDense, SubspaceStitch
from keras_mtl.models._common import (
    TOWER_TASK_TYPES,
    builds,
    check_builder_tasks,
    check_dropout,
    encode_inputs,
    finish_model,
)
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.tasks import Task


@builds(TOWER_TASK_TYPES)
def build_sluice(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    hidden_units: Sequence[int] = (32, 32),
    num_subspaces: int = 2,
    tower_units: Sequence[int] = (8,),
    orthogonality: float = 0.0,
    self_weight: float | None = None,
    last_layer_weight: float = 0.9,
    dropout: float = 0.0,
    hidden_dropout: float = 0.0,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """Sluice network: one network per task, mixed per layer and per subspace.

    Every task has K hidden layers of its own (`ParallelDense`, one branch per
    task, named `hidden_1 ... hidden_K`). Each layer's output is cut into
    `num_subspaces` parts (M = 2: its two halves) and a `SubspaceStitch` unit
    (`sluice_k`) mixes all tasks' parts with a learned, unnormalised
    `(T·M) x (T·M)` matrix α: the model learns what to share, between which
    tasks and in which subspace (M = 1 is a cross-stitch network). Each task's
    tower reads `Σ_k β_k h_k`, a learned weighting (`LayerMixture`,
    `layer_weights_<task>`) of its K mixed layer outputs, so it also learns at
    which depth to read. With `orthogonality > 0` (M = 2), the loss adds
    `orthogonality · Σ ||G_1ᵀ G_2||²_F` over every task layer, `G_1` and `G_2`
    the weights of the layer's two halves of units (see `ParallelDense`):
    zero when every weight vector of one subspace is orthogonal to every one
    of the other, so the two subspaces hold different information.

    The embeddings are shared by all tasks (one `FeatureEncoder`), as in
    `build_cross_stitch` and for the same reason.

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass).
        hidden_units: widths of each task's K hidden layers, all equal (β sums
            their outputs) and multiples of `num_subspaces`. Defaults to
            (32, 32).
        num_subspaces: int. Subspaces per layer, M (the paper uses 1 or 2).
            Defaults to 2.
        tower_units: widths of each task tower. Defaults to (8,).
        orthogonality: float >= 0. Weight of the subspace orthogonality
            penalty (needs `num_subspaces=2`). Defaults to 0 (the authors'
            default; their example uses 0.1).
        self_weight: float in [0, 1] or None. Start of every α: None for
            uniform `1 / (T·M)` (the authors'), else this on the diagonal (see
            `SubspaceStitch`). The uniform start is hard sharing at first
            (every task reads the average of all subspaces) and α moves slowly
            at the default learning rate: on the builder tests' data, 8 epochs
            reached an income AUC of 0.56 from it against 0.82 from
            `self_weight=0.9` (cross-stitch's start). Defaults to None.
        last_layer_weight: float in [0, 1]. Start of every β on the last layer
            (the others share the rest). Defaults to 0.9 (the authors').
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        hidden_dropout: float. Dropout after each hidden layer, before its
            sluice unit. Defaults to 0.
        compile: True compiles with per-task defaults, a dict passes arguments
            to `MultiTaskModel.compile`, False leaves the model uncompiled.
        name: model name. Defaults to None: "sluice".

    Returns:
        A `MultiTaskModel` with inputs named after the features and a dict of
        outputs keyed by task name. The learned α of layer k is
        `model.get_layer(f"sluice_{k}").weights_matrix` and a task's β
        `model.get_layer(f"layer_weights_{task}").layer_weights`.

    Example:
    >>> features = [km.SparseFeature("user", vocabulary_size=100, embedding_dim=4),
    ...             km.DenseFeature("age", mean=40.0, std=12.0)]
    >>> model = build_sluice(features, [Task("income"), Task("marital")],
    ...                      hidden_units=(16, 16), num_subspaces=2)
    >>> model.get_layer("sluice_1").weights_matrix.shape  # 2 tasks x 2 halves
    (4, 4)
    >>> model.get_layer("layer_weights_income").layer_weights
    array([0.1, 0.9], dtype=float32)

    References:
        Ruder, Bingel, Augenstein, Søgaard, "Latent Multi-task Architecture
        Learning", AAAI 2019 (arXiv:1705.08142).
    """
    owner = "build_sluice"
    tasks = check_builder_tasks(build_sluice, tasks)
    check_dropout(build_sluice, dropout=dropout)
    check_rate(owner, "hidden_dropout", hidden_dropout)
    hidden_units = check_units(owner, "hidden_units", hidden_units, allow_empty=False)
    num_subspaces = check_positive_int(owner, "num_subspaces", num_subspaces)
    orthogonality = check_non_negative(owner, "orthogonality", orthogonality)
    check_fraction(owner, "last_layer_weight", last_layer_weight)
    if self_weight is not None:
        check_fraction(owner, "self_weight", self_weight)
    if len(set(hidden_units)) != 1 or hidden_units[0] % num_subspaces:
        raise ValueError(
            f"{owner}: hidden_units must be equal widths (β sums the layers' "
            f"outputs), each a multiple of num_subspaces={num_subspaces}; got "
            f"{tuple(hidden_units)}."
        )
    if orthogonality > 0.0 and num_subspaces != 2:
        raise ValueError(
            f"{owner}: orthogonality is between the two halves of each layer; "
            f"it needs num_subspaces=2, got {num_subspaces}."
        )
    inputs, x = encode_inputs(features)
    h, layers = x, []
    for k, units in enumerate(hidden_units, start=1):
        h = ParallelDense(
            len(tasks), units, orthogonality=orthogonality, name=f"hidden_{k}"
        )(h)
        if hidden_dropout:
            drop = keras.layers.Dropout(hidden_dropout, name=f"dropout_{k}")
            h = [drop(t) for t in h]
        h = SubspaceStitch(num_subspaces, self_weight, name=f"sluice_{k}")(h)
        layers.append(h)
    mixed = [
        LayerMixture(last_layer_weight, name=f"layer_weights_{task.name}")(
            [layer[t] for layer in layers]
        )
        for t, task in enumerate(tasks)
    ]
    return finish_model(
        inputs, mixed, tasks, tower_units, dropout, name or "sluice", compile
    )
