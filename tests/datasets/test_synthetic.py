import numpy as np
import pytest

from keras_mtl.data import make_dataset
from keras_mtl.datasets import SyntheticData, make_synthetic
from keras_mtl.datasets.synthetic import synthetic_targets
from keras_mtl.features import DenseFeature
from keras_mtl.tasks import Task


def test_shapes_dtypes_and_specs():
    syn = make_synthetic(num_examples=300, dim=12, seed=0)
    assert isinstance(syn, SyntheticData)
    assert syn.data["x"].shape == (300, 12) and syn.data["x"].dtype == np.float32
    for key in ("y1", "y2"):
        assert syn.data[key].shape == (300,) and syn.data[key].dtype == np.float32
    assert syn.features == [DenseFeature("x", dim=12)]
    assert syn.tasks == [Task("y1", "regression"), Task("y2", "regression")]
    assert syn.alpha.shape == syn.beta.shape == (5,)
    x, y = next(iter(make_dataset(syn.data, syn.features, syn.tasks, batch_size=300)))
    assert x["x"].shape == (300, 12) and set(y) == {"y1", "y2"}


def test_orthonormal_directions():
    syn = make_synthetic(num_examples=10, dim=50, seed=3)
    assert np.linalg.norm(syn.u1) == pytest.approx(1.0, abs=1e-12)
    assert np.linalg.norm(syn.u2) == pytest.approx(1.0, abs=1e-12)
    assert abs(syn.u1 @ syn.u2) < 1e-12


@pytest.mark.parametrize("p", [-0.9, -0.3, 0.0, 0.5, 0.99, 1.0])
def test_weight_cosine_equals_the_correlation(p):
    syn = make_synthetic(num_examples=10, dim=20, correlation=p, scale=3.0, seed=1)
    cosine = syn.w1 @ syn.w2 / (np.linalg.norm(syn.w1) * np.linalg.norm(syn.w2))
    assert cosine == pytest.approx(p, abs=1e-6)
    assert np.linalg.norm(syn.w1) == pytest.approx(3.0)
    assert np.linalg.norm(syn.w2) == pytest.approx(3.0)
    assert syn.correlation == p


def test_labels_use_the_shared_sine_parameters():
    syn = make_synthetic(
        num_examples=500, dim=8, correlation=0.3, noise_std=0.0, seed=5
    )
    x = syn.data["x"]
    # Recompute by hand from the returned parameters: same alpha/beta for both.
    for w, key in ((syn.w1, "y1"), (syn.w2, "y2")):
        z = x.astype(np.float64) @ w
        expected = z + sum(np.sin(a * z + b) for a, b in zip(syn.alpha, syn.beta))
        np.testing.assert_array_equal(syn.data[key], expected.astype(np.float32))
    # With other sine parameters for task 2 the labels would differ.
    other = synthetic_targets(x, syn.w2, syn.alpha[::-1], syn.beta)
    assert np.abs(other - syn.data["y2"]).max() > 0.1


def test_noise_has_the_requested_scale():
    clean = make_synthetic(num_examples=20_000, dim=4, noise_std=0.0, seed=2)
    noisy = make_synthetic(num_examples=20_000, dim=4, noise_std=0.5, seed=2)
    residual = noisy.data["y1"] - clean.data["y1"]
    assert residual.std() == pytest.approx(0.5, rel=0.03)
    np.testing.assert_array_equal(noisy.data["x"], clean.data["x"])


def test_label_correlation_increases_with_p():
    def label_correlation(p):
        values = [
            np.corrcoef(s.data["y1"], s.data["y2"])[0, 1]
            for s in (
                make_synthetic(num_examples=20_000, dim=32, correlation=p, seed=seed)
                for seed in range(4)
            )
        ]
        return float(np.mean(values))

    means = [label_correlation(p) for p in (0.0, 0.5, 0.9, 1.0)]
    assert all(a < b for a, b in zip(means, means[1:])), means
    assert means[-1] > 0.95  # identical tasks up to noise
    assert abs(means[0]) < 0.5


def test_seed_determines_the_data():
    a = make_synthetic(num_examples=100, dim=6, seed=11)
    b = make_synthetic(num_examples=100, dim=6, seed=11)
    c = make_synthetic(num_examples=100, dim=6, seed=12)
    for key in ("x", "y1", "y2"):
        np.testing.assert_array_equal(a.data[key], b.data[key])
        assert not np.array_equal(a.data[key], c.data[key])
    np.testing.assert_array_equal(a.alpha, b.alpha)
    assert not np.array_equal(a.alpha, c.alpha)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"correlation": 1.01}, "correlation"),
        ({"correlation": -1.5}, "correlation"),
        ({"dim": 1}, "dim"),
        ({"num_examples": 0}, "num_examples"),
        ({"scale": 0.0}, "scale"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"num_sin": -1}, "num_sin"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_synthetic(**kwargs)
