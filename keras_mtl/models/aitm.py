"""AITM: towers for a sequence of conversion steps, linked by attention."""

from __future__ import annotations

from collections.abc import Sequence

from keras_mtl._checks import check_non_negative
from keras_mtl.features import Feature
from keras_mtl.layers import MLP, AdaptiveInformationTransfer, AuxiliaryLoss, TaskTower
from keras_mtl.losses import FunnelCalibration
from keras_mtl.models._common import (
    FUNNEL_TASK_TYPES,
    builds,
    check_builder_tasks,
    check_dropout,
    encode_inputs,
    make_model,
)
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.tasks import Task, aitm_tasks


@builds(FUNNEL_TASK_TYPES)
def build_aitm(
    features: Sequence[Feature],
    tasks: Sequence[Task] | None = None,
    *,
    tower_units: Sequence[int] = (128, 64, 32),
    calibration_weight: float = 0.6,
    dropout: float = 0.0,
    transfer_dropout: float = 0.0,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """Adaptive Information Transfer Multi-task model for multi-step conversions.

    `tasks` are the steps of a funnel in order (e.g. click, then purchase), each
    labelled on every impression. Every step has a tower on the shared
    embeddings. From the second step on, an `AdaptiveInformationTransfer` layer
    attends over the step's own tower output and information projected from the
    previous step's, and the step's probability is read from the result. The
    behavioural expectation calibrator adds
    `calibration_weight * mean(max(p_t - p_{t-1}, 0))` for each consecutive
    pair, since a later step cannot be likelier than an earlier one.

    Args:
        features: the input feature specs (the authors use `embedding_dim=5`).
        tasks: the funnel steps, in order, all binary and trained (not
            `metric_only`), or None for `aitm_tasks()`: `[Task("ctr",
            label="click"), Task("ctcvr", label="conversion",
            requires="click")]`. Defaults to None.
        tower_units: widths of each tower. Defaults to (128, 64, 32), the
            authors'.
        calibration_weight: float >= 0. Weight of the calibrator. Defaults to
            0.6, the paper's.
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        transfer_dropout: float. Dropout on the information each step's
            `AdaptiveInformationTransfer` receives from the previous step.
            Defaults to 0.
        compile: True, False or a dict of `MultiTaskModel.compile` arguments.
        name: model name. Defaults to None: "aitm".

    Returns:
        A `MultiTaskModel` with one `(batch,)` probability per task; the
        transfer layers are named `"{task}_ait"`.

    References:
        Xi et al., "Modeling the Sequential Dependence among Audience
        Multi-step Conversions with Multi-task Learning in Targeted Display
        Advertising", KDD 2021 (arXiv:2105.08489).
    """
    if tasks is None:
        tasks = aitm_tasks()
    tasks = check_builder_tasks(build_aitm, tasks)
    wrong = [t.name for t in tasks if t.metric_only]
    if wrong or len(tasks) < 2:
        raise ValueError(
            "build_aitm: needs at least 2 funnel steps, each a trained binary task; "
            f"got {[t.name for t in tasks]} (metric_only: {wrong})."
        )
    check_non_negative("build_aitm", "calibration_weight", calibration_weight)
    check_dropout(build_aitm, dropout=dropout, transfer_dropout=transfer_dropout)
    inputs, x = encode_inputs(features)
    outputs, previous_hidden, previous_p = {}, None, None
    for task in tasks:
        hidden = MLP(tower_units, dropout=dropout, name=f"{task.name}_tower")(x)
        if previous_hidden is not None:
            hidden = AdaptiveInformationTransfer(
                dropout=transfer_dropout, name=f"{task.name}_ait"
            )([hidden, previous_hidden])
        p = TaskTower((), "binary", name=f"{task.name}_output")(hidden)
        if previous_p is not None and calibration_weight > 0:
            p = AuxiliaryLoss(
                FunnelCalibration(), calibration_weight, name=f"{task.name}_calibration"
            )([previous_p, p])
        outputs[task.name] = p
        previous_hidden, previous_p = hidden, p
    return make_model(inputs, outputs, tasks, name or "aitm", compile)
