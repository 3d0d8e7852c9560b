"""Multilinear relationship networks: task layers under a learned tensor-normal prior."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_mtl._checks import check_units
from keras_mtl.features import Feature
from keras_mtl.layers import MLP, TensorNormalDense
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
def build_mrn(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    shared_units: Sequence[int] = (32,),
    task_units: Sequence[int] = (16,),
    tower_units: Sequence[int] = (),
    prior_weight: float = 1e-3,
    epsilon: float = 1e-5,
    update_every: int = 1,
    dropout: float = 0.0,
    hidden_dropout: float = 0.0,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """Multilinear relationship network: task layers that learn how tasks relate.

    The embeddings and a shared bottom MLP (`shared_units`, named "bottom") are
    shared by every task and trained with them. Above it every task has its own
    hidden layers (`task_units`), each a `TensorNormalDense` (`task_layer_1`,
    `task_layer_2`, ...): the task kernels of a layer, stacked into a tensor
    `W` (input x output x task), carry a tensor-normal prior whose penalty

        prior_weight · vec(W)ᵀ (Ω_task ⊗ Ω_out ⊗ Ω_in) vec(W)

    joins the loss, and whose covariances (between input features, output units
    and tasks) are re-estimated by their flip-flop closed forms every
    `update_every` training steps. The learned task covariance pulls related
    tasks' weights together; `keras_mtl.prior_task_correlation(model)` reads it.
    Each task's `TaskTower` (`tower_units`, by default just the output layer)
    reads its task's last hidden layer.

    The task layers start independently (as freshly initialised task layers
    above shared ones), so unit j of one task is at first unrelated to unit j
    of another and the task correlation starts from chance alignments; read it
    as what the prior currently couples, not as a measured task relatedness
    (see `TensorNormalDense` on what `Σ_task` compares).

    The prior is on the task-specific hidden layers only: they have one width
    for every task, so their kernels stack into one tensor. The towers' output
    layers (1 unit for a binary or regression task, C for a multiclass one) do
    not stack in general and stay unregularised; the shared layers below are
    fine-tuned, not frozen, as in the paper.

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass).
        shared_units: widths of the shared bottom MLP (may be empty: the task
            layers then read the embeddings). Defaults to (32,).
        task_units: widths of each task's hidden layers, every one under the
            prior. Must not be empty. Defaults to (16,).
        tower_units: hidden widths of each task tower above them. Defaults to
            (): the tower is the output layer.
        prior_weight: float >= 0. Weight of the tensor-normal penalty of every
            task layer. Defaults to 1e-3.
        epsilon: float > 0. The `εI` added to every covariance update.
            Defaults to 1e-5.
        update_every: int >= 1. Training steps between covariance updates.
            Defaults to 1 (every step, as the authors' code).
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        hidden_dropout: float. Dropout after each shared and task hidden
            layer. Defaults to 0.
        compile: True compiles with per-task defaults, a dict passes arguments
            to `MultiTaskModel.compile`, False leaves the model uncompiled.
        name: model name. Defaults to None: "mrn".

    Returns:
        A `MultiTaskModel` with inputs named after the features and a dict of
        outputs keyed by task name.

    Example:
    >>> features = [km.SparseFeature("user", vocabulary_size=100, embedding_dim=4),
    ...             km.DenseFeature("age", mean=40.0, std=12.0)]
    >>> model = build_mrn(features, [Task("income"), Task("marital")],
    ...                   task_units=(8,))
    >>> km.prior_task_correlation(model)  # the identity until a training step
            income  marital
    income     1.0      0.0
    marital    0.0      1.0

    References:
        Long, Cao, Wang, Yu, "Learning Multiple Tasks with Multilinear
        Relationship Networks", NIPS 2017 (arXiv:1506.02117).
    """
    owner = "build_mrn"
    tasks = check_builder_tasks(build_mrn, tasks)
    check_dropout(build_mrn, dropout=dropout, hidden_dropout=hidden_dropout)
    shared_units = check_units(owner, "shared_units", shared_units)
    task_units = check_units(owner, "task_units", task_units, allow_empty=False)
    prior = dict(prior_weight=prior_weight, epsilon=epsilon, update_every=update_every)
    inputs, x = encode_inputs(features)
    h = MLP(shared_units, dropout=hidden_dropout, name="bottom")(x)
    for i, units in enumerate(task_units, start=1):
        try:
            layer = TensorNormalDense(
                len(tasks), units, name=f"task_layer_{i}", **prior
            )
        except ValueError as e:  # name the builder, keep the layer's message
            raise ValueError(f"{owner}: {e}") from None
        h = layer(h)
        if hidden_dropout:
            drop = keras.layers.Dropout(hidden_dropout, name=f"dropout_{i}")
            h = [drop(t) for t in h]
    return finish_model(inputs, h, tasks, tower_units, dropout, name or "mrn", compile)
