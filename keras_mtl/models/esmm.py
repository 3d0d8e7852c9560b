"""Entire-space conversion models: ESMM and ESM²."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_mtl.features import Feature
from keras_mtl.layers import BernoulliMixture, TaskTower
from keras_mtl.models._common import (
    FUNNEL_TASK_TYPES,
    builds,
    check_builder_tasks,
    check_dropout,
    encode_inputs,
    make_model,
)
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.tasks import Task, esm2_tasks, esmm_tasks

#: The paper's tower: MLP 360-200-80, then the output unit.
ESMM_TOWER = (360, 200, 80)


def _towers(x, names, units, dropout):
    return [
        TaskTower(units, "binary", dropout=dropout, name=f"{n}_tower")(x) for n in names
    ]


@builds(FUNNEL_TASK_TYPES)
def build_esmm(
    features: Sequence[Feature],
    tasks: Sequence[Task] | None = None,
    *,
    tower_units: Sequence[int] = ESMM_TOWER,
    dropout: float = 0.0,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """Entire Space Multi-task Model: pCTCVR = pCTR x pCVR over all impressions.

    A CTR tower and a CVR tower read the same embeddings (one `FeatureEncoder`,
    field-wise sum pooling for multi-valued fields). There is no loss on `cvr`:
    the model is trained with the CTR loss and the CTCVR loss on every
    impression, so the CVR tower learns from the entire impression space instead
    of clicked impressions only (no sample selection bias, and the embeddings
    learn from all impressions).

    Args:
        features: the input feature specs. The paper uses `embedding_dim=18`.
        tasks: the binary tasks to compile with, or None for `esmm_tasks()`:
            labels `click` and `conversion`, losses on `ctr` and `ctcvr`, AUC on
            all three (CVR AUC on clicked impressions). Task names must be
            among "ctr", "cvr", "ctcvr". Defaults to None.
        tower_units: hidden widths of each tower. Defaults to (360, 200, 80),
            the paper's.
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        compile: True compiles for `tasks`, a dict passes arguments to
            `MultiTaskModel.compile`, False leaves the model uncompiled.
        name: model name. Defaults to None: "esmm".

    Returns:
        A `MultiTaskModel` with inputs named after the features and outputs
        `{"ctr", "cvr", "ctcvr"}`, each `(batch,)`. It trains on
        `make_dataset(data, features, tasks)` with `tasks` either `esmm_tasks()`
        or just the `ctr` and `ctcvr` tasks.

    Example:
    >>> funnel = km.datasets.make_funnel(num_impressions=2048, seed=0)
    >>> model = build_esmm(funnel.features, tower_units=(16,))
    >>> ds = km.data.make_dataset(funnel.frame, funnel.features, esmm_tasks())
    >>> history = model.fit(ds, epochs=1, verbose=0)
    >>> sorted(model.output)
    ['ctcvr', 'ctr', 'cvr']

    References:
        Ma et al., "Entire Space Multi-Task Model: An Effective Approach for
        Estimating Post-Click Conversion Rate", SIGIR 2018 (arXiv:1804.07931).
    """
    tasks = _funnel_tasks(tasks, esmm_tasks(), build_esmm)
    check_dropout(build_esmm, dropout=dropout)
    inputs, x = encode_inputs(features)
    ctr, cvr = _towers(x, ("ctr", "cvr"), tower_units, dropout)
    ctcvr = keras.layers.Multiply(name="ctcvr")([ctr, cvr])
    outputs = {"ctr": ctr, "cvr": cvr, "ctcvr": ctcvr}
    return make_model(inputs, outputs, tasks, name or "esmm", compile)


@builds(FUNNEL_TASK_TYPES)
def build_esm2(
    features: Sequence[Feature],
    tasks: Sequence[Task] | None = None,
    *,
    tower_units: Sequence[int] = ESMM_TOWER,
    dropout: float = 0.0,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """ESM²: impression -> click -> action (cart / wish) -> purchase, over all impressions.

    Four towers on shared embeddings predict y1 = p(click), y2 = p(action |
    click), y3 = p(buy | action) and y4 = p(buy | click, no action). The outputs
    are products of these conditional probabilities:
    `ctr = y1`, `ctavr = y1 y2`, `cvr = y2 y3 + (1 - y2) y4`, `ctcvr = ctr cvr`;
    `ctr`, `ctavr` and `ctcvr` have labels on every impression and are trained
    there, `cvr` is only evaluated (on clicked impressions).

    Args:
        features: the input feature specs.
        tasks: the binary tasks to compile with, or None for `esm2_tasks()`
            (labels `click`, `action`, `conversion`). Names must be among
            "ctr", "ctavr", "cvr", "ctcvr". Defaults to None.
        tower_units: hidden widths of each of the four towers. Defaults to
            (360, 200, 80).
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        compile: True, False or a dict of `MultiTaskModel.compile` arguments.
        name: model name. Defaults to None: "esm2".

    Returns:
        A `MultiTaskModel` with outputs `{"ctr", "ctavr", "cvr", "ctcvr"}`,
        each `(batch,)`.

    References:
        Wen et al., "Entire Space Multi-Task Modeling via Post-Click Behavior
        Decomposition for Conversion Rate Prediction", SIGIR 2020
        (arXiv:1910.07099).
    """
    tasks = _funnel_tasks(tasks, esm2_tasks(), build_esm2)
    check_dropout(build_esm2, dropout=dropout)
    inputs, x = encode_inputs(features)
    click, action, buy_action, buy_other = _towers(
        x,
        ("ctr", "action_given_click", "buy_given_action", "buy_given_no_action"),
        tower_units,
        dropout,
    )
    cvr = BernoulliMixture(name="cvr")([action, buy_action, buy_other])
    outputs = {
        "ctr": click,
        "ctavr": keras.layers.Multiply(name="ctavr")([click, action]),
        "cvr": cvr,
        "ctcvr": keras.layers.Multiply(name="ctcvr")([click, cvr]),
    }
    return make_model(inputs, outputs, tasks, name or "esm2", compile)


def _funnel_tasks(tasks, default: list[Task], builder) -> list[Task]:
    if tasks is None:
        return default
    tasks = check_builder_tasks(builder, tasks)
    names = [t.name for t in default]
    unknown = [t.name for t in tasks if t.name not in names]
    if unknown:
        raise ValueError(
            f"{builder.__name__}: task names must be among the outputs {names}; got {unknown}."
        )
    return tasks
