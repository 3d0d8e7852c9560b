"""DUPN: one user representation from behaviour sequences, shared by many tasks."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import keras

from keras_mtl._checks import check_units
from keras_mtl.features import (
    Feature,
    SequenceFeature,
    check_features,
    make_inputs,
)
from keras_mtl.layers import (
    CandidateScorer,
    FeatureEncoder,
    FieldEmbedding,
    LSTMAttentionEncoder,
    TaskTower,
)
from keras_mtl.models._common import (
    builds,
    check_builder_tasks,
    check_dropout,
    make_model,
)
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.tasks import Task

#: Name of the layer whose output is the user representation (the encoder's output).
USER_REPRESENTATION = "user_representation"


#: Task types `build_dupn` builds: item scores, candidate lists, user-level heads.
DUPN_TASK_TYPES = ("binary", "regression", "multiclass", "ranking")


@dataclasses.dataclass(frozen=True)
class _Roles:
    """What each of `build_dupn`'s features is."""

    history: SequenceFeature
    candidates: SequenceFeature | None
    item: list  # the target item's fields (flat specs equal to history.item)
    profile: list
    query: list


def _name_of(arg: str, value) -> str:
    if isinstance(value, str):
        return value
    name = getattr(value, "name", None)
    if not isinstance(name, str):
        raise TypeError(
            f"build_dupn: {arg} must name a feature (its name or its spec); got "
            f"{value!r}."
        )
    return name


def _pick_sequence(arg: str, chosen, sequences: dict, rule: str, candidates: list):
    """The sequence `arg` names, else the only one of `candidates` (None if none)."""
    if chosen is not None:
        name = _name_of(arg, chosen)
        given_spec = not isinstance(chosen, str)
        if name not in sequences or (given_spec and chosen != sequences[name]):
            raise ValueError(
                f"build_dupn: {arg}={name!r} is no SequenceFeature of features; "
                f"they are {sorted(sequences)}."
            )
        return sequences[name]
    if len(candidates) > 1:
        raise ValueError(
            f"build_dupn: SequenceFeatures {[f.name for f in candidates]} could "
            f"each be the {arg} ({rule}); name one with {arg}=."
        )
    return candidates[0] if candidates else None


def _feature_roles(features, history, candidates, query) -> _Roles:
    """Split `features` into history, candidate list, target item, profile, query.

    See `build_dupn` for the rule; anything ambiguous is an error.
    """
    features = check_features(features, allow_sequences=True)
    sequences = {f.name: f for f in features if isinstance(f, SequenceFeature)}
    if not sequences:
        raise ValueError(
            "build_dupn: features need the behaviour sequence, a SequenceFeature "
            "with properties; got none."
        )
    with_properties = [f for f in sequences.values() if f.properties]
    history = _pick_sequence(
        "history", history, sequences, "with behaviour properties", with_properties
    )
    if history is None:
        raise ValueError(
            f"build_dupn: SequenceFeature(s) {sorted(sequences)} have no behaviour "
            "properties; DUPN's history steps are <item, property> pairs (a constant "
            "property will do)."
        )
    if not history.properties:
        raise ValueError(
            f"build_dupn: SequenceFeature {history.name!r} has no behaviour "
            "properties; DUPN's steps are <item, property> pairs (a constant "
            "property will do)."
        )
    others = [f for f in sequences.values() if f is not history]
    lists = [f for f in others if not f.properties]
    candidates = _pick_sequence(
        "candidates", candidates, sequences, "without properties", lists
    )
    if candidates is history:
        raise ValueError("build_dupn: history and candidates name the same feature.")
    unused = [f.name for f in others if f is not candidates]
    if unused:
        raise ValueError(
            f"build_dupn: SequenceFeature(s) {unused} are neither the history "
            f"({history.name!r}) nor the candidate list; DUPN reads one behaviour "
            "sequence."
        )
    if candidates is not None:
        if candidates.properties:
            raise ValueError(
                f"build_dupn: the candidate list {candidates.name!r} must have no "
                "properties (its steps are items to score)."
            )
        if candidates.item != history.item:
            raise ValueError(
                f"build_dupn: candidates {candidates.name!r} must have the same item "
                f"fields as history {history.name!r} (they share the item tables)."
            )

    flat = [f for f in features if not isinstance(f, SequenceFeature)]
    item_fields = {f.name: f for f in history.item}
    item = [f for f in flat if f.name in item_fields]
    differ = [f.name for f in item if f != item_fields[f.name]]
    if differ:
        raise ValueError(
            f"build_dupn: features {differ} are named like item fields of history "
            f"{history.name!r} (the target item) but are other specs; the target "
            "item must use the history's item specs, and a profile or query feature "
            "another name."
        )
    query_names = [_name_of("query", q) for q in query]
    flat_by_name = {f.name: f for f in flat}
    unknown = [
        n
        for q, n in zip(query, query_names)
        if n not in flat_by_name or (not isinstance(q, str) and q != flat_by_name[n])
    ]
    if unknown:
        raise ValueError(
            f"build_dupn: query {unknown} names no flat feature of features; they "
            f"are {list(flat_by_name)}."
        )
    taken = [n for n in query_names if n in item_fields]
    if taken:
        raise ValueError(
            f"build_dupn: query {taken} are the target item's fields, not request "
            "context."
        )
    return _Roles(
        history=history,
        candidates=candidates,
        item=item,
        profile=[f for f in flat if f.name not in {*item_fields, *query_names}],
        query=[f for f in flat if f.name in query_names],
    )


def _item_task_names(tasks: list[Task], item_tasks) -> set[str]:
    names = {t.name: t for t in tasks}
    if item_tasks is None:
        return {"ctr"} & set(names)
    unknown = [n for n in item_tasks if n not in names]
    if unknown:
        raise ValueError(
            f"build_dupn: item_tasks {unknown} are not tasks; tasks are {list(names)}."
        )
    wrong = [n for n in item_tasks if names[n].type not in ("binary", "regression")]
    if wrong:
        raise ValueError(
            f"build_dupn: item_tasks {wrong} must be binary or regression tasks (a "
            "ranking task scores its candidate list anyway)."
        )
    return set(item_tasks)


@builds(DUPN_TASK_TYPES)
def build_dupn(
    features: Sequence[Feature | SequenceFeature],
    tasks: Sequence[Task],
    *,
    history: str | SequenceFeature | None = None,
    candidates: str | SequenceFeature | None = None,
    query: Sequence[str | Feature] = (),
    item_tasks: Sequence[str] | None = None,
    cell: str = "property_gated",
    pooling: str = "attention",
    units: int = 128,
    attention_units: int = 64,
    profile_units: int = 128,
    tower_units: Sequence[int] = (64,),
    dropout: float = 0.0,
    heads: Mapping[str, keras.layers.Layer] | None = None,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """DUPN (Ni et al., KDD 2018): a universal user representation, many heads.

    The user's behaviour sequence (the history: per step an item and the
    behaviour's properties) is embedded (`FieldEmbedding`), run through an
    LSTM (DUPN's property-gated LSTM by default) and pooled by attention whose
    query is the request context (the `query` features, e.g. the search query)
    with the user profile (`LSTMAttentionEncoder`). That vector (`units`,
    default 128) and a profile vector (`profile_units`, default 128) form the
    user representation (default 256, the output of the layer named
    "user_representation"). Every task reads it:

    - a binary / regression task named in `item_tasks` (default: a task named
      "ctr") scores the target item (`CandidateScorer`);
    - a "ranking" task (L2R) scores each item of the candidate list
      (`CandidateScorer`; keras-rs pairwise loss, NDCG@10);
    - any other task (e.g. PPP, multiclass; FIFP, binary) is a `TaskTower` on
      the representation alone;
    - `heads={"task": layer}` replaces a task's head by your own registered
      layer, called with the representation, or `[representation, items]` for
      item and ranking tasks.

    **What each feature is.** `features` is the one list of specs that
    `make_dataset` also takes; each entry's role follows from its kind:

    - the history is the `SequenceFeature` with behaviour properties (or the
      one `history=` names, when several have properties);
    - the candidate list is a `SequenceFeature` without properties (or the one
      `candidates=` names), with the history's item fields and `max_len` = the
      ranking tasks' `list_size`; it is needed by ranking tasks and only by
      them;
    - flat features named like the history's item fields (same specs) are the
      target item, needed by the item tasks and only by them;
    - the flat features named in `query=` are the request context; every
      other flat feature is a user profile feature.

    Anything else is an error naming the features: two candidate sequences
    without `history=` / `candidates=`, a third sequence, a target-item field
    with another spec, a candidate list or target item that no task reads.

    The item tables are shared by the history, the target item and the
    candidates. `keras_mtl.dupn_serving_models` splits the model into a user
    encoder and a scorer, and `keras_mtl.export_dupn` exports all three.

    Args:
        features: list of `SequenceFeature` / `SparseFeature` / `DenseFeature`:
            the history, optionally the candidate list, the target item's
            fields, profile and query features (see above).
        tasks: list of `Task` (binary, regression, multiclass or ranking).
        history: str or `SequenceFeature`. Which sequence is the history, by
            name or spec. Defaults to None (the one with properties).
        candidates: str or `SequenceFeature`. Which sequence is the candidate
            list. Defaults to None (the one without properties, if any).
        query: list of str or feature specs. The flat features that are
            request context rather than user profile. Defaults to none.
        item_tasks: names of the tasks that score the target item. Defaults to
            None ("ctr" if there is such a task).
        cell: "property_gated", "lstm" or "none" (see `LSTMAttentionEncoder`).
            Defaults to "property_gated".
        pooling: "attention" or "mean". Defaults to "attention".
        units: int. LSTM and sequence-vector width. Defaults to 128.
        attention_units: int. Width of the attention MLP. Defaults to 64.
        profile_units: int. Width of the profile vector. Defaults to 128.
        tower_units: sequence of int. Hidden widths of every task's head
            (`TaskTower` or `CandidateScorer`, named "{task}_head"). Defaults
            to (64,).
        dropout: float. Tower dropout, here in every built-in head (see
            `keras_mtl.models`). Defaults to 0.
        heads: dict of task name to a custom head layer. Defaults to None.
        compile: True, False or a dict of `MultiTaskModel.compile` arguments.
            Defaults to True.
        name: model name. Defaults to None: "dupn".

    Returns:
        A `MultiTaskModel` with inputs named after the features (a sequence's
        inputs `<sequence>_<field>`) and outputs keyed by task name: `(batch,)`
        for binary / regression, `(batch, list_size)` for ranking, `(batch,
        num_classes)` for multiclass.

    Example:
    On MovieLens-100K (downloaded by `load_movielens()`, so a plain code
    block):

        ml = keras_mtl.datasets.load_movielens()
        model = build_dupn(ml.features, ml.tasks, query=ml.query)
        model.fit(make_dataset(ml.train, ml.features, ml.tasks))

    A tiny history of item ids and one behaviour property per step:

    >>> history = km.SequenceFeature(
    ...     "history",
    ...     item=[km.SparseFeature("item", vocabulary_size=50, embedding_dim=8)],
    ...     properties=[km.SparseFeature("action", vocabulary_size=3,
    ...                                  embedding_dim=2)],
    ...     max_len=5)
    >>> model = build_dupn([history, km.DenseFeature("age")], [Task("buy")],
    ...                    units=8, profile_units=4)
    >>> tuple(model.get_layer("user_representation").output.shape)
    (None, 12)

    References:
        Ni et al., "Perceive Your Users in Depth: Learning Universal User
        Representations from Multiple E-commerce Tasks", KDD 2018
        (arXiv:1805.10727).
    """
    tasks = check_builder_tasks(build_dupn, tasks)
    check_dropout(build_dupn, dropout=dropout)
    tower_units = check_units("build_dupn", "tower_units", tower_units)
    if isinstance(query, str):
        query = [query]
    roles = _feature_roles(features, history, candidates, query)
    history, candidates = roles.history, roles.candidates
    heads = dict(heads or {})
    unknown = [n for n in heads if n not in {t.name for t in tasks}]
    if unknown:
        raise ValueError(f"build_dupn: heads {unknown} name no task.")
    scored = _item_task_names(tasks, item_tasks)
    _check_item_fields(roles, scored)
    ranking = [t for t in tasks if t.type == "ranking"]
    if ranking:
        if candidates is None:
            raise ValueError(
                f"build_dupn: ranking tasks {[t.name for t in ranking]} need a "
                "candidate list: a SequenceFeature without properties among "
                "features (or named by candidates=)."
            )
        wrong = [t.name for t in ranking if t.list_size != candidates.max_len]
        if wrong:
            raise ValueError(
                f"build_dupn: ranking tasks {wrong} have list_size != "
                f"candidates.max_len={candidates.max_len}."
            )
    elif candidates is not None:
        raise ValueError(
            f"build_dupn: features hold the candidate list {candidates.name!r} but "
            "no task is 'ranking'; drop it from features."
        )

    inputs = make_inputs(features)
    profile_features, query_features = roles.profile, roles.query

    def fields(sequence: SequenceFeature | None, group) -> list:
        prefix = (lambda f: f.name) if sequence is None else sequence.input_name
        return [inputs[prefix(f)] for f in group]

    item_embedding = FieldEmbedding(history.item, name="item_embedding")
    steps = [
        item_embedding(fields(history, history.item)),
        FieldEmbedding(history.properties, name="property_embedding")(
            fields(history, history.properties)
        ),
    ]

    profile = query = None
    if profile_features:
        profile = FeatureEncoder(profile_features, name="profile_encoder")(
            {f.name: inputs[f.name] for f in profile_features}
        )
    if query_features:
        query = FeatureEncoder(query_features, name="query_encoder")(
            {f.name: inputs[f.name] for f in query_features}
        )
    attention_query = [x for x in (query, profile) if x is not None]
    if len(attention_query) > 1:
        attention_query = [
            keras.layers.Concatenate(name="attention_query")(attention_query)
        ]
    sequence_vector = LSTMAttentionEncoder(
        units,
        cell=cell,
        pooling=pooling,
        attention_units=attention_units,
        name="sequence_encoder",
    )(steps + attention_query)
    if profile is not None:
        profile_vector = keras.layers.Dense(
            profile_units, activation="relu", name="profile_vector"
        )(profile)
        user = keras.layers.Concatenate(name=USER_REPRESENTATION)(
            [sequence_vector, profile_vector]
        )
    else:
        user = keras.layers.Identity(name=USER_REPRESENTATION)(sequence_vector)

    outputs = {}
    for task in tasks:
        items = None
        if task.type == "ranking":
            items = item_embedding(fields(candidates, candidates.item))
        elif task.name in scored:
            items = item_embedding(fields(None, history.item))
        head = heads.get(task.name)
        if head is None and items is not None:
            head = CandidateScorer(
                tower_units, task.type, dropout=dropout, name=f"{task.name}_head"
            )
        elif head is None:
            head = TaskTower(
                tower_units,
                task.type,
                dropout=dropout,
                num_classes=task.num_classes,
                name=f"{task.name}_head",
            )
        outputs[task.name] = head(user if items is None else [user, items])
    return make_model(inputs, outputs, tasks, name or "dupn", compile)


def _check_item_fields(roles: _Roles, scored: set[str]) -> None:
    """The target item's fields are all in features iff some task scores it."""
    have = [f.name for f in roles.item]
    if scored:
        missing = [f.name for f in roles.history.item if f.name not in have]
        if missing:
            raise ValueError(
                f"build_dupn: item tasks {sorted(scored)} score the target item, "
                f"whose fields {missing} are missing from features (flat specs "
                f"equal to the item fields of {roles.history.name!r})."
            )
    elif have:
        raise ValueError(
            f"build_dupn: features {have} are the target item (named like the "
            f"history's item fields) but no task scores it; drop them or name "
            "the item tasks in item_tasks=."
        )
