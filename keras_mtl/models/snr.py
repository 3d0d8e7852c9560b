"""SNR: the shared bottom cut into sub-networks, with learned sparse connections."""

from __future__ import annotations

from collections.abc import Sequence

from keras_mtl._checks import check_bool, check_non_negative, check_units
from keras_mtl.features import Feature
from keras_mtl.layers import ParallelDense, SubNetworkRouting
from keras_mtl.layers.sub_network_routing import VARIANTS, check_hard_concrete
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


def _routed(x, counts, units, num_tasks: int, routing: dict, made: dict) -> list:
    """The routed sub-networks on `x`, up to the T task inputs.

    Level 1 reads `x`; level l + 1 reads `SubNetworkRouting` `routing_<l>` of
    level l; the last level goes through `task_routing`. Each level is `count`
    MLPs of `units` (a `ParallelDense` branch each per layer,
    `level_<l>_layer_<i>`). Layers are created on first use, in the order of
    use, and kept in `made` (name -> layer), so a second call on another
    input reuses them: the same weights.
    """

    def layer(cls, *args, name: str, **kwargs):
        if name not in made:
            made[name] = cls(*args, name=name, **kwargs)
        return made[name]

    def sub_networks(h, count: int, level: int):
        for i, width in enumerate(units, start=1):
            h = layer(ParallelDense, count, width, name=f"level_{level}_layer_{i}")(h)
        return h

    h = sub_networks(x, counts[0], level=1)
    for level, count in enumerate(counts[1:], start=2):
        h = layer(SubNetworkRouting, count, name=f"routing_{level - 1}", **routing)(h)
        h = sub_networks(h, count, level=level)
    return layer(SubNetworkRouting, num_tasks, name="task_routing", **routing)(h)


@builds(TOWER_TASK_TYPES)
def build_snr(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    variant: str = "trans",
    num_subnetworks: Sequence[int] = (3, 3),
    subnetwork_units: Sequence[int] = (16,),
    tower_units: Sequence[int] = (8,),
    l0_weight: float = 1e-3,
    beta: float = 2.0 / 3.0,
    gamma: float = -0.1,
    zeta: float = 1.1,
    initial_log_alpha: float = 3.0,
    feature_selection: bool = False,
    dropout: float = 0.0,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """Sub-network routing: shared layers as sub-networks joined by coding variables.

    The shared bottom is cut into levels of parallel sub-networks (MLPs of
    `subnetwork_units`, `level_<l>_layer_<i>`): level 1 reads the shared
    embeddings, level l + 1 reads `SubNetworkRouting` (`routing_<l>`) of level
    l, and each task's tower reads the routing of the last level
    (`task_routing`). Every connection i -> j is scaled by a learned
    hard-concrete coding variable `z_ij` in [0, 1], with SNR-Trans
    (`variant="trans"`) a matrix per connection, `v_j = Σ_i z_ij W_ij u_i`,
    with SNR-Aver (`"aver"`) a plain sum, `v_j = Σ_i z_ij u_i`. The L0 penalty
    (`l0_weight`) closes connections (z = 0 exactly at inference), so tasks
    that disagree stop sharing sub-networks (a closed connection contributes
    nothing, though the exported graph still computes it);
    `keras_mtl.routing_weights(model)` lists the connections and which are
    closed.

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass).
        variant: "trans" or "aver". Defaults to "trans".
        num_subnetworks: sub-networks per level. Defaults to (3, 3).
        subnetwork_units: hidden widths of every sub-network. Defaults to (16,).
        tower_units: widths of each task tower. Defaults to (8,).
        l0_weight: float >= 0. Weight of the L0 penalty of every routing.
            Defaults to 1e-3.
        beta: float > 0. The hard-concrete temperature. Defaults to 2/3
            (Louizos et al.'s, as the next two).
        gamma: float < 0. The lower stretch. Defaults to -0.1.
        zeta: float > 1. The upper stretch. Defaults to 1.1.
        initial_log_alpha: float. Start of every `log α`. Defaults to 3: the
            connections start open (z = 1 at inference, exactly 0 in about 1%
            of the training draws), so the model starts as a shared bottom of
            sub-networks and the L0 penalty closes what the tasks can do
            without.
        feature_selection: bool. Per-task feature selection: a
            `keras_mtl.layers.FeatureSelection` (named "feature_selection")
            re-weights the feature fields once per task, and the whole routed
            bottom runs on each task's view (the same weights, T times its
            compute; pass k keeps task k's output of `task_routing`). Each pass
            draws its own coding variables in training, and each routing's
            penalty weight is `l0_weight / T`, so the L0 penalty summed over
            the passes is the one without selection.
            `keras_mtl.feature_weights(model, data)` tables the weights.
            Defaults to False.
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        compile: True compiles with per-task defaults, a dict passes arguments
            to `MultiTaskModel.compile`, False leaves the model uncompiled.
        name: model name. Defaults to None: "snr".

    Returns:
        A `MultiTaskModel` with inputs named after the features and a dict of
        outputs keyed by task name.

    Example:
    >>> features = [km.SparseFeature("user", vocabulary_size=100, embedding_dim=4),
    ...             km.DenseFeature("age", mean=40.0, std=12.0)]
    >>> model = build_snr(features, [Task("income"), Task("marital")],
    ...                   num_subnetworks=(3, 2), variant="aver")
    >>> {name: table.shape for name, table in km.routing_weights(model).items()}
    {'routing_1': (3, 2), 'task_routing': (2, 2)}

    References:
        Ma, Zhao, Chen, Li, Hong, Chi, "SNR: Sub-Network Routing for Flexible
        Parameter Sharing in Multi-Task Learning", AAAI 2019. Louizos, Welling,
        Kingma, "Learning Sparse Neural Networks through L0 Regularization",
        ICLR 2018.
    """
    owner = "build_snr"
    tasks = check_builder_tasks(build_snr, tasks)
    check_dropout(build_snr, dropout=dropout)
    check_bool(owner, "feature_selection", feature_selection)
    if variant not in VARIANTS:
        raise ValueError(
            f"{owner}: variant must be one of {list(VARIANTS)}; got {variant!r}."
        )
    counts = check_units(owner, "num_subnetworks", num_subnetworks, allow_empty=False)
    units = check_units(owner, "subnetwork_units", subnetwork_units, allow_empty=False)
    check_non_negative(owner, "l0_weight", l0_weight)
    check_hard_concrete(owner, beta, gamma, zeta)
    routing = dict(
        variant=variant,
        # (with feature selection the routings run once per task: T penalties)
        l0_weight=l0_weight / len(tasks) if feature_selection else l0_weight,
        beta=beta,
        gamma=gamma,
        zeta=zeta,
        initial_log_alpha=initial_log_alpha,
    )
    made, num_tasks = {}, len(tasks)
    if feature_selection:
        inputs, views = encode_selected_inputs(features, [t.name for t in tasks])
        task_inputs = [
            _routed(view, counts, units, num_tasks, routing, made)[k]
            for k, view in enumerate(views)
        ]
    else:
        inputs, x = encode_inputs(features)
        task_inputs = _routed(x, counts, units, num_tasks, routing, made)
    return finish_model(
        inputs, task_inputs, tasks, tower_units, dropout, name or "snr", compile
    )
