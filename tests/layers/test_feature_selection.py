"""FeatureSelection: per-task softmax weights over the feature fields."""

import numpy as np
import pytest

from keras_mtl.layers import FeatureSelection
from tests.helpers import run_layer_test, to_numpy

DIMS = [2, 1, 3]  # three fields side by side: columns 0-1, 2, 3-5
X = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")


def _expected(x, kernel, bias):
    """`x` with field i scaled by F · softmax(x W_k + b_k)_i, per selection k."""
    logits = np.einsum("bd,sdf->bsf", x, kernel) + bias
    weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True) * len(DIMS)
    return weights, [x * np.repeat(weights[:, k], DIMS, axis=-1) for k in range(2)]


def test_layer_contract_starts_as_the_identity(tmp_path):
    run_layer_test(
        FeatureSelection,
        {
            "field_dims": DIMS,
            "selection_names": ("a", "b"),
            "field_names": ("u", "v", "w"),
        },
        X,
        expected_output_shape=[(None, 6), (None, 6)],
        tmp_path=tmp_path,
        expected_output=[X, X],  # every weight starts at exactly 1
    )


def test_weights_follow_the_formula():
    select = FeatureSelection(DIMS, ("a", "b"))
    select.build((None, 6))
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(2, 6, 3)).astype("float32")
    bias = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], "float32")
    select.kernel.assign(kernel)
    select.bias.assign(bias)
    weights, outputs = _expected(X, kernel, bias)
    got = to_numpy(select.field_weights(X))
    np.testing.assert_allclose(got, weights, rtol=1e-5, atol=1e-6)
    for got_k, want_k in zip(select(X), outputs, strict=True):
        np.testing.assert_allclose(to_numpy(got_k), want_k, rtol=1e-5, atol=1e-6)
    # Whatever the scores: non-negative, averaging 1 over the fields.
    assert (got >= 0).all()
    np.testing.assert_allclose(got.mean(-1), 1.0, rtol=1e-6)
    assert select.field_names == ("field_0", "field_1", "field_2")


def test_a_zero_weight_silences_a_field():
    select = FeatureSelection(DIMS, ("a",))
    select.build((None, 6))
    select.bias.assign([[0.0, -1e4, 0.0]])  # field 1 out: the others get 1.5
    (out,) = select(X)
    np.testing.assert_allclose(to_numpy(out)[:, 2], 0.0)
    np.testing.assert_allclose(to_numpy(out)[:, :2], 1.5 * X[:, :2], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"field_dims": [], "selection_names": ("a",)}, "field_dims"),
        ({"field_dims": [2, 0], "selection_names": ("a",)}, "field_dims"),
        ({"field_dims": [2], "selection_names": ()}, "selection_names"),
        ({"field_dims": [2], "selection_names": ("a", "a")}, "unique names"),
        (
            {"field_dims": [2, 1], "selection_names": ("a",), "field_names": ("u",)},
            "field_names must be a non-empty list of 2 unique names",
        ),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=f"FeatureSelection: .*{match}"):
        FeatureSelection(**kwargs)


def test_an_input_of_another_width_is_refused():
    select = FeatureSelection(DIMS, ("a",), field_names=("u", "v", "w"))
    with pytest.raises(ValueError, match=r"expected inputs \(batch, 6\).*'v': 1"):
        select(np.zeros((2, 5), "float32"))
