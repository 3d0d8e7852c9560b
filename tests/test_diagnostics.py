import numpy as np
import pytest

from keras_mtl.diagnostics import _auc, _ranks, cvr_against_truth, domain_metrics


def test_ranks_average_ties():
    np.testing.assert_array_equal(
        _ranks(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1, 3.5, 2]
    )


def test_auc_hand_computed():
    labels = np.array([True, False, True, False])
    # Pairs (pos, neg): (0.8, 0.1) ok, (0.8, 0.4) ok, (0.4, 0.1) ok, (0.4, 0.4) tie.
    assert _auc(labels, np.array([0.8, 0.1, 0.4, 0.4])) == pytest.approx(3.5 / 4)
    assert np.isnan(_auc(np.array([True, True]), np.array([0.1, 0.2])))


def test_cvr_against_truth():
    truth = np.linspace(0.01, 0.5, 20_000)
    perfect = cvr_against_truth(2 * truth, truth)  # right order, twice too high
    assert perfect["spearman"] == pytest.approx(1.0)
    assert perfect["auc"] == pytest.approx(perfect["oracle_auc"])
    assert perfect["calibration"] == pytest.approx(2.0)
    assert perfect["mean_true"] == pytest.approx(truth.mean())
    reversed_ = cvr_against_truth(truth[::-1], truth)
    assert reversed_["spearman"] == pytest.approx(-1.0)
    assert reversed_["auc"] == pytest.approx(1 - perfect["auc"], abs=1e-9)
    assert 0.6 < perfect["oracle_auc"] < 0.8  # Bernoulli noise caps the AUC
    with pytest.raises(ValueError, match="one length"):
        cvr_against_truth(truth[:5], truth)


def test_cvr_against_truth_takes_a_models_output_on_any_backend():
    """A layer's output, as the backend gives it (on torch: a tensor that
    requires grad, which numpy() refuses), scores as its values do."""
    import keras

    truth = np.linspace(0.05, 0.5, 40).astype("float32")
    layer = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones")
    predicted = layer(keras.ops.convert_to_tensor(truth[:, None]))
    values = 1 / (1 + np.exp(-truth))  # sigmoid(x * 1 + 0)
    scores = cvr_against_truth(predicted, keras.ops.convert_to_tensor(truth))
    assert scores == pytest.approx(cvr_against_truth(values, truth), rel=1e-6)
    assert scores["spearman"] == pytest.approx(1.0)


def test_domain_metrics_hand_computed():
    domains = np.array([0, 0, 0, 0, 1, 1, 1])
    labels = np.array([1, 0, 1, 0, 1, 0, 0])
    pred = np.array([0.8, 0.3, 0.4, 0.6, 0.5, 0.5, 0.2])
    truth = np.array([0.7, 0.2, 0.5, 0.5, 0.6, 0.4, 0.1])
    table = domain_metrics(labels, pred, domains, truth)
    assert table.index.tolist() == [0, 1]
    assert table["rows"].tolist() == [4, 3]
    assert table["click_rate"].tolist() == pytest.approx([0.5, 1 / 3])
    assert table["mean_predicted"].tolist() == pytest.approx([0.525, 0.4])
    # Domain 0: pairs (0.8, 0.3) (0.8, 0.6) (0.4, 0.3) right, (0.4, 0.6) wrong;
    # domain 1: (0.5, 0.5) a tie, (0.5, 0.2) right. The truth: three right and
    # the tie (0.5, 0.5) in domain 0, both right in domain 1.
    assert table["auc"].tolist() == pytest.approx([0.75, 0.75])
    assert table["true_auc"].tolist() == pytest.approx([0.875, 1.0])
    log_loss_0 = -np.log([0.8, 0.7, 0.4, 0.4]).mean()
    assert table.loc[0, "log_loss"] == pytest.approx(log_loss_0)
    assert table.loc[1, "true_log_loss"] == pytest.approx(
        -np.log([0.6, 0.6, 0.9]).mean()
    )
    assert table.loc[0, "rmse"] == pytest.approx(0.1)
    assert table.loc[1, "rmse"] == pytest.approx(np.sqrt((0.01 + 0.01 + 0.01) / 3))
    # KL(p || q) is the expected log loss of q minus that of p (labels ~ p).
    p, q = truth[:4], pred[:4]
    expected = -(p * np.log(q) + (1 - p) * np.log(1 - q))
    expected += p * np.log(p) + (1 - p) * np.log(1 - p)
    assert table.loc[0, "kl"] == pytest.approx(expected.mean())
    # Perfect predictions: no error against the truth; no truth: no such columns.
    assert domain_metrics(labels, truth, domains, truth)["kl"].tolist() == [0, 0]
    plain = domain_metrics(labels, pred, domains)
    assert list(plain.columns) == [
        "rows",
        "click_rate",
        "mean_predicted",
        "auc",
        "log_loss",
    ]
    # One class only: no AUC.
    assert np.isnan(domain_metrics([1, 1], [0.2, 0.3], [5, 5]).loc[5, "auc"])
    with pytest.raises(ValueError, match="need one length"):
        domain_metrics(labels, pred[:3], domains)
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        domain_metrics(labels * 2, pred, domains)


def _uniform_gate_ple():
    """A 2-level PLE whose gate kernels are all zero: every gate is uniform over
    the experts it may select, so the mean weights are known exactly."""
    import keras_mtl as km

    model = km.build_ple(
        [km.DenseFeature("x", dim=3)],
        [km.Task("a"), km.Task("b")],
        num_shared_experts=(1, 3),
        num_task_experts=2,
        compile=False,
    )
    for level in ("level_1", "level_2"):
        for v in model.get_layer(level).weights:
            if "gate" in v.path:
                v.assign(np.zeros(v.shape, "float32"))
    return model, {"x": np.random.default_rng(0).normal(size=(50, 3))}


def test_gate_weights_of_ple_levels():
    from keras_mtl.diagnostics import gate_weights

    model, x = _uniform_gate_ple()
    tables = gate_weights(model, x)
    level_1, level_2 = tables["level_1"], tables["level_2"]
    assert list(level_1.index) == ["a_0", "a_1", "b_0", "b_1", "shared_0"]
    assert list(level_1.columns) == ["a", "b", "shared"]
    # Task a: its 2 experts + 1 shared -> 1/3 each, 0 on b's experts.
    np.testing.assert_allclose(level_1["a"], [1 / 3, 1 / 3, 0, 0, 1 / 3], atol=1e-6)
    np.testing.assert_allclose(level_1["b"], [0, 0, 1 / 3, 1 / 3, 1 / 3], atol=1e-6)
    np.testing.assert_allclose(level_1["shared"], 0.2, atol=1e-6)  # all 5 experts
    # The last level has no shared gate; 2 own + 3 shared experts -> 1/5 each.
    assert list(level_2.columns) == ["a", "b"]
    np.testing.assert_allclose(level_2["b"], [0, 0, 0.2, 0.2, 0.2, 0.2, 0.2], atol=1e-6)


def test_plot_gate_weights_draws_one_heatmap_per_level():
    import matplotlib

    matplotlib.use("Agg")
    from keras_mtl.diagnostics import gate_weights, plot_gate_weights

    model, x = _uniform_gate_ple()
    fig = plot_gate_weights(gate_weights(model, x), title="PLE")
    heatmaps = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.get_title() for ax in heatmaps] == ["level_1", "level_2"]
    first = heatmaps[0]
    assert [t.get_text() for t in first.get_yticklabels()] == ["a", "b", "shared"]
    np.testing.assert_allclose(first.images[0].get_array()[2], 0.2, atol=1e-6)
    assert fig._suptitle.get_text() == "PLE"
    # Each panel has its own rows (level_2 has no shared gate): each is labelled.
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in heatmaps] == [
        ("expert", "gate"),
        ("expert", "gate"),
    ]
