import numpy as np
import pytest

from keras_mtl.layers.partitioned_normalization import PartitionedNormalization
from tests.helpers import run_layer_test, to_numpy

#: Two domains with different means and spreads: domain 0 holds 1 and 3 (mean
#: 2, variance 1), domain 1 holds 10 and 30 (mean 20, variance 100); all four:
#: mean 11, variance 131.5.
Z = np.array([[1.0, -2.0], [10.0, 4.0], [3.0, 2.0], [30.0, 8.0]], "float32")
DOMAIN = np.array([0, 1, 0, 1])
#: An epsilon that vanishes next to these variances in float32 (0 is refused).
EPS = 1e-9


def _np(x):
    return to_numpy(x)


def test_layer_contract(tmp_path):
    rng = np.random.default_rng(0)
    run_layer_test(
        PartitionedNormalization,
        {"num_domains": 3, "momentum": 0.9},
        [rng.normal(size=(8, 4)).astype("float32"), np.array([0, 1, 2, -1] * 2)],
        expected_output_shape=(None, 4),
        tmp_path=tmp_path,
    )


def test_training_normalises_each_domain_with_its_own_batch_statistics():
    pn = PartitionedNormalization(2, momentum=0.0, epsilon=EPS)
    out = _np(pn([Z, DOMAIN], training=True))
    want = np.array([[-1.0, -1.0], [-1.0, -1.0], [1.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(out, want, atol=1e-6)
    # momentum 0: the moving statistics are this batch's, per domain, global last
    np.testing.assert_allclose(_np(pn.moving_mean)[:, 0], [2.0, 20.0, 11.0])
    np.testing.assert_allclose(_np(pn.moving_variance)[:, 0], [1.0, 100.0, 131.5])
    np.testing.assert_allclose(_np(pn.moving_mean)[:, 1], [0.0, 6.0, 3.0])


def test_moving_statistics_converge_to_each_domains_and_inference_uses_them():
    pn = PartitionedNormalization(2, momentum=0.5, epsilon=EPS)
    for _ in range(30):  # 0.5 ** 30: the starting (0, 1) is gone
        pn([Z, DOMAIN], training=True)
    np.testing.assert_allclose(_np(pn.moving_mean)[:, 0], [2.0, 20.0, 11.0], rtol=1e-5)
    np.testing.assert_allclose(
        _np(pn.moving_variance)[:, 0], [1.0, 100.0, 131.5], rtol=1e-5
    )
    # Inference: each row with its own domain's moving statistics, whatever the
    # batch holds (one row of domain 1 alone, then rows in another order).
    z = np.array([[20.0, 6.0], [2.0, 0.0], [3.0, 2.0], [40.0, 6.0]], "float32")
    out = _np(pn([z, np.array([1, 0, 0, 1])]))
    np.testing.assert_allclose(out[:, 0], [0.0, 0.0, 1.0, 2.0], atol=1e-5)
    alone = _np(pn([z[3:], np.array([1])]))
    np.testing.assert_allclose(alone[:, 0], [2.0], atol=1e-5)


def test_a_domain_missing_from_the_batch_keeps_its_moving_statistics():
    pn = PartitionedNormalization(2, momentum=0.0, epsilon=EPS)
    pn([Z, DOMAIN], training=True)
    only_zero = np.array([[5.0, 0.0], [7.0, 0.0]], "float32")
    pn([only_zero, np.array([0, 0])], training=True)
    np.testing.assert_allclose(_np(pn.moving_mean)[:, 0], [6.0, 20.0, 6.0])
    np.testing.assert_allclose(_np(pn.moving_variance)[:, 0], [1.0, 100.0, 1.0])


def test_the_scale_is_the_product_and_the_shift_the_sum():
    pn = PartitionedNormalization(2, epsilon=EPS)
    pn.build([(None, 2), (None,)])
    pn.gamma.assign(np.array([2.0, 2.0], "float32"))
    pn.beta.assign(np.array([0.5, 0.5], "float32"))
    pn.domain_gamma.assign(np.array([[3.0, 3.0], [1.0, 1.0]], "float32"))
    pn.domain_beta.assign(np.array([[0.25, 0.25], [0.0, 0.0]], "float32"))
    pn.moving_mean.assign(np.array([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]], "float32"))
    pn.moving_variance.assign(np.full((3, 2), 4.0, "float32"))
    out = _np(pn([np.array([[5.0, 3.0]], "float32"), np.array([0])]))
    # (γ·γ_0)(z − 1)/2 + (β + β_0) = 6·(2, 1) + 0.75; γ + γ_0 would give 5·(...)
    np.testing.assert_allclose(out, [[12.75, 6.75]], atol=1e-6)


def test_an_unknown_domain_gets_the_shared_parameters_and_global_statistics():
    pn = PartitionedNormalization(2, momentum=0.0, epsilon=EPS)
    pn.build([(None, 2), (None,)])
    pn.domain_gamma.assign(np.full((2, 2), 5.0, "float32"))
    pn.domain_beta.assign(np.full((2, 2), 7.0, "float32"))
    z = np.concatenate([Z, [[22.0, 3.0]]]).astype("float32")
    # Training: -1 and out-of-range rows use the batch's global statistics
    # (over every row), γ = 1 and β = 0 alone; they do not move a domain's.
    out = _np(pn([z, np.array([0, 1, 0, 1, -1])], training=True))
    mean, std = z[:, 0].mean(), z[:, 0].std()
    np.testing.assert_allclose(out[4, 0], (22.0 - mean) / std, rtol=1e-5)
    np.testing.assert_allclose(out[0, 0], 5.0 * -1.0 + 7.0, rtol=1e-5)
    np.testing.assert_allclose(_np(pn.moving_mean)[:, 0], [2.0, 20.0, mean])
    # Inference: the global moving statistics, for any unknown index.
    out = _np(pn([np.array([[mean + 2 * std, 3.0]] * 2, "float32"), np.array([-1, 9])]))
    np.testing.assert_allclose(out[:, 0], [2.0, 2.0], rtol=1e-5)


def test_a_domain_with_one_example_normalises_to_its_shift():
    # Its variance in the batch is 0: rsqrt(0 + ε) stays finite, (z − E) is 0.
    pn = PartitionedNormalization(2, momentum=0.0)
    pn.build([(None, 2), (None,)])
    pn.domain_beta.assign(np.array([[0.0, 0.0], [0.5, -1.0]], "float32"))
    out = _np(pn([Z[:3], DOMAIN[:3]], training=True))
    np.testing.assert_allclose(out[1], [0.5, -1.0])  # β + β_1, β = 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_domains": 0}, "num_domains must be"),
        ({"num_domains": 2, "momentum": 1.5}, "momentum must be"),
        ({"num_domains": 2, "epsilon": -1.0}, "epsilon must be"),
        ({"num_domains": 2, "epsilon": 0.0}, "epsilon must be a finite number > 0"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=f"PartitionedNormalization: {match}"):
        PartitionedNormalization(**kwargs)


def test_inputs_must_be_values_and_domains():
    with pytest.raises(ValueError, match=r"inputs must be \[values, domain\]"):
        PartitionedNormalization(2)(Z)
