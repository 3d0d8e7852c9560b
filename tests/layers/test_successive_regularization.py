"""SuccessiveRegularization: δ‖θ − θ′‖² against a snapshot refreshed on schedule."""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_mtl.layers import MLP, SuccessiveRegularization
from tests.conftest import REPO
from tests.helpers import run_layer_test

X = np.array([[1.0, 2.0]], "float32")


def _wrapped(delta=0.5, refresh_every=2):
    dense = keras.layers.Dense(2, kernel_initializer="ones", bias_initializer="zeros")
    return SuccessiveRegularization(dense, delta=delta, refresh_every=refresh_every)


def test_penalty_by_hand_and_refresh_schedule():
    layer = _wrapped(delta=0.5, refresh_every=2)
    layer(X)  # build: the snapshot starts at the initial weights
    assert float(layer.losses[-1]) == 0.0
    dense = layer.layer
    dense.kernel.assign([[3.0, 1.0], [1.0, -1.0]])  # moved by (2, 0, 0, −2)
    dense.bias.assign([0.0, 1.0])  # moved by (0, 1)
    layer(X)  # inference: against the stored snapshot, nothing changes
    assert float(layer.losses[-1]) == pytest.approx(0.5 * (4 + 4 + 1))
    assert int(layer.calls) == 0
    layer(X, training=True)  # call 0: refresh first, so no penalty
    assert float(layer.losses[-1]) == 0.0
    np.testing.assert_array_equal(layer.snapshot[0], [[3.0, 1.0], [1.0, -1.0]])
    dense.kernel.assign([[3.0, 1.0], [1.0, 2.0]])  # moved by 3 from the snapshot
    layer(X, training=True)  # call 1: no refresh
    assert float(layer.losses[-1]) == pytest.approx(0.5 * 9)
    np.testing.assert_array_equal(layer.snapshot[0], [[3.0, 1.0], [1.0, -1.0]])
    layer(X, training=True)  # call 2: refresh
    assert float(layer.losses[-1]) == 0.0
    np.testing.assert_array_equal(layer.snapshot[0], [[3.0, 1.0], [1.0, 2.0]])
    assert int(layer.calls) == 3


def test_gradient_pulls_towards_the_snapshot():
    """d/dw δ‖w − w′‖² = 2δ(w − w′): an SGD step on the penalty alone moves the
    weights that far back towards the snapshot, the snapshot held constant."""
    layer = _wrapped(delta=0.25, refresh_every=10)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, layer(inputs))
    model.compile(keras.optimizers.SGD(1.0), loss=lambda y, p: 0.0 * p)
    model.train_on_batch(X, np.zeros((1, 2)))  # call 0: refresh (at ones)
    layer.layer.kernel.assign([[3.0, 1.0], [1.0, 1.0]])
    model.train_on_batch(X, np.zeros((1, 2)))  # penalty 0.25 · 4 = 1
    # w − lr · 2δ(w − w′) = 3 − 0.5 · 2 = 2
    np.testing.assert_allclose(layer.layer.kernel, [[2.0, 1.0], [1.0, 1.0]], atol=1e-6)
    np.testing.assert_array_equal(layer.snapshot[0], np.ones((2, 2)))


def test_mixed_precision_penalty_is_computed_in_float32():
    """In a mixed_float16 model the penalty reads the float32 weights: a move
    of 0.01 (0.01000977 after a float16 round trip) gives exactly 4 · 0.01²."""
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = _wrapped(delta=1.0, refresh_every=5)
        inputs = keras.Input((2,))
        model = keras.Model(inputs, layer(inputs))
    finally:
        keras.config.set_dtype_policy(before)
    assert layer.snapshot[0].dtype == "float32"
    model(X, training=True)  # call 0: refresh
    layer.layer.kernel.assign(np.full((2, 2), 1.01, "float32"))
    model(X, training=True)
    assert float(model.losses[0]) == pytest.approx(4 * 0.01**2, rel=1e-4)


def test_zero_delta_keeps_no_snapshot():
    layer = _wrapped(delta=0.0)
    layer(X, training=True)
    assert layer.snapshot == [] and layer.losses == []
    assert len(layer.weights) == 2  # the dense layer's own


def test_layer_contract(tmp_path):
    run_layer_test(
        SuccessiveRegularization,
        {
            "layer": MLP((2,), kernel_initializer="ones", name="hidden"),
            "delta": 1e-3,
            "refresh_every": 3,
        },
        X,
        (None, 2),
        tmp_path,
        expected_output=np.array([[3.0, 3.0]], "float32"),  # relu(x @ ones)
    )


def test_snapshot_and_counter_survive_saving(tmp_path):
    layer = _wrapped(delta=0.5, refresh_every=5)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, layer(inputs))
    layer(X, training=True)
    layer.layer.kernel.assign(np.zeros((2, 2)))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    restored = loaded.layers[-1]
    assert int(restored.calls) == 1
    np.testing.assert_array_equal(restored.snapshot[0], np.ones((2, 2)))
    restored(X)
    assert float(restored.losses[-1]) == pytest.approx(0.5 * 4)


def test_bad_arguments_are_named():
    dense = keras.layers.Dense(1)
    with pytest.raises(ValueError, match="delta must be a finite number >= 0"):
        SuccessiveRegularization(dense, delta=-1.0)
    with pytest.raises(ValueError, match="refresh_every must be a positive int"):
        SuccessiveRegularization(dense, refresh_every=0)


def backend_case() -> dict:
    """Three compiled SGD steps through the layer on the current backend: the
    weights, the snapshot (taken at call 0) and the call count after them."""
    layer = _wrapped(delta=0.25, refresh_every=10)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, layer(inputs))
    model.compile(keras.optimizers.SGD(0.1), loss="mse", jit_compile=True)
    for _ in range(3):
        model.train_on_batch(X, np.zeros((1, 2), "float32"))
    model(X)
    numpy = keras.ops.convert_to_numpy
    return {
        "backend": keras.backend.backend(),
        "kernel": numpy(layer.layer.kernel).tolist(),
        "snapshot": numpy(layer.snapshot[0]).tolist(),
        "calls": int(numpy(layer.calls)),
        "penalty": float(numpy(model.losses[0])),
    }


@pytest.mark.slow  # a fresh Python that imports Keras on another backend
def test_jax_gives_the_same_numbers():
    """The snapshot is a copy, not the weights' buffer, and is assigned in a
    compiled step. A shared buffer fails loudly on JAX (it donates both) and
    silently on torch (in-place updates move the snapshot too); one backend
    (JAX, the cheaper to start) guards the copy; torch gives the same numbers
    (`backend_case()` under KERAS_BACKEND=torch), left out to save CI time."""
    backend = "jax"
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (.ci/run installs it)")
    code = (
        "import json; from tests.layers.test_successive_regularization import "
        "backend_case; print(json.dumps(backend_case()))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "KERAS_BACKEND": backend},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    ours = backend_case()
    assert theirs["backend"] == backend and ours["backend"] == "tensorflow"
    assert theirs["calls"] == ours["calls"] == 3
    assert theirs["snapshot"] == ours["snapshot"] == np.ones((2, 2)).tolist()
    assert ours["kernel"] != ours["snapshot"]  # the steps moved the weights
    np.testing.assert_allclose(theirs["kernel"], ours["kernel"], rtol=1e-5)
    assert theirs["penalty"] == pytest.approx(ours["penalty"], rel=1e-5)
    assert ours["penalty"] > 0
