"""Warm starts: continue training from a previous export or checkpoint."""

from __future__ import annotations

import json
import os
import pathlib

import keras
import numpy as np

from keras_mtl.serving.dupn import DUPN_PARTS
from keras_mtl.serving.export import SPEC_FILE, existing_versions, hash_functions


def _saved_model_dir(path: pathlib.Path) -> pathlib.Path:
    """The SavedModel directory meant by `path`.

    `path` may be a version directory, a TF Serving model directory (its
    highest version is used) or a `keras_mtl.export_dupn` directory (its
    `full` model).
    """
    if (path / "saved_model.pb").exists():
        return path
    if (path / DUPN_PARTS[0]).is_dir():
        path = path / DUPN_PARTS[0]
    versions = existing_versions(path)
    if versions and (path / str(versions[-1]) / "saved_model.pb").exists():
        return path / str(versions[-1])
    raise FileNotFoundError(
        f"warm_start: no SavedModel at {path} (expected saved_model.pb in it, or "
        "numbered version directories holding one)."
    )


def _load_source(path: pathlib.Path) -> tuple[dict[str, np.ndarray], dict | None]:
    """`(variable path -> value, feature -> hash function)` of the model stored
    at `path`; the hash functions are None for a SavedModel written before they
    were recorded (`SPEC_FILE`)."""
    if path.suffix == ".keras":
        stored = keras.saving.load_model(path, compile=False)
        weights = {v.path: keras.ops.convert_to_numpy(v) for v in stored.variables}
        return weights, hash_functions(stored)
    import tensorflow as tf

    directory = _saved_model_dir(path)
    loaded = tf.saved_model.load(str(directory))
    # A Keras export keeps each variable under its Keras path (plus ":0").
    weights = {v.name.rsplit(":", 1)[0]: v.numpy() for v in loaded.variables}
    spec = directory / SPEC_FILE
    hashes = json.loads(spec.read_text())["hash_functions"] if spec.exists() else None
    return weights, hashes


def _check_hashing(model: keras.Model, source: dict | None, path) -> None:
    """Refuse a source whose features were hashed with another function: its
    rows would be silently remapped."""
    # Exports without the record predate "int_hash_v1": keras.layers.Hashing.
    wanted = hash_functions(model)
    source = source if source is not None else dict.fromkeys(wanted, "farmhash64")
    differ = {
        name: (source[name], fn)
        for name, fn in wanted.items()
        if name in source and source[name] != fn
    }
    if differ:
        detail = ", ".join(f"{n!r}: {a} -> {b}" for n, (a, b) in differ.items())
        raise ValueError(
            f"warm_start: {path} hashed features another way than the model "
            f"({detail}); its rows would land in other buckets. Build the model "
            "with the source's SparseFeature(hash_function=...) to continue it."
        )


def warm_start(
    model: keras.Model, path: str | os.PathLike, strict: bool = True
) -> dict[str, int]:
    """Load the weights of a previous model into `model`, matched by variable path.

    DUPN is retrained every day on the previous day's data, starting from
    yesterday's weights. `path` is yesterday's SavedModel (a version directory,
    a TF Serving model directory, whose highest version is used, or a
    `keras_mtl.export_dupn` directory) or a `.keras` file. Each variable of
    `model` takes the value of the stored variable with the same path (e.g.
    `item_embedding/embeddings_item`), so the model must be built with the same
    specs. Ids never seen before need no new rows: with `hash_bins` they land
    in the existing buckets. The optimizer starts afresh.

    Args:
        model: the freshly built model to initialise.
        path: SavedModel directory or `.keras` file.
        strict: bool. Require every variable of `model` to be found with the
            same shape (otherwise those keep their initial values). Defaults to
            True.

    Returns:
        `{"loaded": n, "missing": m}`: variables loaded and not found.

    Raises:
        FileNotFoundError: nothing loadable at `path`.
        ValueError: a shape differs or a hashed feature's `hash_function`
            differs (always), or variables are missing (with `strict`); the
            message names them.

    Example:
    >>> import os, shutil, tempfile
    >>> def build():
    ...     x = keras.Input((3,), name="x")
    ...     tower = km.layers.TaskTower((4,), "binary", name="ctr")
    ...     return keras.Model(x, {"ctr": tower(x)})
    >>> yesterday, today = build(), build()
    >>> tmp = tempfile.mkdtemp()
    >>> yesterday.save(os.path.join(tmp, "yesterday.keras"))
    >>> warm_start(today, os.path.join(tmp, "yesterday.keras"))
    {'loaded': 4, 'missing': 0}
    >>> x = np.ones((2, 3), "float32")
    >>> bool(np.all(keras.ops.convert_to_numpy(today(x)["ctr"])
    ...             == keras.ops.convert_to_numpy(yesterday(x)["ctr"])))
    True
    >>> shutil.rmtree(tmp)
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"warm_start: {path} does not exist.")
    source, source_hashes = _load_source(path)
    _check_hashing(model, source_hashes, path)
    missing = [v.path for v in model.variables if v.path not in source]
    wrong = [
        f"{v.path} {tuple(source[v.path].shape)} -> {tuple(v.shape)}"
        for v in model.variables
        if v.path in source and tuple(source[v.path].shape) != tuple(v.shape)
    ]
    if wrong:
        raise ValueError(
            f"warm_start: shapes differ between {path} and the model (was it "
            f"built with other specs?): {wrong[:5]}"
        )
    if missing and strict:
        raise ValueError(
            f"warm_start: {len(missing)} variable(s) of the model are not in "
            f"{path}: {missing[:5]}; pass strict=False to keep their initial values."
        )
    for v in model.variables:
        if v.path in source:
            v.assign(source[v.path])
    return {"loaded": len(model.variables) - len(missing), "missing": len(missing)}
