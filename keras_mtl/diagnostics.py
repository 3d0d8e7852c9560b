"""Model diagnostics: which experts each task uses, which sub-network
connections are open, which features each task selects, how MRN relates the
tasks; how related the tasks' labels are; a pCVR against the known truth; scores
per domain."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd

from keras_mtl.data._rules import labelled_rows
from keras_mtl.data._validate import validate_in_memory
from keras_mtl.layers import (
    CustomizedGateControl,
    FeatureSelection,
    MixtureOfExperts,
    SubNetworkRouting,
    TensorNormalDense,
)
from keras_mtl.tasks import Task, check_tasks

_GATED = (MixtureOfExperts, CustomizedGateControl)


def _mean_gates(layer, x) -> pd.DataFrame:
    """Mean weight of every gate of `layer` on the inputs `x`, experts x gates."""
    gates = layer.gate_weights(x)
    if isinstance(layer, MixtureOfExperts):
        means = keras.ops.convert_to_numpy(
            keras.ops.mean(gates, axis=0)
        ).T  # (experts, gates)
        return pd.DataFrame(means, index=layer.expert_names, columns=layer.gate_names)
    # A CGC task gate sees its own and the shared experts only: the others get 0.
    experts = layer.expert_names
    table = pd.DataFrame(0.0, index=experts, columns=list(layer.gate_names))
    own, shared = layer.num_task_experts, layer.num_shared_experts
    for k in range(layer.num_tasks):
        mean = keras.ops.convert_to_numpy(keras.ops.mean(gates[k], axis=0))
        table.iloc[k * own : (k + 1) * own, k] = mean[:own]
        table.iloc[len(experts) - shared :, k] = mean[own:]
    if layer.output_shared:
        table["shared"] = keras.ops.convert_to_numpy(keras.ops.mean(gates[-1], axis=0))
    return table


def _layer_inputs(model: keras.Model, layers: list, data, batch_size: int) -> list:
    """What each of `layers` (of `model`) receives over `data`, one array per
    layer, from one probe model predicting them all."""
    from keras_mtl.models.multi_task_model import MultiTaskModel

    # A MultiTaskModel probe looks string inputs up on the host as `model`
    # does (JAX and torch tensors hold no strings).
    probe_cls = MultiTaskModel if isinstance(model, MultiTaskModel) else keras.Model
    probe = probe_cls(model.inputs, [layer.input for layer in layers])
    inputs = probe.predict(data, batch_size=batch_size, verbose=0)
    return [inputs] if len(layers) == 1 else list(inputs)


def gate_weights(model: keras.Model, data, batch_size: int = 1024) -> dict:
    """Mean softmax weight each gate gives each expert over `data`, per gated layer.

    Works for every model with `MixtureOfExperts` (MMoE, OMoE) or
    `CustomizedGateControl` (CGC, and each level of PLE) layers.

    Args:
        model: the model.
        data: what `model.predict` accepts: a dict of arrays or a `tf.data` dataset
            (labels, if any, are ignored).
        batch_size: batch size for arrays.

    Returns:
        `{layer_name: pandas.DataFrame}` in model order, one row per expert and
        one column per gate, so `result[layer][gate]` is that gate's mean weight
        per expert and sums to 1. MMoE gates are named after the tasks, the OMoE
        gate "shared"; a CGC/PLE level has one gate per task (0 on other tasks'
        experts, which it cannot select) plus, below the last PLE level, the
        "shared" gate over every expert. `plot_gate_weights` draws it.

    Example:
    >>> x = keras.Input((5,), name="x")
    >>> moe = km.layers.MixtureOfExperts(2, (4,), gate_names=("ctr", "cvr"),
    ...                                  name="moe")
    >>> ctr_in, cvr_in = moe(x)
    >>> model = keras.Model(x, {"ctr": km.layers.TaskTower(name="ctr")(ctr_in),
    ...                         "cvr": km.layers.TaskTower(name="cvr")(cvr_in)})
    >>> weights = gate_weights(model, {"x": np.zeros((4, 5), "float32")})
    >>> weights["moe"]  # a zero input scores both experts alike
              ctr  cvr
    expert_0  0.5  0.5
    expert_1  0.5  0.5
    """
    layers = [layer for layer in model.layers if isinstance(layer, _GATED)]
    if not layers:
        raise ValueError(
            f"Model {model.name!r} has no MixtureOfExperts or CustomizedGateControl "
            "layer, so it has no gates."
        )
    gate_inputs = _layer_inputs(model, layers, data, batch_size)
    return {layer.name: _mean_gates(layer, x) for layer, x in zip(layers, gate_inputs)}


def routing_weights(model: keras.Model) -> dict:
    """The coding variables of every `SubNetworkRouting` layer (SNR), at inference.

    Args:
        model: a model with `SubNetworkRouting` layers (from `build_snr`).

    Returns:
        `{layer_name: pandas.DataFrame}` in model order, one row per lower
        sub-network (`level_<l>_<i>`) and one column per upper one
        (`level_<l+1>_<j>`, or the task for the last routing), holding `z` in
        [0, 1]; 0 is a closed connection (exactly 0: the hard-concrete gate is
        clipped), which a served model need not compute.
    """
    layers = [layer for layer in model.layers if isinstance(layer, SubNetworkRouting)]
    if not layers:
        raise ValueError(
            f"Model {model.name!r} has no SubNetworkRouting layer (build_snr's)."
        )
    tasks = [t.name for t in getattr(model, "tasks", None) or ()]
    tables = {}
    for level, layer in enumerate(layers, start=1):
        z = layer.gate_values()
        rows = [f"level_{level}_{i}" for i in range(z.shape[0])]
        columns = [f"level_{level + 1}_{j}" for j in range(z.shape[1])]
        if layer is layers[-1] and len(tasks) == z.shape[1]:
            columns = tasks
        tables[layer.name] = pd.DataFrame(z, index=rows, columns=columns)
    return tables


def prior_task_correlation(
    model: keras.Model, layer: str | None = None
) -> pd.DataFrame:
    """The task correlation a `TensorNormalDense` layer (MRN) has learned.

    Args:
        model: a model with `TensorNormalDense` layers (from `build_mrn`).
        layer: str or None. The name of the layer to read. Defaults to None:
            the last one (the top task layer, next to the towers).

    Returns:
        A `pandas.DataFrame`, one row and one column per task (named after the
        model's tasks, `task_<k>` without them): the layer's task covariance
        `Σ_task` scaled to a correlation, `Σ[k, l] / sqrt(Σ[k, k] Σ[l, l])`.
        Until a training step it is the identity (the prior's start).

    Example:
    >>> x = keras.Input((3,), name="x")
    >>> a, b = km.layers.TensorNormalDense(2, 4, name="tasks")(x)
    >>> prior_task_correlation(keras.Model(x, [a, b]))
            task_0  task_1
    task_0     1.0     0.0
    task_1     0.0     1.0
    """
    layers = [found for found in model.layers if isinstance(found, TensorNormalDense)]
    if not layers:
        raise ValueError(
            f"Model {model.name!r} has no TensorNormalDense layer (build_mrn's)."
        )
    if layer is not None:
        named = [found for found in layers if found.name == layer]
        if not named:
            raise ValueError(
                f"prior_task_correlation: layer={layer!r} is not a TensorNormalDense "
                f"layer of model {model.name!r}; those are "
                f"{[found.name for found in layers]}."
            )
        layers = named
    chosen = layers[-1]
    tasks = [t.name for t in getattr(model, "tasks", None) or ()]
    if len(tasks) != chosen.num_tasks:
        tasks = [f"task_{k}" for k in range(chosen.num_tasks)]
    return pd.DataFrame(chosen.task_correlation(), index=tasks, columns=tasks)


#: The task types `task_correlation` compares: one number per row.
_SCALAR_TASK_TYPES = ("binary", "regression")


def task_correlation(data, tasks) -> pd.DataFrame:
    """How related the tasks' labels are: Pearson's and Spearman's correlation.

    Each pair of tasks is compared on the rows where both have a label, by the
    rules `make_dataset` masks the losses and metrics with: NaN, the task's
    `missing_value`, and for a task with `given` the rows where that event is
    not 1. The labels are checked as `make_dataset` checks them (a binary label
    other than 0/1, a conversion without a click, ... is an error).

    Pearson's r is the linear correlation of the two labels (of two binary
    tasks, the phi coefficient); Spearman's rho is Pearson's r of their ranks
    (tied values get their mean rank), which sees any monotone relation. A
    correlation is NaN where it is undefined: fewer than two common rows, or a
    label constant on them (e.g. a `given="click"` task against the click
    itself, which is 1 wherever the other is labelled).

    Label correlation is a proxy for how much two tasks gain from sharing, not
    a measure of it (see "How related are the tasks?" in the README).

    Args:
        data: pandas DataFrame or dict of arrays. In-memory data as
            `make_dataset` takes it; only the tasks' label, `given` and
            `requires` columns are read.
        tasks: list of `Task` (or their config dicts), at least two. Binary and
            regression tasks only: a multiclass or ranking label is not one
            number per row, so it has no such correlation (leave it out).

    Returns:
        A `pandas.DataFrame` with one row per task and three groups of columns
        (a column `MultiIndex`): `table["pearson"]` and `table["spearman"]` are
        the symmetric task x task correlations, and `table["rows"]` the number
        of rows each pair was computed on (on the diagonal, the task's labelled
        rows).

    Raises:
        ValueError: fewer than two tasks; a multiclass or ranking task; a task
            with no labelled row; a missing column or an invalid label (the
            message names the task).
        TypeError: `tasks` holds something other than a `Task` or its config.

    Example:
    >>> data = {"click": [1, 1, 0, 1, 0, 1, 0, 0],
    ...         "conversion": [1, 0, 0, 1, 0, 0, 0, 0],
    ...         "dwell": [30.0, 5.0, 2.0, np.nan, 1.0, 12.0, 3.0, 0.0]}
    >>> tasks = [km.Task("ctr", label="click"),
    ...          km.Task("cvr", label="conversion", given="click"),
    ...          km.Task("dwell", "regression")]
    >>> table = km.task_correlation(data, tasks)
    >>> table["rows"]  # cvr: the 4 clicked rows; dwell: all but the NaN
           ctr  cvr  dwell
    ctr      8    4      7
    cvr      4    4      3
    dwell    7    3      7
    >>> table["pearson"].round(3)  # ctr is 1 on every row cvr labels: NaN
            ctr    cvr  dwell
    ctr    1.00    NaN  0.710
    cvr     NaN  1.000  0.962
    dwell  0.71  0.962  1.000
    """
    for task in tasks if isinstance(tasks, (list, tuple)) else ():
        if not isinstance(task, (Task, dict)):
            raise TypeError(
                "task_correlation: tasks must be Task objects (or their config "
                f"dicts), e.g. Task({task!r}, 'regression'); got {task!r}."
            )
    tasks = check_tasks(tasks)
    if len(tasks) < 2:
        raise ValueError(
            "task_correlation: at least two tasks are needed to relate them; got "
            f"{[t.name for t in tasks]}."
        )
    for task in tasks:
        if task.type not in _SCALAR_TASK_TYPES:
            raise ValueError(
                f"task_correlation: Task {task.name!r} is a {task.type} task: its "
                "label is not one number per row, so it has no Pearson or "
                "Spearman correlation with another label. Leave it out of tasks "
                f"(only {' and '.join(_SCALAR_TASK_TYPES)} tasks are compared)."
            )
    columns = validate_in_memory(data, [], tasks)
    labels, known = {}, {}
    for task in tasks:
        values = columns.labels[task.name]
        known[task.name] = labelled_rows(task, values)
        if not known[task.name].any():
            masked = " or masked by its given column" if task.given else ""
            raise ValueError(
                f"task_correlation: Task {task.name!r} (label column "
                f"{task.label_column!r}) has no label in any of the "
                f"{columns.num_rows} rows (every one is missing{masked}), so "
                "it cannot be related to the others."
            )
        labels[task.name] = values.astype(np.float64)

    names = [task.name for task in tasks]
    pearson = pd.DataFrame(np.nan, index=names, columns=names)
    spearman = pearson.copy()
    rows = pd.DataFrame(0, index=names, columns=names)
    for i, first in enumerate(names):
        for second in names[i:]:
            both = known[first] & known[second]
            x, y = labels[first][both], labels[second][both]
            r = _pearson(x, y)
            rho = _pearson(_ranks(x), _ranks(y)) if x.size else float("nan")
            for a, b in ((first, second), (second, first)):
                pearson.loc[a, b], spearman.loc[a, b] = r, rho
                rows.loc[a, b] = int(both.sum())
    return pd.concat({"pearson": pearson, "spearman": spearman, "rows": rows}, axis=1)


def plot_gate_weights(weights: dict, title: str | None = None):
    """Heatmaps of `gate_weights(...)`: one panel per layer, gates x experts.

    Args:
        weights: the dict returned by `gate_weights`.
        title: figure title. Defaults to none.

    Returns:
        The matplotlib `Figure` (needs `pip install matplotlib`).

    Example:
    >>> import pandas as pd
    >>> table = pd.DataFrame({"ctr": [0.7, 0.3], "cvr": [0.2, 0.8]},
    ...                      index=["expert_0", "expert_1"])
    >>> fig = plot_gate_weights({"moe": table}, title="MMoE gates")
    >>> [ax.get_title() for ax in fig.axes][:1]  # the panel, then the colour bar
    ['moe']
    >>> import matplotlib.pyplot as plt
    >>> plt.close(fig)
    """
    return _heatmaps(
        "plot_gate_weights", weights, title, "expert", "gate", "mean gate weight"
    )


def _heatmaps(owner, weights, title, xlabel, ylabel, label, vmax=1.0):
    """One heatmap per table of `weights` (its index along x, its columns as
    rows), values written in the cells, one colour bar from 0 to `vmax`."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"{owner} needs matplotlib: pip install matplotlib") from e
    panels = list(weights.items())
    widths = [max(len(table.index), 2) for _, table in panels]
    height = max(len(table.columns) for _, table in panels)
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(0.7 * sum(widths) + 2.0 * len(panels), 0.55 * height + 1.8),
        gridspec_kw={"width_ratios": widths, "wspace": 0.45},  # room for y labels
        squeeze=False,
    )
    for ax, (name, table) in zip(axes[0], panels):
        values = table.to_numpy().T  # gates as rows
        image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(table.index)), table.index, rotation=60, ha="right")
        ax.set_yticks(range(len(table.columns)), table.columns)
        for (i, j), value in np.ndenumerate(values):
            ax.text(
                j,
                i,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value < vmax / 2 else "black",
            )
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)  # every panel: its own gates or tasks
    fig.colorbar(image, ax=axes[0].tolist(), label=label, shrink=0.8)
    if title:
        fig.suptitle(title, y=1.04)
    return fig


def feature_weights(model: keras.Model, data, batch_size: int = 1024) -> dict:
    """Mean weight each task (or gate) gives each feature over `data`.

    Works for every model with a `FeatureSelection` layer (the builders'
    `feature_selection=True`: MMoE, OMoE, CGC, PLE, shared-bottom, SNR).

    Args:
        model: the model.
        data: what `model.predict` accepts: a dict of arrays or a `tf.data`
            dataset (labels, if any, are ignored).
        batch_size: batch size for arrays.

    Returns:
        `{layer_name: pandas.DataFrame}` in model order (the builders' layer is
        "feature_selection"), one row per feature and one column per selection
        (the tasks; "shared" for the OMoE gate and the shared experts of
        CGC/PLE): the mean factor the selection multiplies that feature by.
        The weights are non-negative and average 1 over the features for every
        example, so every column averages 1: above 1 a task leans on the
        feature, near 0 it ignores it. `plot_feature_weights` draws it.

    Example:
    >>> select = km.layers.FeatureSelection([2, 1], ("ctr", "cvr"),
    ...                                     field_names=("user", "age"),
    ...                                     name="feature_selection")
    >>> x = keras.Input((3,), name="x")
    >>> ctr_in, cvr_in = select(x)
    >>> model = keras.Model(x, {"ctr": km.layers.TaskTower(name="ctr")(ctr_in),
    ...                         "cvr": km.layers.TaskTower(name="cvr")(cvr_in)})
    >>> _ = select.bias.assign([[np.log(3.0), 0.0], [0.0, 0.0]])
    >>> feature_weights(model, {"x": np.ones((4, 3), "float32")})["feature_selection"]
          ctr  cvr
    user  1.5  1.0
    age   0.5  1.0
    """
    layers = [layer for layer in model.layers if isinstance(layer, FeatureSelection)]
    if not layers:
        raise ValueError(
            f"Model {model.name!r} has no FeatureSelection layer; build it with "
            "feature_selection=True."
        )
    inputs = _layer_inputs(model, layers, data, batch_size)
    tables = {}
    for layer, x in zip(layers, inputs):
        weights = layer.field_weights(x)
        means = keras.ops.convert_to_numpy(keras.ops.mean(weights, axis=0)).T
        tables[layer.name] = pd.DataFrame(
            means, index=list(layer.field_names), columns=list(layer.selection_names)
        )
    return tables


def plot_feature_weights(weights: dict, title: str | None = None):
    """Heatmaps of `feature_weights(...)`: one panel per layer, tasks x features.

    Args:
        weights: the dict returned by `feature_weights`.
        title: figure title. Defaults to none.

    Returns:
        The matplotlib `Figure` (needs `pip install matplotlib`). The colours
        run from 0 to the largest weight (at least 2, twice the average).

    Example:
    >>> import pandas as pd
    >>> table = pd.DataFrame({"ctr": [1.6, 0.4], "cvr": [0.2, 1.8]},
    ...                      index=["user", "age"])
    >>> fig = plot_feature_weights({"feature_selection": table})
    >>> [ax.get_title() for ax in fig.axes][:1]  # the panel, then the colour bar
    ['feature_selection']
    >>> import matplotlib.pyplot as plt
    >>> plt.close(fig)
    """
    top = max([2.0, *(float(t.to_numpy().max()) for t in weights.values())])
    return _heatmaps(
        "plot_feature_weights",
        weights,
        title,
        "feature",
        "task",
        "mean feature weight (average 1)",
        vmax=top,
    )


def cvr_against_truth(
    predicted_cvr, true_cvr, seed: int | None = 0
) -> dict[str, float]:
    """How well a pCVR matches the true P(conversion | click, x) on given impressions.

    Meant for simulated data (`keras_mtl.datasets.make_funnel`), where the truth is
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

    Example:
    >>> truth = np.linspace(0.05, 0.5, 200)
    >>> scores = cvr_against_truth(truth / 2, truth)  # right order, half as high
    >>> round(scores["spearman"], 6), round(scores["calibration"], 6)
    (1.0, 0.5)
    >>> scores["auc"] == scores["oracle_auc"]  # the AUC sees only the order
    True
    """
    # (A tensor of any backend: numpy() refuses a torch one that requires grad.)
    predicted, truth = (
        keras.ops.convert_to_numpy(a) if keras.ops.is_tensor(a) else a
        for a in (predicted_cvr, true_cvr)
    )
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
    truth = np.asarray(truth, dtype=np.float64).reshape(-1)
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


def domain_metrics(labels, predicted, domains, true_probability=None) -> pd.DataFrame:
    """Binary predictions scored separately in each domain (multi-domain CTR).

    A multi-domain model (STAR) is judged per domain: one pooled AUC would mix
    the domains' different base rates and hide a small domain. Log loss is the
    mean binary cross-entropy (predictions clipped to [1e-7, 1 - 1e-7]). With
    the true probabilities `p` of simulated data
    (`keras_mtl.datasets.make_multi_domain`), also the error against them:
    `rmse` = sqrt(mean (q - p)^2) and `kl` = mean KL(Bernoulli(p) ||
    Bernoulli(q)), the expected log loss above the truth's.

    Args:
        labels: array `(N,)` of 0/1 labels.
        predicted: array `(N,)` of predicted probabilities `q`.
        domains: array `(N,)` of domain ids (any sortable values).
        true_probability: array `(N,)` of true probabilities `p`, or None.
            Defaults to None.

    Returns:
        A DataFrame indexed by domain (sorted) with columns `rows`, `click_rate`
        (mean label), `mean_predicted`, `auc` (NaN without both classes) and
        `log_loss`; with `true_probability` also `rmse`, `kl`, `true_auc` and
        `true_log_loss` (the truth's own AUC and log loss: the ceiling).

    Example:
    >>> table = domain_metrics([1, 0, 0, 1], [0.9, 0.2, 0.3, 0.4], ["a", "a", "b", "b"])
    >>> table["auc"].tolist()
    [1.0, 1.0]
    >>> table["rows"].tolist()
    [2, 2]
    """
    columns = [labels, predicted, domains]
    if true_probability is not None:
        columns.append(true_probability)
    columns = [np.asarray(c).reshape(-1) for c in columns]
    if len({c.size for c in columns}) != 1:
        raise ValueError(
            "domain_metrics: labels, predicted, domains (and true_probability) "
            f"need one length; got {[c.size for c in columns]}."
        )
    label = columns[0].astype(np.float64)
    if not np.isin(label, (0.0, 1.0)).all():
        raise ValueError("domain_metrics: labels must be 0 or 1.")
    q = columns[1].astype(np.float64)
    truth = columns[3].astype(np.float64) if true_probability is not None else None

    def log_loss(y, prob):
        prob = np.clip(prob, 1e-7, 1 - 1e-7)
        return float(-np.mean(y * np.log(prob) + (1 - y) * np.log(1 - prob)))

    rows = {}
    for domain in np.unique(columns[2]):
        at = columns[2] == domain
        y, pred = label[at], q[at]
        row = {
            "rows": int(at.sum()),
            "click_rate": float(y.mean()),
            "mean_predicted": float(pred.mean()),
            "auc": _auc(y == 1.0, pred),
            "log_loss": log_loss(y, pred),
        }
        if truth is not None:
            p, qc = truth[at], np.clip(pred, 1e-7, 1 - 1e-7)
            with np.errstate(divide="ignore", invalid="ignore"):
                kl = np.where(p > 0, p * np.log(p / qc), 0.0) + np.where(
                    p < 1, (1 - p) * np.log((1 - p) / (1 - qc)), 0.0
                )
            row["rmse"] = float(np.sqrt(np.mean((pred - p) ** 2)))
            row["kl"] = float(kl.mean())
            row["true_auc"] = _auc(y == 1.0, p)
            row["true_log_loss"] = log_loss(y, p)
        rows[domain.item() if hasattr(domain, "item") else domain] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "domain"
    return table


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


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's correlation of two float arrays; NaN if under two values or constant."""
    if x.size < 2 or x.min() == x.max() or y.min() == y.max():
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    scale = np.sqrt(np.dot(dx, dx) * np.dot(dy, dy))
    return float(np.clip(np.dot(dx, dy) / scale, -1.0, 1.0))
