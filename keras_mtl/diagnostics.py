"""Model diagnostics: which experts each task uses; a pCVR against the known truth."""

from __future__ import annotations

import keras
import numpy as np

from keras_mtl.layers import MixtureOfExperts


def gate_weights(model: keras.Model, data, batch_size: int = 1024) -> dict:
    """Mean softmax weight of each gate over `data`, per mixture-of-experts layer.

    Args:
        model: a model built with mixture-of-experts layers (`build_mmoe`,
            `build_omoe`).
        data: what `model.predict` accepts: a dict of arrays or a `tf.data` dataset
            (labels, if any, are ignored).
        batch_size: batch size for arrays.

    Returns:
        `{layer_name: {gate_name: np.ndarray of shape (num_experts,)}}`; the gates
        of MMoE are named after the tasks, the single OMoE gate "shared". Each
        vector sums to 1.
    """
    layers = [layer for layer in model.layers if isinstance(layer, MixtureOfExperts)]
    if not layers:
        raise ValueError(f"Model {model.name!r} has no MixtureOfExperts layer.")
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    moe_inputs = probe.predict(data, batch_size=batch_size, verbose=0)
    if len(layers) == 1:
        moe_inputs = [moe_inputs]
    result = {}
    for layer, x in zip(layers, moe_inputs):
        mean = np.asarray(keras.ops.mean(layer.gate_weights(x), axis=0))
        result[layer.name] = dict(zip(layer.gate_names, mean))
    return result


def cvr_against_truth(
    predicted_cvr, true_cvr, seed: int | None = 0
) -> dict[str, float]:
    """How well a pCVR matches the true P(conversion | click, x) on given impressions.

    Meant for simulated data (`keras_mtl.data.make_funnel`), where the truth is
    known for every impression, clicked or not, so a CVR model can be judged on
    the whole impression space it is served on.

    Args:
        predicted_cvr: array `(N,)` of predicted P(conversion | click).
        true_cvr: array `(N,)` of the true probabilities.
        seed: int or None. Seed of the counterfactual outcomes. Defaults to 0.

    Returns:
        A dict with:
        - `"spearman"`: rank correlation between prediction and truth.
        - `"auc"`: AUC of the prediction against counterfactual outcomes
          z ~ Bernoulli(true_cvr) drawn for every impression ("would it convert
          if clicked?").
        - `"oracle_auc"`: the same AUC for the truth itself (the ceiling).
        - `"mean_predicted"`, `"mean_true"` and `"calibration"` (their ratio; 1
          is calibrated on average).
    """
    predicted = np.asarray(predicted_cvr, dtype=np.float64).reshape(-1)
    truth = np.asarray(true_cvr, dtype=np.float64).reshape(-1)
    if predicted.shape != truth.shape or predicted.size < 2:
        raise ValueError(
            "cvr_against_truth: need two arrays of one length >= 2; got shapes "
            f"{np.shape(predicted_cvr)} and {np.shape(true_cvr)}."
        )
    outcome = np.random.default_rng(seed).random(truth.size) < truth
    return {
        "spearman": float(np.corrcoef(_ranks(predicted), _ranks(truth))[0, 1]),
        "auc": _auc(outcome, predicted),
        "oracle_auc": _auc(outcome, truth),
        "mean_predicted": float(predicted.mean()),
        "mean_true": float(truth.mean()),
        "calibration": float(predicted.mean() / truth.mean()),
    }


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), 1-based."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], values.size]
    ranks = np.empty(values.size)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half."""
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    rank_sum = _ranks(scores)[labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))
