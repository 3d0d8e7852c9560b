import numpy as np
import pandas as pd
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset
from keras_mtl.objectives import objective_weights

DATA = pd.DataFrame(
    {
        "click": [1.0, 1.0, 0.0, 1.0, np.nan],
        "dwell": [9.0, np.nan, np.nan, 0.0, 5.0],
        "conversion": [1.0, 0.0, 0.0, 0.0, 0.0],
    }
)


def test_log_dwell_and_conversion_boosts():
    weights = objective_weights(
        DATA,
        "click",
        {"dwell": 0.5, "conversion": 3.0},
        transforms={"dwell": "log1p"},
    )
    # Row 0: 1 + 0.5 log(10) + 3; row 1: no dwell; row 2: no click; row 3:
    # log(1) = 0; row 4: a missing click label keeps the base.
    np.testing.assert_allclose(
        weights, [4.0 + 0.5 * np.log(10.0), 1.0, 1.0, 1.0, 1.0], rtol=1e-6
    )
    assert weights.dtype == np.float32


def test_raw_boost_and_base():
    weights = objective_weights(dict(DATA), "click", {"dwell": 0.1}, base=2.0)
    np.testing.assert_allclose(weights, [2.9, 2.0, 2.0, 2.0, 2.0], rtol=1e-6)


def test_weights_feed_make_dataset():
    frame = DATA.iloc[:4].assign(
        x=np.arange(4, dtype="float32"),
        click_weight=objective_weights(DATA.iloc[:4], "click", {"conversion": 1.0}),
    )
    ds = make_dataset(
        frame,
        [km.DenseFeature("x")],
        [km.Task("ctr", label="click")],
        shuffle=False,
        sample_weight="click_weight",
    )
    _, _, weights = next(iter(ds))
    np.testing.assert_array_equal(weights.numpy(), [2.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("click", {"watch": 1.0}), {}, r"columns \['watch'\] are not in the data"),
        (("dwell", {"conversion": 1.0}), {}, "main label 'dwell' must be 0, 1 or NaN"),
        (
            ("click", {"conversion": 1.0}),
            {"transforms": {"dwell": "log1p"}},
            r"transforms for \['dwell'\], which have no boost",
        ),
        (("click", {"conversion": -2.0}), {}, r"rows \[0\] get \[-1.0\]"),
        (("click", {"dwell": 1.0}), {"base": 0.0}, "base must be > 0"),
    ],
)
def test_errors(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        objective_weights(DATA, *args, **kwargs)


def test_transform_domain_error():
    data = DATA.assign(dwell=[-2.0, np.nan, -5.0, 0.0, np.nan])
    # Row 2 has no click: its value is never used; row 0's is.
    with pytest.raises(ValueError, match=r"'dwell' must be > -1 .* \[-2.0\]"):
        objective_weights(data, "click", {"dwell": 1.0}, transforms={"dwell": "log1p"})
