"""Composite layers hand their dtype policy to every inner layer they create."""

import keras
import numpy as np
import pytest

from keras_mtl.features import DenseFeature, SparseFeature
from keras_mtl.layers import (
    MLP,
    AdaptiveInformationTransfer,
    AttentionPooling,
    CandidateScorer,
    FeatureEncoder,
    LSTMAttentionEncoder,
    StarTower,
    TaskTower,
)

POLICIES = ["mixed_float16", "mixed_bfloat16"]


def _inner(layer) -> dict:
    """The inner layers of `layer`, by the attribute that holds them."""
    found = {}
    # The instance's public attributes (`dir`, not `vars`: on torch a layer is
    # a torch Module, which keeps its sub-modules out of `__dict__`).
    names = [n for n in dir(layer) if not n.startswith("_")]
    for name in names:
        if hasattr(type(layer), name):
            continue  # methods and properties
        value = getattr(layer, name)
        if isinstance(value, dict):
            value = list(value.values())
        elif not isinstance(value, (list, tuple)):
            value = [value]
        for i, item in enumerate(value):
            if isinstance(item, keras.layers.Layer):
                found[f"{name}[{i}]"] = item
                found.update({f"{name}[{i}].{k}": v for k, v in _inner(item).items()})
    return found


def _built(policy):
    x = keras.Input((4,))
    items = keras.Input((3, 5))
    yield "MLP", MLP((3, 2), dropout=0.1, dtype=policy), x
    yield "TaskTower", TaskTower((3,), dtype=policy), x
    yield "CandidateScorer", CandidateScorer((3,), dtype=policy), [x, items]
    yield "AttentionPooling", AttentionPooling(2, dtype=policy), [items, x]
    yield "AIT", AdaptiveInformationTransfer(0.1, dtype=policy), [x, x]
    yield (
        "StarTower",
        StarTower(2, (3,), aux_units=(2,), dtype=policy),
        [
            x,
            keras.Input((), dtype="int32"),
            x,
        ],
    )
    for cell in ("property_gated", "lstm", "none"):
        yield (
            f"LSTMAttentionEncoder[{cell}]",
            LSTMAttentionEncoder(3, cell=cell, attention_units=2, dtype=policy),
            [items, keras.Input((3, 2)), x],
        )
    features = [
        SparseFeature("a", vocabulary_size=3, embedding_dim=2),
        DenseFeature("m", allow_missing=True),
    ]
    inputs = {"a": keras.Input((), dtype="int32"), "m": keras.Input(())}
    yield "FeatureEncoder", FeatureEncoder(features, dtype=policy), inputs


@pytest.mark.parametrize("policy", POLICIES)
def test_inner_layers_take_the_parents_policy(policy):
    for label, layer, inputs in _built(policy):
        layer(inputs)  # builds (the inner layers of `build` too)
        inner = _inner(layer)
        assert inner, label
        # Lookups and index layers (integer outputs) keep their own dtype.
        floats = {
            k: v.dtype_policy.name
            for k, v in inner.items()
            if not k.startswith("lookups")
        }
        assert floats == dict.fromkeys(floats, policy), (label, floats)
        weights = {w.path: w.dtype for w in layer.weights}
        assert set(weights.values()) <= {"float32", "int32"}, (label, weights)


def test_mixed_mlp_computes_in_float16():
    mlp = MLP((2,), kernel_initializer="ones", dtype="mixed_float16")
    out = mlp(np.array([[1.0, 2.0]], "float32"))
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), [[3.0, 3.0]])
    assert all(w.dtype == "float32" for w in mlp.weights)
