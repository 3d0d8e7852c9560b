"""DUPN: one user representation from behaviour sequences, shared by many tasks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras

from keras_mtl._checks import check_units
from keras_mtl.features import (
    Feature,
    SequenceFeature,
    check_features,
    feature_from_config,
    make_inputs,
)
from keras_mtl.layers import (
    CandidateScorer,
    FeatureEncoder,
    FieldEmbedding,
    LSTMAttentionEncoder,
    TaskTower,
)
from keras_mtl.models._common import make_model
from keras_mtl.tasks import Task, check_tasks

#: Name of the layer whose output is the user representation (the encoder's output).
USER_REPRESENTATION = "user_representation"


def _check_sequence(arg: str, value) -> SequenceFeature:
    value = feature_from_config(value) if isinstance(value, dict) else value
    if not isinstance(value, SequenceFeature):
        raise TypeError(
            f"build_dupn: {arg} must be a SequenceFeature; got {type(value).__name__}."
        )
    return value


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


def build_dupn(
    history: SequenceFeature,
    tasks: Sequence[Task],
    *,
    candidates: SequenceFeature | None = None,
    profile_features: Sequence[Feature] = (),
    query_features: Sequence[Feature] = (),
    item_tasks: Sequence[str] | None = None,
    cell: str = "property_gated",
    pooling: str = "attention",
    units: int = 128,
    attention_units: int = 64,
    profile_units: int = 128,
    head_units: Sequence[int] = (64,),
    head_dropout: float = 0.0,
    heads: Mapping[str, keras.layers.Layer] | None = None,
    compile: bool | dict = True,
    name: str = "dupn",
) -> keras.Model:
    """DUPN (Ni et al., KDD 2018): a universal user representation, many heads.

    The user's behaviour sequence (`history`: per step an item and the
    behaviour's properties) is embedded (`FieldEmbedding`), run through an
    LSTM (DUPN's property-gated LSTM by default) and pooled by attention whose
    query is the request context (`query_features`, e.g. the search query)
    with the user profile (`LSTMAttentionEncoder`). That vector (`units`,
    default 128) and a profile vector (`profile_units`, default 128) form the
    user representation (default 256, the output of the layer named
    "user_representation"). Every task reads it:

    - a binary / regression task named in `item_tasks` (default: a task named
      "ctr") scores the target item, whose fields are inputs named after
      `history.item` (`CandidateScorer`);
    - a "ranking" task (L2R) scores each item of the `candidates` list, inputs
      `candidates_<field>` (`CandidateScorer`; keras-rs pairwise loss, NDCG@10);
    - any other task (e.g. PPP, multiclass; FIFP, binary) is a `TaskTower` on
      the representation alone;
    - `heads={"task": layer}` replaces a task's head by your own registered
      layer, called with the representation, or `[representation, items]` for
      item and ranking tasks.

    The item tables are shared by the history, the target item and the
    candidates. `keras_mtl.dupn_serving_models` splits the model into a user
    encoder and a scorer, and `keras_mtl.export_dupn` exports all three.

    Args:
        history: `SequenceFeature` of the behaviour sequence, with properties.
        tasks: list of `Task`.
        candidates: `SequenceFeature` of the ranking list, with the same item
            fields as `history` and `max_len` = the ranking tasks' `list_size`.
            Needed by ranking tasks only. Defaults to None.
        profile_features: user profile features (`SparseFeature` /
            `DenseFeature`). Defaults to none.
        query_features: request context features. Defaults to none.
        item_tasks: names of the tasks that score the target item. Defaults to
            None ("ctr" if there is such a task).
        cell: "property_gated", "lstm" or "none" (see `LSTMAttentionEncoder`).
            Defaults to "property_gated".
        pooling: "attention" or "mean". Defaults to "attention".
        units: int. LSTM and sequence-vector width. Defaults to 128.
        attention_units: int. Width of the attention MLP. Defaults to 64.
        profile_units: int. Width of the profile vector. Defaults to 128.
        head_units: sequence of int. Hidden widths of every head. Defaults to (64,).
        head_dropout: float. Dropout in the heads. Defaults to 0.
        heads: dict of task name to a custom head layer. Defaults to None.
        compile: True, False or a dict of `keras_mtl.compile_model` arguments.
            Defaults to True.
        name: str. Model name. Defaults to "dupn".

    Returns:
        A `keras_mtl.MultiTaskModel` with outputs keyed by task name.

    Example:
    >>> ml = keras_mtl.datasets.load_movielens("ml-100k")
    >>> model = build_dupn(ml.history, ml.tasks, candidates=ml.candidates,
    ...                    profile_features=ml.profile, query_features=ml.query)

    References:
        Ni et al., "Perceive Your Users in Depth: Learning Universal User
        Representations from Multiple E-commerce Tasks", KDD 2018
        (arXiv:1805.10727).
    """
    history = _check_sequence("history", history)
    tasks = check_tasks(tasks)
    head_units = check_units("build_dupn", "head_units", head_units)
    heads = dict(heads or {})
    unknown = [n for n in heads if n not in {t.name for t in tasks}]
    if unknown:
        raise ValueError(f"build_dupn: heads {unknown} name no task.")
    if not history.properties:
        raise ValueError(
            f"build_dupn: SequenceFeature {history.name!r} has no behaviour "
            "properties; DUPN's steps are <item, property> pairs (a constant "
            "property will do)."
        )
    scored = _item_task_names(tasks, item_tasks)
    ranking = [t for t in tasks if t.type == "ranking"]
    if ranking:
        if candidates is None:
            raise ValueError(
                f"build_dupn: ranking tasks {[t.name for t in ranking]} need "
                "candidates= (a SequenceFeature of the candidate list)."
            )
        candidates = _check_sequence("candidates", candidates)
        if candidates.item != history.item:
            raise ValueError(
                "build_dupn: candidates must have the same item fields as history "
                "(they share the item tables)."
            )
        wrong = [t.name for t in ranking if t.list_size != candidates.max_len]
        if wrong:
            raise ValueError(
                f"build_dupn: ranking tasks {wrong} have list_size != "
                f"candidates.max_len={candidates.max_len}."
            )
    elif candidates is not None:
        raise ValueError("build_dupn: candidates= given but no task is 'ranking'.")

    profile_features = check_features(profile_features) if profile_features else []
    query_features = check_features(query_features) if query_features else []
    specs = [history, *profile_features, *query_features]
    if scored:
        specs += list(history.item)
    if ranking:
        specs.append(candidates)
    inputs = make_inputs(specs)

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
                head_units, task.type, dropout=head_dropout, name=f"{task.name}_head"
            )
        elif head is None:
            head = TaskTower(
                head_units,
                task.type,
                dropout=head_dropout,
                num_classes=task.num_classes,
                name=f"{task.name}_head",
            )
        outputs[task.name] = head(user if items is None else [user, items])
    return make_model(inputs, outputs, tasks, name, compile)
