"""STAR: one model for several domains, shared weights times per-domain weights."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras

from keras_mtl._checks import (
    check_fraction,
    check_positive,
    check_units,
)
from keras_mtl.features import Feature, SparseFeature, check_features, make_inputs
from keras_mtl.layers import (
    DomainIndex,
    FeatureEncoder,
    PartitionedNormalization,
    StarDense,
    StarTower,
)
from keras_mtl.layers.domain_index import check_domain_feature
from keras_mtl.models._common import (
    TOWER_TASK_TYPES,
    builds,
    check_builder_tasks,
    check_dropout,
    make_model,
)
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.tasks import Task


def _own_table(feature: Feature) -> Feature:
    """`feature` with a table of its own (the auxiliary encoder holds only some
    of the features, so a shared table's owner may be missing)."""
    if isinstance(feature, SparseFeature) and feature.share_embedding_with:
        return dataclasses.replace(feature, share_embedding_with=None)
    return feature


def _main_features(owner, features, domain):
    """Every feature but the domain, a table of its own for any that shared the
    domain's. Within a domain the domain's embedding is constant: normalised
    per domain it would be exactly 0 in training but not at inference (moving
    statistics), so the main path does not read it; the domain acts through
    `W_p`, `b_p`, the per-domain statistics and the auxiliary network."""
    main = [
        dataclasses.replace(f, share_embedding_with=None)
        if isinstance(f, SparseFeature) and f.share_embedding_with == domain
        else f
        for f in features
        if f.name != domain
    ]
    if not main:
        raise ValueError(
            f"{owner}: the domain {domain!r} is the only feature; the main path "
            "reads every feature but the domain, so STAR needs at least one more."
        )
    return main


def _domain_and_aux(owner, features, domain, aux_features, aux_units):
    """The domain's spec and the auxiliary network's feature specs, checked."""
    by_name = {f.name: f for f in features}
    if not isinstance(domain, str) or domain not in by_name:
        raise ValueError(
            f"{owner}: domain must name one of the features {list(by_name)}; got "
            f"{domain!r}."
        )
    spec = check_domain_feature(f"{owner}: domain={domain!r}", by_name[domain])
    if isinstance(aux_features, str):
        aux_features = (aux_features,)
    aux_features = tuple(aux_features)
    if aux_units is None and aux_features:
        raise ValueError(
            f"{owner}: aux_features={aux_features!r} feed the auxiliary network, "
            "which aux_units=None leaves out."
        )
    unknown = [n for n in aux_features if n not in by_name]
    if unknown:
        raise ValueError(
            f"{owner}: aux_features {unknown} are not features; known: {list(by_name)}."
        )
    if domain in aux_features or len(set(aux_features)) != len(aux_features):
        raise ValueError(
            f"{owner}: aux_features must be distinct features other than the "
            f"domain {domain!r} (the auxiliary network always reads it); got "
            f"{aux_features!r}."
        )
    return spec, [_own_table(spec)] + [_own_table(by_name[n]) for n in aux_features]


@builds(TOWER_TASK_TYPES)
def build_star(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    domain: str,
    hidden_units: Sequence[int] = (64, 32),
    tower_units: Sequence[int] = (8,),
    aux_units: Sequence[int] | None = (8,),
    aux_features: Sequence[str] = (),
    momentum: float = 0.99,
    epsilon: float = 1e-3,
    dropout: float = 0.0,
    hidden_dropout: float = 0.0,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """STAR: one model serving several domains through a star topology.

    The feature `domain` says which domain (a scenario, a page, a market) each
    example comes from. Every other feature is embedded by one shared encoder
    (`feature_encoder`); then

    - partitioned normalisation (`partitioned_normalization`,
      `PartitionedNormalization`): batch normalisation with scale `γ · γ_p`,
      shift `β + β_p` and statistics per domain (each domain's own batch
      statistics in training, its moving ones at inference);
    - star-topology fully connected layers shared by the tasks
      (`star_hidden_<i>`, `StarDense`, relu): for domain `p` the weights are
      `W ⊙ W_p` and the bias `b + b_p`, `W`, `b` shared by all domains and
      `W_p` (starting at ones), `b_p` (zeros) the domain's own;
    - per task, a star tower (`<task>_tower`, `StarTower`): `tower_units`
      `StarDense` layers and a star output unit giving the main logit `s_m`,
      to which the auxiliary network's logit `s_a` is added before the
      output activation: `sigmoid(s_m + s_a)` for a binary task (the paper's
      CTR), `s_m + s_a` for regression, `softmax(s_m + s_a)` for multiclass.
      The auxiliary network of each task is an MLP (`aux_units`) on the
      auxiliary encoder (`aux_encoder`), its own embeddings of the domain
      indicator and of the `aux_features`: it lets the domain move the
      prediction directly. With one binary task and `tower_units=()` this is
      the paper's model.

    The main path (encoder, normalisation, star layers) does not read the
    domain's embedding: constant within a domain, it would normalise to 0 in
    training but not at inference (where the moving statistics lag). The
    domain acts through `W_p`, `b_p`, its statistics and the auxiliary network.

    The domain index comes from the raw domain value inside the model
    (`domain_index`, `DomainIndex`): the `i`-th value of the feature's
    `vocabulary` (or id `i` of a `vocabulary_size` feature) is domain `i`.
    An unknown domain value (out of vocabulary, or padding) is no domain: it
    takes the shared parameters alone (`W`, `b`, `γ`, `β`) and the global
    normalisation statistics (of the whole batch in training, their moving
    average at inference), and trains the shared parameters, so data with
    rare or new domain values trains and serves (the auxiliary network reads
    the domain embedding's out-of-vocabulary row, as every encoder does).

    In training, partitioned normalisation normalises each example with its
    own domain's statistics in the batch, so batches may mix domains (the
    paper trains on batches of one domain, for which this is the same); a
    domain with very few examples in a batch gets noisy statistics, so keep
    batches large enough to hold several examples of each domain.

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass).
        domain: str. Name of the feature naming each example's domain: a
            single-valued `SparseFeature` with a `vocabulary` or a
            `vocabulary_size`, whose size is the number of domains.
        hidden_units: widths of the star-topology layers shared by the tasks
            (may be empty). Defaults to (64, 32).
        tower_units: hidden widths of each task's star tower (may be empty:
            the star output unit alone). Defaults to (8,).
        aux_units: hidden widths of each task's auxiliary network (empty: a
            linear unit on the auxiliary encoding), or None for no auxiliary
            network. Defaults to (8,).
        aux_features: names of the features the auxiliary network reads
            besides the domain (the paper's "other features depicting the
            domain"). Defaults to (): the domain indicator alone.
        momentum: float in [0, 1]. Momentum of the partitioned normalisation's
            moving statistics. Defaults to 0.99.
        epsilon: float > 0. Added to the variance in the partitioned
            normalisation. Defaults to 1e-3.
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        hidden_dropout: float. Dropout after each shared star layer
            (`dropout_<i>`). Defaults to 0.
        compile: True compiles with per-task defaults, a dict passes arguments
            to `MultiTaskModel.compile`, False leaves the model uncompiled.
        name: model name. Defaults to None: "star".

    Returns:
        A `MultiTaskModel` with inputs named after the features and a dict of
        outputs keyed by task name.

    Example:
    >>> features = [km.SparseFeature("page", vocabulary=("home", "cart", "search")),
    ...             km.SparseFeature("user", vocabulary_size=100, embedding_dim=4),
    ...             km.DenseFeature("age", mean=40.0, std=12.0)]
    >>> model = build_star(features, [Task("click"), Task("buy")], domain="page",
    ...                    hidden_units=(16,), tower_units=())
    >>> tuple(model.get_layer("star_hidden_1").domain_kernel.shape)  # 3 W_p
    (3, 5, 16)
    >>> out = model.predict({"page": np.array(["cart", "lost"]),
    ...                      "user": np.array([7, 8]), "age": np.array([30.0, 50.0])},
    ...                     verbose=0)
    >>> sorted(out), out["click"].shape  # "lost": no domain, the shared weights
    (['buy', 'click'], (2,))

    References:
        Sheng et al., "One Model to Serve All: Star Topology Adaptive
        Recommender for Multi-Domain CTR Prediction", CIKM 2021
        (arXiv:2101.11427).
    """
    owner = "build_star"
    tasks = check_builder_tasks(build_star, tasks)
    check_dropout(build_star, dropout=dropout, hidden_dropout=hidden_dropout)
    hidden_units = check_units(owner, "hidden_units", hidden_units)
    tower_units = check_units(owner, "tower_units", tower_units)
    if aux_units is not None:
        aux_units = check_units(owner, "aux_units", aux_units)
    momentum = check_fraction(owner, "momentum", momentum)
    epsilon = check_positive(owner, "epsilon", epsilon)
    features = check_features(features)
    spec, aux_specs = _domain_and_aux(owner, features, domain, aux_features, aux_units)

    main = _main_features(owner, features, domain)
    inputs = make_inputs(features)
    x = FeatureEncoder(main, name="feature_encoder")(
        {k: v for k, v in inputs.items() if k != domain}
    )
    domain_index = DomainIndex(spec, name="domain_index")
    num_domains = domain_index.num_domains
    index = domain_index(inputs[domain])
    h = PartitionedNormalization(
        num_domains, momentum, epsilon, name="partitioned_normalization"
    )([x, index])
    for i, width in enumerate(hidden_units, start=1):
        h = StarDense(width, num_domains, activation="relu", name=f"star_hidden_{i}")(
            [h, index]
        )
        if hidden_dropout:
            h = keras.layers.Dropout(hidden_dropout, name=f"dropout_{i}")(h)
    heads = [h, index]
    if aux_units is not None:
        aux_inputs = {f.name: inputs[f.name] for f in aux_specs}
        heads.append(FeatureEncoder(aux_specs, name="aux_encoder")(aux_inputs))
    outputs = {
        task.name: StarTower(
            num_domains,
            tower_units,
            task.type,
            num_classes=task.num_classes,
            aux_units=aux_units,
            dropout=dropout,
            name=f"{task.name}_tower",
        )(heads)
        for task in tasks
    }
    return make_model(inputs, outputs, tasks, name or "star", compile)
