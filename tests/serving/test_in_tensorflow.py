"""Exports from JAX and torch (`keras_mtl.serving._in_tensorflow`): the
TensorFlow backend writes the SavedModel in a child Python; served in a fresh
process, it gives the JAX / torch model's predictions."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_mtl.layers import TimeFeatures
from keras_mtl.serving import _in_tensorflow
from keras_mtl.serving.signatures import serialize_examples
from tests.helpers import (
    assert_outputs_close,
    assert_signature_shows,
    feature_batch,
    serve_in_fresh_process,
)
from tests.models.test_builders import BATTERY_TASKS, FEATURES, build, make_data

ROOT = pathlib.Path(__file__).resolve().parents[2]
BACKENDS = ("jax", "torch")
#: Rows of the example batch in each warm-up request.
WARMUP = ((0, 2), (2, 7))
ROWS = 256  # 2 steps of 128
EXAMPLES = 16

#: Trains the battery's MMoE (a string feature, an id list) for one epoch on
#: the backend of its process, predicts the first `EXAMPLES` rows and exports
#: them with every kind of signature and warm-up requests.
_TRAIN_AND_EXPORT = textwrap.dedent(
    f"""
    import json, sys
    import keras, numpy as np
    import keras_mtl as km
    from keras_mtl.data import make_dataset
    from tests.helpers import feature_batch
    from tests.models.test_builders import BATTERY_TASKS, FEATURES, build, make_data

    keras.utils.set_random_seed(0)
    data = make_data({ROWS})
    model = build("mmoe", tasks=BATTERY_TASKS, compile={{"learning_rate": 0.01}})
    ds = make_dataset(data, FEATURES, BATTERY_TASKS, 128, seed=0, drop_remainder=True)
    model.fit(ds, epochs=1, verbose=0)
    x = feature_batch(data, FEATURES, {EXAMPLES})
    predicted = model.predict(x, verbose=0)
    rows = {{k: np.asarray(v) for k, v in x.items()}}
    path = km.export_saved_model(
        model,
        sys.argv[1],
        warmup_requests=[{{k: v[a:b] for k, v in rows.items()}} for a, b in {WARMUP}],
        ranking_score=km.serving.RankingScore(
            {{"income": 1.0, "spend": 0.5}}, "sum"
        ),
        output_signatures={{"score_segment": ["segment"]}},
    )
    print(json.dumps({{
        "backend": keras.backend.backend(),
        "path": str(path),
        "predicted": {{k: v.tolist() for k, v in predicted.items()}},
        "tf_keras_backend": "keras.src.backend.tensorflow.trainer" in sys.modules,
    }}))
    """
)


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """`{backend: (json result, x)}`: both backends trained and exported at
    once (two processes), then served in one fresh process that never
    imports keras_mtl."""
    started = {}
    for backend in (b for b in BACKENDS if _installed(b)):
        started[backend] = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _TRAIN_AND_EXPORT,
                str(tmp_path_factory.mktemp(backend)),
            ],
            env={**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
    results = {}
    for backend, proc in started.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, (backend, err[-3000:])
        results[backend] = json.loads(out.splitlines()[-1])
    x = feature_batch(make_data(ROWS), FEATURES, EXAMPLES)
    rows = {k: np.asarray(v) for k, v in x.items()}
    calls = [
        {"dir": r["path"], "inputs": x, "examples": serialize_examples(rows)}
        for r in results.values()
    ]
    served = serve_in_fresh_process(calls) if calls else []
    return {b: (r, s) for (b, r), s in zip(results.items(), served)}


@pytest.mark.slow  # two trainings and three fresh Pythons (about 30 s)
@pytest.mark.parametrize("backend", BACKENDS)
def test_serving_parity_in_fresh_process(exports, backend):
    pytest.importorskip(backend)
    result, served = exports[backend]
    assert result["backend"] == backend
    # The export ran in a child: this process never loaded TF's Keras backend.
    assert not result["tf_keras_backend"]
    assert pathlib.Path(result["path"]).name == "1"
    predicted = {k: np.array(v) for k, v in result["predicted"].items()}
    predicted["ranking_score"] = predicted["income"] + 0.5 * predicted["spend"]
    assert_outputs_close(served["outputs"], predicted, atol=1e-5)
    signatures = served["signatures"]
    assert sorted(signatures) == ["score_segment", "serving_examples"]
    for outputs in signatures.values():
        assert_outputs_close(outputs, {k: predicted[k] for k in outputs}, atol=1e-5)
    assert sorted(signatures["score_segment"]) == ["segment"]
    # Each warm-up request once per signature (ranking_score too).
    warmed = [signature for signature, _ in served["warmup"]]
    want = ["serving_default", "serving_examples", "ranking_score", "score_segment"]
    assert sorted(warmed) == sorted(want * len(WARMUP)), warmed
    for index, (_, outputs) in enumerate(served["warmup"]):
        start, stop = WARMUP[index % len(WARMUP)]
        assert_outputs_close(
            outputs, {k: predicted[k][start:stop] for k in outputs}, atol=1e-5
        )
    assert_signature_shows(
        served["signature"], build("mmoe", tasks=BATTERY_TASKS, compile=False)
    )


def test_arrays_cross_to_the_child_with_their_dtypes():
    arrays = {
        "ids": np.array([[3, -1], [7, 2]], "int64"),
        "price": np.array([[1.5], [np.nan]], "float32"),
        "city": np.array(["paris", b"rome"], object),
        "tags": np.array([["a", ""]]),
        "empty": np.zeros((0, 2), object),
    }
    for name, array in arrays.items():
        record = json.loads(json.dumps(_in_tensorflow._encode_array(array)))
        back = _in_tensorflow._decode_array(record)
        assert back.shape == array.shape, name
        if array.dtype.kind in "OSU":
            assert back.dtype == object, name
            want = [v.decode() if isinstance(v, bytes) else v for v in array.flat]
            assert list(back.flat) == want, name
        else:
            assert back.dtype == array.dtype, name
            np.testing.assert_array_equal(back, array)


def test_child_errors_come_back_with_their_type_and_message():
    error = _in_tensorflow._rebuilt_error(
        "export_saved_model",
        "jax",
        {"type": "FileExistsError", "message": "1 exists", "traceback": "tb"},
    )
    assert type(error) is FileExistsError
    assert str(error).startswith("1 exists\n(export_saved_model ran on the ")
    assert "jax backend" in str(error)
    assert error.__notes__ == ["The child's traceback:\ntb"]  # (the cause kept)
    # Not a built-in exception type: a RuntimeError naming it, with the traceback.
    error = _in_tensorflow._rebuilt_error(
        "export_dupn",
        "torch",
        {"type": "InvalidArgumentError", "message": "bad", "traceback": "tb line"},
    )
    assert type(error) is RuntimeError
    assert str(error).startswith("InvalidArgumentError: bad")
    assert str(error).endswith("tb line")


def test_model_parts_are_refused_off_tensorflow():
    import keras

    part = build("mmoe", tasks=BATTERY_TASKS, compile=False)
    with pytest.raises(ValueError, match="'score_x' must list task names"):
        _in_tensorflow._encode_arguments(
            "export_saved_model", {"output_signatures": {"score_x": part}}, "jax"
        )
    assert isinstance(part, keras.Model)


def test_a_preprocessor_with_weights_is_refused_off_tensorflow():
    import keras

    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    with pytest.raises(ValueError, match="Dense has weights, which it would lose"):
        _in_tensorflow._encode_arguments(
            "export_saved_model", {"preprocessor": dense}, "torch"
        )
    encoded = _in_tensorflow._encode_arguments(
        "export_dupn", {"preprocessor": TimeFeatures()}, "jax"
    )
    assert encoded["preprocessor"]["class_name"] == "TimeFeatures"
