"""SavedModel export in TF Serving's versioned layout."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import shutil
import tempfile
from collections.abc import Mapping, Sequence

import keras

from keras_mtl._checks import check_positive_int
from keras_mtl._keras_compat import nested_layers
from keras_mtl.features import SparseFeature
from keras_mtl.serving._files import umask
from keras_mtl.serving.retention import (
    check_retention,
    prune_versions,
    version_dirs,
)
from keras_mtl.serving.signatures import RankingScore, add_signatures
from keras_mtl.serving.warmup import write_warmup_requests

#: Written beside each SavedModel (TF Serving ignores `assets.extra` files other
#: than its warm-up requests): what a warm start must agree with.
SPEC_FILE = pathlib.Path("assets.extra") / "keras_mtl.json"


def hash_functions(model: keras.Model) -> dict[str, str]:
    """`{feature name: SparseFeature.hash_function}` of `model`'s hashed features.

    Read from the specs its layers were built with (`FeatureEncoder.features`,
    `FieldEmbedding.fields`, at any depth).
    """
    found = {}
    for layer in nested_layers(model):
        for spec in [*getattr(layer, "features", ()), *getattr(layer, "fields", ())]:
            if isinstance(spec, SparseFeature) and spec.hash_function is not None:
                found[spec.name] = spec.hash_function
    return found


def existing_versions(base_dir: str | os.PathLike) -> list[int]:
    """The integer version directories under `base_dir`, ascending."""
    return list(version_dirs(base_dir))


def check_version(version, owner: str = "export_saved_model") -> None:
    """A TF Serving version: a positive int (the error names `owner`)."""
    check_positive_int(owner, "version", version)


def export_saved_model(
    model: keras.Model,
    base_dir: str | os.PathLike,
    version: int | None = None,
    *,
    keep_versions: int | None = None,
    models_config: str | os.PathLike | None = None,
    warmup_requests: list[dict] | None = None,
    ranking_score: RankingScore | None = None,
    output_signatures: Mapping[str, Sequence[str] | keras.Model] | None = None,
    broadcast_inputs: Sequence[str] = (),
    preprocessor: keras.layers.Layer | None = None,
) -> pathlib.Path:
    """Write `model` as a TF Serving SavedModel under `<base_dir>/<version>/`.

    Signatures (`keras_mtl.serving.signatures`): `serving_default` takes one
    tensor per feature, named after it, with the raw dtype (ids and strings are
    looked up inside the graph; id lists may be shorter than the model's and are
    padded), and returns one tensor per task, keyed by task name;
    `serving_examples` takes a batch of serialized `tf.Example`s; with
    `ranking_score`, a signature of that name returns the fused score (also an
    extra output of the other two). Bad values fail with an error naming the
    input (a too-long list, a wrong width, NaN where the feature does not allow
    missing values). The export is atomic: it is
    written to a hidden temporary directory beside the target and renamed into
    place, so TF Serving, which polls `base_dir`, never sees a half-written version.

    On the JAX and torch backends the SavedModel is the same: the signatures
    are TensorFlow graphs (request checks, `tf.Example` parsing, string
    lookups) that neither backend's own export route can trace, so the model
    is saved as `.keras` to a temporary directory and the TensorFlow backend
    loads it (the same weights) and exports it in a child Python, with the
    same arguments (passed as JSON; a `keras.Model` in `output_signatures` is
    refused there: name the tasks instead). The child's error is raised again
    with its type and message. The cost is that child's start: about 9 s more
    CPU per export (a small MMoE: 10.5 s in the child against 1.7 s on
    TensorFlow). Layer classes must be importable (not defined in `__main__`),
    since the child imports their modules to load the copy.

    Args:
        model: a functional model with dict inputs (e.g. from `build_mmoe`).
        base_dir: the model's directory in TF Serving's model base path.
        version: positive int, or None for one more than the highest existing
            version (1 for an empty directory). An existing version is never
            overwritten.
        keep_versions: positive int, or None (the default) to keep every
            version. After the export, older integer version directories are
            removed so that the newest `keep_versions` remain (see
            `keras_mtl.serving.prune_versions`); the new version and any
            version pinned in `models_config` are never removed.
        models_config: path of the TF Serving `models.config` that serves
            `base_dir`, or None. Versions it pins for `base_dir` (a `specific`
            version policy, or `version_labels`) survive `keep_versions`; read
            before the export, and a config with no model whose `base_path` is
            `base_dir` is an error (see `keras_mtl.serving.pinned_versions`).
        warmup_requests: dicts `{input name: array}` of representative
            `serving_default` requests (raw rows), or None (the default); at
            most 1000 records in all (requests x signatures).
            Written to `assets.extra/tf_serving_warmup_requests` before the
            version is renamed into place, so it appears with its warm-up
            file (see `keras_mtl.serving.write_warmup_requests`), once per
            signature (each with the inputs it takes; tf.Examples for
            `serving_examples`), so every signature is warm.
        ranking_score: a `keras_mtl.serving.RankingScore` fusing task outputs
            into one score, or None. Defaults to None.
        output_signatures: `{signature name: [task, ...]}`: more signatures,
            each returning those outputs from only the inputs they read
            (`keras_mtl.serving.output_groups(model)` groups them), or a
            `keras.Model` per name on `model`'s layers (DUPN's scorers per task
            group), or None.
        broadcast_inputs: names of inputs a request may send with one row for
            the whole batch, tiled inside the graph (DUPN's scorer takes one
            `user_representation` for all candidates). Defaults to none.
        preprocessor: a layer the signatures apply to raw inputs before the
            model, e.g. `keras_mtl.layers.TimeFeatures` (request and step
            timestamps in, `hour` / `weekday` / time gaps to the model), or
            None. The signatures then take its raw inputs instead of the
            model inputs it derives (`keras_mtl.serving.signatures.preprocessed_inputs`),
            and so do `warmup_requests`. Defaults to None.

    Returns:
        The path of the written version directory.

    Example:
    >>> import shutil, tempfile
    >>> import tensorflow as tf
    >>> inputs = km.make_inputs([km.DenseFeature("x", dim=3)])
    >>> ctr = km.layers.TaskTower((), "binary", name="ctr")(inputs["x"])
    >>> model = keras.Model(inputs, {"ctr": ctr})
    >>> base = tempfile.mkdtemp()  # e.g. "saved_models/ctr" in production
    >>> export_saved_model(model, base).name  # the first version
    '1'
    >>> served = tf.saved_model.load(f"{base}/1").signatures["serving_default"]
    >>> {name: tuple(t.shape) for name, t in served(x=tf.zeros((2, 3))).items()}
    {'ctr': (2,)}
    >>> shutil.rmtree(base)
    """
    if keras.backend.backend() != "tensorflow":
        # The signatures are TensorFlow graphs (request checks, tf.Example
        # parsing, string lookups) that JAX's and torch's export routes cannot
        # trace: the TensorFlow backend writes the export, in a child Python.
        from keras_mtl.serving._in_tensorflow import run_in_tensorflow

        return run_in_tensorflow(
            "export_saved_model",
            model,
            base_dir=base_dir,
            version=version,
            keep_versions=keep_versions,
            models_config=models_config,
            warmup_requests=warmup_requests,
            ranking_score=ranking_score,
            output_signatures=output_signatures,
            broadcast_inputs=tuple(broadcast_inputs),
            preprocessor=preprocessor,
        )
    import tensorflow as tf

    base = pathlib.Path(base_dir)
    base.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = (existing_versions(base) or [0])[-1] + 1
    check_version(version)
    pinned = check_retention([base], keep_versions, models_config)
    target = base / str(version)
    if target.exists():
        raise FileExistsError(
            f"{target} already exists; TF Serving versions are immutable. Pass "
            "another version or version=None for the next one."
        )
    if not isinstance(model.inputs, list) or not model.inputs:
        raise ValueError("export_saved_model needs a functional model with inputs.")

    archive = keras.export.ExportArchive()
    archive.track(model)  # (its lookup tables)
    # `track` lists the model's Keras variables, each a wrapper of the
    # tf.Variable the endpoint reads; the SavedModel would store both, twice
    # the parameter bytes. The lists get the endpoint's own variables instead,
    # so each is stored once (and `loaded.variables` still lists them all).
    for collection in ("variables", "trainable_variables", "non_trainable_variables"):
        archive.add_variable_collection(
            collection, [_tf_variable(v) for v in getattr(model, collection)]
        )
    contract = add_signatures(
        archive,
        model,
        ranking_score,
        output_signatures=output_signatures,
        broadcast_inputs=tuple(broadcast_inputs),
        preprocessor=preprocessor,
    )
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=base))
    try:
        with tf.device("/cpu:0"), _without_staging_notes():
            archive.write_out(str(staging), verbose=False)
        (staging / SPEC_FILE).parent.mkdir(exist_ok=True)
        (staging / SPEC_FILE).write_text(
            json.dumps({"hash_functions": hash_functions(model), **contract}, indent=1)
        )
        if warmup_requests is not None:
            write_warmup_requests(
                staging,
                warmup_requests,
                signature_name=contract["signatures"],
                model_name=base.name,
            )
        # mkdtemp's 0700 would keep a server running as another user out: the
        # version directory gets the mode a plain mkdir gives (0755 under the
        # usual umask 022), like everything TensorFlow wrote inside it.
        staging.chmod(0o777 & ~umask())
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if keep_versions is not None:
        prune_versions(base, keep_versions, pinned | {version})
    return target


class _StagingNoteFilter(logging.Filter):
    """Drops TensorFlow's "Assets written to: <staging directory>" note."""

    def filter(self, record):
        return not str(record.msg).startswith("Assets written to")


@contextlib.contextmanager
def _without_staging_notes():
    """TensorFlow logs "Assets written to: .../.<version>.tmp-xxxx/assets" at
    INFO (seen where the root logger is at INFO, and in notebooks and other
    interactive sessions, where TensorFlow sets its own logger to INFO): a
    directory that is renamed a moment later. Dropped, unless TensorFlow's own
    logger is set to DEBUG (`keras-mtl train --verbose` does that)."""
    logger = logging.getLogger("tensorflow")
    if logging.NOTSET < logger.level <= logging.DEBUG:
        yield
        return
    note = _StagingNoteFilter()
    logger.addFilter(note)
    try:
        yield
    finally:
        logger.removeFilter(note)


def _tf_variable(variable):
    """The tf.Variable behind a Keras variable (the export runs on the
    TensorFlow backend only)."""
    return variable.value
