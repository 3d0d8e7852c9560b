"""SNR: the shared bottom cut into sub-networks, with learned sparse connections."""

from __future__ import annotations

from collections.abc import Sequence

from keras_mtl._checks import check_non_negative, check_units
from keras_mtl.features import Feature
from keras_mtl.layers import ParallelDense, SubNetworkRouting
from keras_mtl.layers.sub_network_routing import VARIANTS, check_hard_concrete
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


def _sub_networks(inputs, count: int, units: Sequence[int], level: int) -> list:
    """`count` MLPs (one `ParallelDense` branch each per layer) on `inputs`
    (one tensor for all, or one per sub-network)."""
    h = inputs
    for i, width in enumerate(units, start=1):
        h = ParallelDense(count, width, name=f"level_{level}_layer_{i}")(h)
    return h


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
        l0_weight=l0_weight,
        beta=beta,
        gamma=gamma,
        zeta=zeta,
        initial_log_alpha=initial_log_alpha,
    )
    inputs, x = encode_inputs(features)
    h = _sub_networks(x, counts[0], units, level=1)
    for level, count in enumerate(counts[1:], start=2):
        h = SubNetworkRouting(count, name=f"routing_{level - 1}", **routing)(h)
        h = _sub_networks(h, count, units, level=level)
    task_inputs = SubNetworkRouting(len(tasks), name="task_routing", **routing)(h)
    return finish_model(
        inputs, task_inputs, tasks, tower_units, dropout, name or "snr", compile
    )
