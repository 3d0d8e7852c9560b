import keras
import numpy as np
import pytest

from keras_mtl.layers.star_dense import StarDense
from tests.helpers import run_layer_test, to_numpy

RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 3)).astype("float32")
#: Domains 0, 1, 2, and two rows of no known domain (-1, out of range).
DOMAIN = np.array([0, 1, 2, -1, 1, 7])


def test_layer_contract(tmp_path):
    run_layer_test(
        StarDense,
        {"units": 4, "num_domains": 3, "activation": "relu"},
        [X, DOMAIN],
        expected_output_shape=(None, 4),
        tmp_path=tmp_path,
    )


def test_at_the_start_every_domain_is_the_shared_dense_layer():
    star = StarDense(4, num_domains=3, bias_initializer="random_normal")
    out = to_numpy(star([X, DOMAIN]))
    dense = keras.layers.Dense(4)
    dense.build((None, 3))
    dense.set_weights([to_numpy(star.kernel), to_numpy(star.bias)])
    np.testing.assert_array_equal(to_numpy(star.domain_kernel), 1.0)
    np.testing.assert_array_equal(to_numpy(star.domain_bias), 0.0)
    np.testing.assert_allclose(out, to_numpy(dense(X)), rtol=1e-6, atol=1e-6)


def test_hand_computed_domain_weights():
    star = StarDense(2, num_domains=3, activation="relu")
    star.build([(None, 3), (None,)])
    kernel = RNG.normal(size=(3, 2)).astype("float32")
    bias = np.array([0.1, -0.2], "float32")
    domain_kernel = RNG.normal(size=(3, 3, 2)).astype("float32")
    domain_bias = RNG.normal(size=(3, 2)).astype("float32")
    star.set_weights([kernel, domain_kernel, bias, domain_bias])
    out = to_numpy(star([X, DOMAIN]))
    for row, d in enumerate(DOMAIN):
        if 0 <= d < 3:  # W ⊙ W_p, b + b_p
            want = X[row] @ (kernel * domain_kernel[d]) + bias + domain_bias[d]
        else:  # no known domain: W, b alone
            want = X[row] @ kernel + bias
        np.testing.assert_allclose(out[row], np.maximum(want, 0), atol=1e-5)


def test_a_domain_trains_only_its_own_weights_and_the_shared_ones():
    x = keras.Input((3,))
    d = keras.Input((), dtype="int32")
    model = keras.Model([x, d], StarDense(2, num_domains=3)([x, d]))
    layer = model.layers[-1]
    before = {w.path: np.array(w) for w in layer.weights}
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    only_domain_1 = np.ones(6, "int32")
    model.fit([X, only_domain_1], np.ones((6, 2)), batch_size=6, verbose=0)
    kernel, domain_kernel = to_numpy(layer.kernel), to_numpy(layer.domain_kernel)
    assert not np.allclose(kernel, before[layer.kernel.path])
    moved = before[layer.domain_kernel.path] != domain_kernel
    assert moved[1].all() and not moved[[0, 2]].any()
    bias_moved = before[layer.domain_bias.path] != to_numpy(layer.domain_bias)
    assert bias_moved[1].all() and not bias_moved[[0, 2]].any()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"units": 0, "num_domains": 2}, "units must be"),
        ({"units": 2, "num_domains": 0}, "num_domains must be"),
        ({"units": 2, "num_domains": 2, "use_bias": "yes"}, "use_bias must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=f"StarDense: {match}"):
        StarDense(**kwargs)


def test_inputs_must_be_values_and_domains():
    with pytest.raises(
        ValueError, match=r"StarDense: inputs must be \[values, domain\]"
    ):
        StarDense(2, 2)(X)
    with pytest.raises(ValueError, match=r"domain indices must be \(batch,\)"):
        StarDense(2, 2)([X, np.zeros((6, 2), "int32")])
