"""DUPN's serving split: a user encoder and a candidate scorer, exported together."""

from __future__ import annotations

import os
import pathlib

import keras

from keras_mtl._graph import calls_reading, inputs_behind
from keras_mtl.models.dupn import USER_REPRESENTATION
from keras_mtl.serving.export import (
    check_version,
    existing_versions,
    export_saved_model,
)
from keras_mtl.serving.retention import check_retention, prune_versions
from keras_mtl.serving.signatures import output_groups, raw_inputs


def dupn_serving_models(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """Split a DUPN model into `(user_encoder, scorer)` for serving.

    DUPN's deployment trick: the user representation depends only on the
    user's history, profile and request, so a server computes it once per
    request (`user_encoder`) and scores any number of candidates with it
    (`scorer`). Both models share the full model's layers (and weights), and
    `scorer(user_encoder(x) + candidates)` equals the full model.

    - `user_encoder`: the inputs the representation depends on -> dict
      `{"user_representation": (batch, dim)}`.
    - `scorer`: `user_representation` plus the remaining inputs (target item,
      candidate list) -> the full model's outputs. User-level heads need only
      the representation.

    Args:
        model: a model from `build_dupn` (also after a `.keras` round trip).

    Returns:
        `(user_encoder, scorer)`, two functional `keras.Model`s.
    """
    named, user, behind, encoder = _split(model)
    return encoder, _scorer(model, named, user, behind, list(model.output))


def dupn_group_scorers(model: keras.Model) -> dict[str, keras.Model]:
    """One scorer per group of tasks reading the same item inputs, keyed by
    signature name (`keras_mtl.serving.output_groups`): e.g. `score_ctr`
    (`user_representation` + the target item), `score_l2r` (+ the candidate
    list only), `score_genre` (the representation alone). Empty when every
    task reads the same inputs."""
    named, user, behind, _ = _split(model)
    groups = output_groups(model, exclude=tuple(behind))
    return {
        name: _scorer(model, named, user, behind, tasks)
        for name, tasks in groups.items()
    }


def _split(model: keras.Model):
    """`(named inputs, representation tensor, encoder's input names, encoder)`."""
    try:
        user = model.get_layer(USER_REPRESENTATION).output
    except ValueError as error:
        raise ValueError(
            f"dupn_serving_models: model {model.name!r} has no layer named "
            f"{USER_REPRESENTATION!r}; pass a model from build_dupn."
        ) from error
    named = (
        model.input
        if isinstance(model.input, dict)
        else {t.name: t for t in model.inputs}
    )
    behind = inputs_behind(named, user)
    encoder = keras.Model(
        {n: named[n] for n in named if n in behind},
        {USER_REPRESENTATION: user},
        name=f"{model.name}_user_encoder",
    )
    return named, user, behind, encoder


def _scorer(model, named: dict, user, behind: set, tasks: list) -> keras.Model:
    """`user_representation` plus the inputs `tasks` read besides the encoder's
    -> those outputs, on the full model's layers."""
    outputs = {task: model.output[task] for task in tasks}
    reads = set().union(*(inputs_behind(named, t) for t in outputs.values()))
    rest = [n for n in named if n in reads and n not in behind]
    # The graph is cut after the other inputs (the calls that read them, e.g. the
    # item embedding of the target item and of the candidates): `items` maps
    # those inputs to the cut, `head` maps (representation, cut) to the outputs,
    # a functional model on intermediate tensors only. Both are the full model's
    # layers and weights, called on the scorer's own inputs. (Handing `head` the
    # full model's input tensors directly would make Keras re-wire them, and the
    # full model could then no longer be saved.)
    cut = calls_reading(outputs, [named[n] for n in rest])
    suffix = "" if len(tasks) == len(model.output) else "_" + "_".join(tasks)
    head = keras.Model([user] + cut, outputs, name=f"{model.name}_heads{suffix}")
    scorer_inputs = {
        USER_REPRESENTATION: keras.Input(user.shape[1:], name=USER_REPRESENTATION),
        **{
            n: keras.Input(named[n].shape[1:], dtype=named[n].dtype, name=n)
            for n in rest
        },
    }
    items = []
    if rest:
        item_part = keras.Model(
            {n: named[n] for n in rest}, cut, name=f"{model.name}_items{suffix}"
        )
        items = item_part({n: scorer_inputs[n] for n in rest})
    return keras.Model(
        scorer_inputs,
        head([scorer_inputs[USER_REPRESENTATION]] + list(items)),
        name=f"{model.name}_scorer{suffix}",
    )


#: Subdirectories of a DUPN export: one TF Serving model each.
DUPN_PARTS = ("full", "user_encoder", "scorer")


def export_dupn(
    model: keras.Model,
    base_dir: str | os.PathLike,
    version: int | None = None,
    *,
    keep_versions: int | None = None,
    models_config: str | os.PathLike | None = None,
    warmup_requests: list[dict] | None = None,
    preprocessor: keras.layers.Layer | None = None,
) -> dict[str, pathlib.Path]:
    """Export a DUPN model as three TF Serving models, for the serving split.

    Writes `<base_dir>/full/<version>` (the whole model),
    `<base_dir>/user_encoder/<version>` (the user's sequence, profile and
    request -> `user_representation`) and `<base_dir>/scorer/<version>`
    (`user_representation` + target item / candidate list -> the task
    outputs), all of one version. A server calls the encoder once per request
    and the scorer for as many candidates as it likes: the scorer takes one
    `user_representation` row for the whole batch (tiled inside its graph) or
    one per example; `scorer(user_encoder(x))` equals `full(x)`.

    Besides `serving_default`, the full model and the scorer have one signature
    per group of tasks reading the same item inputs, named `score_<task>...`
    (e.g. `score_ctr`: the target item only; `score_l2r`: the candidate list
    only; `score_genre`: the representation alone), so ranking candidates needs
    no target item. On JAX and torch, the TensorFlow backend writes all three
    in one child Python (as `export_saved_model`).

    Args:
        model: a model from `keras_mtl.build_dupn`.
        base_dir: directory holding the three model directories.
        version: positive int, or None for one more than the highest version
            found in any of the three. Defaults to None.
        keep_versions: positive int, or None (the default) to keep every
            version. Once all three parts are written, each part keeps its
            newest `keep_versions` versions (`keras_mtl.serving.prune_versions`).
        models_config: path of the TF Serving `models.config` serving (some
            of) the parts, or None. A version it pins for any part (a
            `specific` policy or a version label) is kept in all three, since
            the encoder and scorer of one version belong together; a config
            serving none of the parts is an error.

        warmup_requests: dicts `{input name: array}` of the full model's raw
            inputs (e.g. a few real rows), or None. Each part gets its warm-up
            file from them (`export_saved_model`): the encoder its inputs, the
            scorer the encoder's representation of them and its item inputs.
        preprocessor: a layer deriving model inputs from raw ones in the
            graph of each part that takes them (`export_saved_model`), e.g.
            `keras_mtl.layers.TimeFeatures(**ml.time_features)` for MovieLens:
            the full model and the encoder
            then take raw timestamps, and so do `warmup_requests`. Defaults to
            None.

    Returns:
        `{"full": path, "user_encoder": path, "scorer": path}`.
    """
    if keras.backend.backend() != "tensorflow":
        # (As `export_saved_model`: the TensorFlow backend writes the export in
        # a child Python, which splits the model into its parts itself.)
        from keras_mtl.serving._in_tensorflow import run_in_tensorflow

        return run_in_tensorflow(
            "export_dupn",
            model,
            base_dir=base_dir,
            version=version,
            keep_versions=keep_versions,
            models_config=models_config,
            warmup_requests=warmup_requests,
            preprocessor=preprocessor,
        )
    base = pathlib.Path(base_dir)
    if version is None:
        found = [v for part in DUPN_PARTS for v in existing_versions(base / part)]
        version = max(found, default=0) + 1
    check_version(version, "export_dupn")
    pinned = check_retention(
        [base / part for part in DUPN_PARTS],
        keep_versions,
        models_config,
        "export_dupn",
    )
    encoder, scorer = dupn_serving_models(model)
    groups = dupn_group_scorers(model)
    signatures = {
        "full": {name: list(m.output) for name, m in groups.items()},
        "user_encoder": {},
        "scorer": groups,
    }
    models = dict(zip(DUPN_PARTS, (model, encoder, scorer)))
    warmup = dict.fromkeys(DUPN_PARTS)
    if warmup_requests is not None:
        warmup = {
            part: [
                _part_request(request, m, encoder, preprocessor)
                for request in warmup_requests
            ]
            for part, m in models.items()
        }
    paths = {
        part: export_saved_model(
            m,
            base / part,
            version,
            output_signatures=signatures[part],
            broadcast_inputs=(USER_REPRESENTATION,),
            warmup_requests=warmup[part],
            preprocessor=preprocessor,
        )
        for part, m in models.items()
    }
    if keep_versions is not None:
        for part in DUPN_PARTS:
            prune_versions(base / part, keep_versions, pinned | {version})
    return paths


def _part_request(
    request: dict, part: keras.Model, encoder: keras.Model, preprocessor
) -> dict:
    """A full-model request as `part` takes it (the scorer: with the encoder's
    representation of it). With a `preprocessor`, the request holds its raw
    inputs, which replace the inputs it derives (and which it turns into the
    encoder's)."""
    names, full = list(part.input), request
    if preprocessor is not None:
        raw = raw_inputs(preprocessor, preprocessor.sources)
        missing = [n for n in raw if n not in request]
        if missing:
            raise ValueError(
                f"export_dupn: warm-up requests need the preprocessor's raw inputs "
                f"{raw}; a request lacks {missing}."
            )
        made = preprocessor({n: request[n] for n in raw})
        full = {
            **request,
            **{n: keras.ops.convert_to_numpy(v) for n, v in made.items()},
        }
        derived = [n for n in names if n in made]
        if derived:
            kept = [n for n in names if n not in made]
            names = kept + raw_inputs(preprocessor, derived)
    values = {n: request[n] for n in names if n in request}
    if USER_REPRESENTATION in part.input:
        user = encoder({n: full[n] for n in encoder.input})
        values[USER_REPRESENTATION] = keras.ops.convert_to_numpy(
            user[USER_REPRESENTATION]
        )
    return values
