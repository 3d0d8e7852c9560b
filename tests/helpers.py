"""Shared checks every layer and builder goes through."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf


def _symbolic_like(data, name=None):
    if isinstance(data, dict):
        return {k: _symbolic_like(v, name=k) for k, v in data.items()}
    if isinstance(data, list):
        return [_symbolic_like(v) for v in data]
    data = np.asarray(data)
    dtype = "string" if data.dtype.kind in "OUS" else str(data.dtype)
    return keras.Input(shape=data.shape[1:], dtype=dtype, name=name)


def _to_model_input(data):
    if isinstance(data, dict):
        return {k: _to_model_input(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_to_model_input(v) for v in data]
    data = np.asarray(data)
    return tf.constant(data.astype(object) if data.dtype.kind == "U" else data)


def _flat(outputs):
    return [np.asarray(o) for o in keras.tree.flatten(outputs)]


def assert_outputs_close(a, b, atol=1e-6):
    for x, y in zip(_flat(a), _flat(b), strict=True):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


def run_layer_test(
    layer_cls,
    init_kwargs: dict,
    input_data,
    expected_output_shape,
    tmp_path,
    call_kwargs: dict | None = None,
    expected_output=None,
    fit: bool = True,
):
    """Shapes (symbolic and eager), optional exact values, config round trip,
    `.keras` save/load with equal outputs, and one `fit` step that moves weights."""
    call_kwargs = call_kwargs or {}
    layer = layer_cls(**init_kwargs)
    eager_in = _to_model_input(input_data)

    symbolic_in = _symbolic_like(input_data)
    symbolic_out = layer(symbolic_in, **call_kwargs)
    want = (
        list(expected_output_shape)
        if isinstance(expected_output_shape, list)
        else [expected_output_shape]
    )
    got = [tuple(t.shape) for t in keras.tree.flatten(symbolic_out)]
    assert got == [tuple(s) for s in want], (got, want)

    eager_out = layer(eager_in, **call_kwargs)
    batch = len(next(iter(keras.tree.flatten(input_data))))
    got = [tuple(np.shape(t)) for t in keras.tree.flatten(eager_out)]
    assert got == [(batch, *tuple(s)[1:]) for s in want], (got, want)
    if expected_output is not None:
        assert_outputs_close(eager_out, expected_output, atol=1e-5)

    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    json.dumps(config)  # configs must be plain JSON

    model = keras.Model(symbolic_in, symbolic_out)
    before = model(eager_in)
    path = os.path.join(tmp_path, f"{layer_cls.__name__}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode: no Lambda anywhere
    assert_outputs_close(loaded(eager_in), before)

    if fit and model.trainable_weights:
        targets = keras.tree.map_structure(
            lambda t: np.ones(np.shape(t), "float32"), before
        )
        start = [np.array(w) for w in model.trainable_weights]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(eager_in, targets, epochs=1, batch_size=batch, verbose=0)
        moved = [
            not np.allclose(a, np.array(w))
            for a, w in zip(start, model.trainable_weights)
        ]
        assert any(moved), "one fit step changed no weight"
    return layer


def reload_in_fresh_process(export_dir, inputs: dict) -> dict:
    """Call `serving_default` of a SavedModel in a new Python that never imports
    keras_mtl, as TF Serving would; returns the outputs as arrays."""

    def plain(value):
        value = np.asarray(value)
        if value.dtype.kind in "OS":  # strings arrive from TF as bytes
            value = np.vectorize(lambda b: b.decode() if isinstance(b, bytes) else b)(
                value
            ).astype(object)
        return value.tolist()

    payload = {k: {"value": plain(v)} for k, v in inputs.items()}
    script = textwrap.dedent(
        """
        import json, os, sys
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import tensorflow as tf
        payload = json.loads(sys.stdin.read())
        fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
        args = {}
        for name, spec in fn.structured_input_signature[1].items():
            args[name] = tf.constant(payload[name]["value"], dtype=spec.dtype)
        out = fn(**args)
        assert "keras_mtl" not in sys.modules
        print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(export_dir)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": ""},
        cwd="/",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {k: np.array(v) for k, v in json.loads(proc.stdout.splitlines()[-1]).items()}


def write_text(path, text: str):
    """Write `text` to `path`, gzipped when the name ends in `.gz`; returns `path`."""
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path
