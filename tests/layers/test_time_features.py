"""TimeFeatures: raw Unix timestamps -> hour, weekday and elapsed seconds."""

import datetime

import keras
import numpy as np
import pytest

from keras_mtl.datasets import load_movielens
from keras_mtl.layers import TimeFeatures
from tests.helpers import run_layer_test
from tests.movielens_fixture import write_movielens


def _numpy(outputs):
    return {k: keras.ops.convert_to_numpy(v) for k, v in outputs.items()}


@pytest.mark.backends(
    "tensorflow",
    "torch",
    reason="timestamps past 2038 are int64, which JAX without JAX_ENABLE_X64=1 "
    "truncates to int32",
)
def test_hour_and_weekday_are_utc_calendar_values():
    # Spread over 1970..2040 (past the int32 seconds of 2038), plus day edges.
    rng = np.random.default_rng(0)
    t = np.concatenate(
        [rng.integers(0, 2_208_988_800, 200), [0, 86_399, 86_400, 2**31 + 5]]
    ).astype(np.int64)
    out = _numpy(TimeFeatures()({"timestamp": t}))
    dates = [datetime.datetime.fromtimestamp(int(s), datetime.UTC) for s in t]
    assert out["hour"].tolist() == [d.hour for d in dates]
    assert out["weekday"].tolist() == [d.weekday() for d in dates]  # Monday = 0
    assert out["hour"].dtype == np.int64 and set(out) == {"hour", "weekday"}


def test_elapsed_seconds_padding_and_steps_after_the_request():
    layer = TimeFeatures(hour=None, weekday="dow", elapsed={"gap": "steps"})
    out = _numpy(
        layer(
            {
                "timestamp": np.array([1_000, 1_000, -1]),
                "steps": np.array([[400, 999, -1], [1_005, 0, 7], [5, 6, -1]]),
            }
        )
    )
    # 1970-01-01 was a Thursday (3); no request time: no value anywhere.
    assert out["dow"].tolist() == [3, 3, -1]
    assert out["gap"].tolist() == [[600, 1, -1], [0, 1_000, 993], [-1, -1, -1]]
    # Without the step times, only the request-level outputs.
    assert set(_numpy(layer({"timestamp": np.array([5])}))) == {"dow"}


@pytest.mark.backends(
    "tensorflow",
    "torch",
    reason="its outputs are int64 by design, which JAX without JAX_ENABLE_X64=1 "
    "gives as int32 (Keras's harness checks the declared dtype)",
)
def test_layer_battery(tmp_path):
    run_layer_test(
        TimeFeatures,
        {"elapsed": {"history_gap": "history_timestamp"}},
        {
            "timestamp": np.array([90_000, 3_600], np.int64),
            "history_timestamp": np.array([[89_940, -1], [0, 3_000]], np.int64),
        },
        [(None, 2), (None,), (None,)],  # history_gap, hour, weekday (sorted)
        tmp_path,
        expected_output={
            "hour": np.array([1, 1]),
            "history_gap": np.array([[60, -1], [3_600, 600]]),
            "weekday": np.array([4, 3]),
        },
    )


def test_reproduces_the_movielens_loader(tmp_path):
    """The serving graph derives what the loader gives the model for training."""
    ml = load_movielens(
        write_movielens(tmp_path / "ml", num_users=20, num_items=60),
        max_len=6,
        list_size=4,
        item_hash_bins=64,
    )
    layer = TimeFeatures(**ml.time_features)
    assert layer.sources == {
        "hour": ("timestamp",),
        "weekday": ("timestamp",),
        "history_gap": ("history_timestamp", "timestamp"),
    }
    for split in (ml.train, ml.test):
        out = _numpy(layer({n: split[n] for n in ("timestamp", "history_timestamp")}))
        for name, value in out.items():
            np.testing.assert_array_equal(value, split[name], err_msg=name)
    assert len(set(ml.train["hour"])) > 5  # the check sees many hours


def test_input_shapes_and_bad_arguments():
    layer = TimeFeatures(elapsed={"gap": "steps"})
    assert layer.input_shapes({"hour": (), "gap": (7,)}) == {
        "timestamp": (),
        "steps": (7,),
    }
    with pytest.raises(ValueError, match="output 'hour' is one value per example"):
        layer.input_shapes({"hour": (3,)})
    with pytest.raises(ValueError, match="timestamp must be an input or output"):
        TimeFeatures(timestamp="")
    with pytest.raises(ValueError, match="no output"):
        TimeFeatures(hour=None, weekday=None)
    with pytest.raises(ValueError, match="must be distinct"):
        TimeFeatures(hour="t", weekday="t")
    with pytest.raises(ValueError, match="differ from the inputs"):
        TimeFeatures(hour="timestamp")
    with pytest.raises(ValueError, match="elapsed must be a dict"):
        TimeFeatures(elapsed=["gap"])
