"""Fit the weights of a `RankingScore` on logged outcomes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from keras_mtl._checks import check_positive_int
from keras_mtl.serving.signatures import RankingScore

#: Predictions are clipped to at least this before a logarithm ("product",
#: "log"): a sigmoid output can round to 0 in float32.
_TINY = 1e-7


def fit_ranking_score(
    score: RankingScore,
    predictions: Mapping,
    target,
    groups=None,
    *,
    non_negative: bool = True,
    steps: int = 300,
    list_size: int = 32,
    lists_per_step: int = 16,
    learning_rate: float = 0.1,
    seed: int | None = 0,
) -> RankingScore:
    """Fit the weights of `score`'s formula so that it ranks by `target`.

    `score` gives the formula (its `combine`, `transforms` and the tasks it
    weights) and the starting weights (e.g. the hand-set ones, or all 1); the
    fit keeps the formula and returns it with new weights, ready for
    `export_saved_model(..., ranking_score=...)`. The rows are held-out
    impressions: the model's predictions and the outcome logged for each, e.g.
    `value = click + beta * conversion` (what an impression was worth) or a
    dwell time.

    The objective is keras-rs's pairwise squared loss
    (`keras_rs.losses.PairwiseMeanSquaredError`) on lists of rows of one group
    (a request, user or query: only the order within a group is served): the
    score differences of two rows fit their target differences,
    `(s_i - s_j - (y_i - y_j))^2`. Its minimiser ranks by the *expected*
    target: the expected target difference is `E[y_i] - E[y_j]`, so when the
    formula can express `E[target]` (`E[click + 10 conversion] = ctr + 10
    ctcvr`), the fitted weights are those, and otherwise the closest ones in
    the least-squares sense ("product": `c * prod_k output_k ^ a_k` fits them,
    with a free factor `c`). Losses that see only which row won, such as the
    pairwise logistic loss or ListMLE, cannot tell a click from a purchase
    worth ten clicks (docs/serving.md has a measurement).
    Each of `steps` Adam steps (learning rate cosine-decayed to 0) takes
    `lists_per_step` lists of `list_size` rows; the features `f_k(output_k)`
    (`log output_k` for "product") and the target are divided by their
    standard deviations while fitting, so that a small probability (a CTCVR
    of 0.01) fits as fast as a large one.

    The fitted weights have a scale: a "sum" score's weights are in the
    target's units (the score estimates the expected target up to a constant
    per group: `1.0*ctr + 10*ctcvr` for a click worth 1 and a purchase worth
    10), a "product" score's are its exponents (a free factor in front, which
    no ranking sees, is fitted and dropped). They are rounded to 4 significant
    digits and meant to be read and edited: `score.formula` is the text,
    `RankingScore.from_formula` reads it back, and `score.to_json()` /
    `RankingScore.from_json` round-trip the record an export keeps.

    Args:
        score: `RankingScore`. The formula to fit and its starting weights
            (only their ratios matter).
        predictions: dict of task name to array. The model's outputs on the
            held-out rows, one value per row (shape `(N,)` or `(N, 1)`), e.g.
            `model.predict(x)`; it must hold every task `score` weights.
        target: array of `N` finite numbers. The logged outcome per row: the
            higher, the better the row should rank.
        groups: array of `N` ids, or None. The group (request, user, query)
            of each row: rows are compared within a group only, and every
            group needs at least two rows. None compares all rows with each
            other (one group). Defaults to None.
        non_negative: bool. Keep every weight >= 0 (more of any output never
            ranks lower). Defaults to True.
        steps: int. Optimizer steps. Defaults to 300.
        list_size: int. Rows per list: a group of at most `list_size` rows is
            one list, a larger one gives lists of `list_size` rows drawn from
            it. Defaults to 32.
        lists_per_step: int. Lists in each step's batch. Defaults to 16.
        learning_rate: float. Adam's initial learning rate. Defaults to 0.1.
        seed: int or None. Seed of the list draws (the fit itself draws
            nothing). Defaults to 0.

    Returns:
        A `RankingScore` with `score`'s formula and the fitted weights.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> ctr = rng.uniform(0.05, 0.3, 500)
    >>> ctcvr = ctr * rng.uniform(0.01, 0.2, 500)
    >>> value = ctr + 10 * ctcvr  # e.g. a click is worth 1, a purchase 10
    >>> equal = km.serving.RankingScore({"ctr": 1, "ctcvr": 1}, "sum")
    >>> fitted = km.fit_ranking_score(
    ...     equal, {"ctr": ctr, "ctcvr": ctcvr}, value, steps=100
    ... )
    >>> {task: round(weight) for task, weight in fitted.weights.items()}
    {'ctr': 1, 'ctcvr': 10}
    >>> km.serving.RankingScore.from_formula(fitted.formula) == fitted
    True
    """
    import keras
    import keras_rs

    if not isinstance(score, RankingScore):
        raise ValueError(
            f"fit_ranking_score: score must be a RankingScore (the formula to "
            f"fit); got {score!r}."
        )
    for name, value in [
        ("steps", steps),
        ("list_size", list_size),
        ("lists_per_step", lists_per_step),
    ]:
        check_positive_int("fit_ranking_score", name, value)
    if list_size < 2:
        raise ValueError(
            f"fit_ranking_score: list_size must be at least 2; got {list_size}."
        )
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ValueError(
            "fit_ranking_score: learning_rate must be a positive number; got "
            f"{learning_rate!r}."
        )
    features = _features(score, predictions)
    rows = len(features)
    target = _column("target", target, rows, numeric=True)
    starts, sizes, order = _groups(groups, rows)
    if not _any_pair_differs(target[order], starts, sizes):
        raise ValueError(
            "fit_ranking_score: no two rows of a group have different targets; "
            "a ranking cannot be learnt from ties alone."
        )

    rng = np.random.default_rng(seed)
    lists, valid = _lists(rng, starts, sizes, steps * lists_per_step, list_size)
    lists = order[lists]

    # Standardised features and target: the fit sees f_k / std_k and y / std_y
    # with weights v_k; the score's weight is w_k = v_k std_y / std_k ("sum":
    # in the target's units) or v_k / std_k ("product": the exponent).
    product = score.combine == "product"
    scale = features.std(axis=0)
    scale[~(scale > 0)] = 1.0  # (a constant output cannot change the order)
    x = (features - (features.mean(axis=0) if product else 0.0)) / scale
    unit = max(float(target.std()), 1e-12)
    y = (target - target.min()) / unit  # (>= 0: keras-rs ignores labels < 0)
    start = np.array([score.weights[k] for k in score.weights]) * scale
    if non_negative and (start < 0).any():
        raise ValueError(
            f"fit_ranking_score: score has negative weights {score.weights} but "
            "non_negative=True; start from non-negative weights or pass "
            "non_negative=False."
        )
    # From the least-squares multiple of the starting score (its ratios).
    rows = lists[:, :2][valid[:, 1]]
    spread = _scores(x[rows[:, 0]], start, product) - _scores(
        x[rows[:, 1]], start, product
    )
    gain = float(spread @ (y[rows[:, 0]] - y[rows[:, 1]]))
    gain = max(gain / max(float(spread @ spread), 1e-12), 1e-3)

    inputs = keras.Input((list_size, len(score.weights)), name="list_features")
    # "sum": s = x v; "product": s = exp(x v + b) = c prod_k output_k^(v_k / std_k),
    # with a free scale c = exp(b) that the ranking ignores.
    dense = keras.layers.Dense(
        1,
        activation="exponential" if product else None,
        use_bias=product,
        kernel_constraint=keras.constraints.NonNeg() if non_negative else None,
        name="fusion_weights",
    )
    logits = keras.layers.Reshape((list_size,), name="list_scores")(dense(inputs))
    model = keras.Model(inputs, logits, name="ranking_score_fit")
    if product:
        dense.set_weights([start.reshape(-1, 1), np.log([gain])])
    else:
        dense.set_weights([(start * gain).reshape(-1, 1)])
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras_rs.losses.PairwiseMeanSquaredError(),
    )
    # Padding: features 0, label -1 (keras-rs forms no pair with a label < 0).
    model.fit(
        np.where(valid[..., None], x[lists], 0.0).astype("float32"),
        np.where(valid, y[lists], -1.0).astype("float32"),
        batch_size=lists_per_step,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    fitted = np.asarray(dense.get_weights()[0])[:, 0] / scale
    if not product:
        fitted = fitted * unit
    if not np.abs(fitted).sum() > 0:
        raise ValueError(
            f"fit_ranking_score: every weight of {list(score.weights)} fitted to "
            "0: with non_negative=True, none of the outputs ranks higher rows "
            "higher; check the target's direction or pass non_negative=False."
        )
    weights = {k: _significant(w) for k, w in zip(score.weights, fitted.tolist())}
    return RankingScore(weights, score.combine, score.transforms)


def _scores(x: np.ndarray, weights: np.ndarray, product: bool) -> np.ndarray:
    """The fit's score of standardised features `x` (no scale factor)."""
    return np.exp(x @ weights) if product else x @ weights


def _significant(value: float, digits: int = 4) -> float:
    """`value` rounded to `digits` significant digits (what `formula` prints)."""
    return float(f"{value:.{digits}g}") + 0.0  # (no -0.0)


def _column(name: str, values, rows: int | None, numeric: bool) -> np.ndarray:
    """`values` as a 1-D array (an `(N, 1)` column flattened), checked."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"fit_ranking_score: {name} must be one value per row, shape (N,) or "
            f"(N, 1); got shape {array.shape}."
        )
    if rows is not None and len(array) != rows:
        raise ValueError(
            f"fit_ranking_score: {name} has {len(array)} rows, the predictions "
            f"{rows}; give one value per held-out row."
        )
    if numeric:
        if array.dtype.kind not in "biuf":
            raise ValueError(
                f"fit_ranking_score: {name} must be numbers; got dtype {array.dtype}."
            )
        array = array.astype("float64")
        bad = np.flatnonzero(~np.isfinite(array))
        if len(bad):
            raise ValueError(
                f"fit_ranking_score: {name} has {len(bad)} NaN or infinite "
                f"values (rows {bad[:5].tolist()}...); drop those rows."
            )
    return array


def _features(score: RankingScore, predictions) -> np.ndarray:
    """`(N, K)` float64: `f_k(output_k)` of each weighted task ("sum"), or
    `log output_k` ("product"), in `score.weights` order."""
    if not isinstance(predictions, Mapping):
        raise ValueError(
            "fit_ranking_score: predictions must be a dict of task name to array "
            f"(e.g. model.predict(x)); got {type(predictions).__name__}."
        )
    unknown = [k for k in score.weights if k not in predictions]
    if unknown:
        raise ValueError(
            f"fit_ranking_score: score weights {unknown}, which are not in "
            f"predictions; predictions has {sorted(predictions)}."
        )
    columns, rows = [], None
    for task in score.weights:
        column = _column(f"predictions[{task!r}]", predictions[task], rows, True)
        rows = len(column)
        transform = score.transforms.get(task, "identity")
        if score.combine == "product" or transform == "log":
            if (column < 0).any():
                raise ValueError(
                    f"fit_ranking_score: predictions[{task!r}] has negative "
                    "values; its logarithm is taken (combine='product' or "
                    "transform 'log')."
                )
            column = np.log(np.maximum(column, _TINY))
        elif transform == "log1p":
            if (column <= -1).any():
                raise ValueError(
                    f"fit_ranking_score: predictions[{task!r}] has values <= -1; "
                    "transform 'log1p' needs values > -1."
                )
            column = np.log1p(column)
        columns.append(column)
    if rows < 2:
        raise ValueError(
            f"fit_ranking_score: {rows} rows; a ranking needs at least two."
        )
    return np.stack(columns, axis=1)


def _groups(groups, rows: int):
    """`(starts, sizes, order)`: the rows sorted by group (`order`), and each
    group's first position and size in that order."""
    if groups is None:
        return np.array([0]), np.array([rows]), np.arange(rows)
    ids = _column("groups", groups, rows, numeric=False)
    try:
        unique, inverse, counts = np.unique(
            ids, return_inverse=True, return_counts=True
        )
    except TypeError as error:
        raise ValueError(
            f"fit_ranking_score: groups must be comparable ids; {error}."
        ) from None
    if (counts < 2).any():
        alone = unique[counts < 2]
        raise ValueError(
            f"fit_ranking_score: {len(alone)} groups have one row (e.g. "
            f"{alone[:3].tolist()}); a ranking needs at least two rows per group: "
            "drop single-row groups or pass groups=None."
        )
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return starts, counts, order


def _lists(rng, starts, sizes, count: int, list_size: int):
    """`(positions, valid)`, both `(count, list_size)`: lists of rows of one
    group, as positions in the group-sorted order. A group of at most
    `list_size` rows gives all its rows, shuffled (then padding, `valid`
    False); a larger one `list_size` rows drawn with replacement (a repeated
    row forms a pair of equal score and target: no loss). Groups are drawn so
    that every pair of rows of a group is equally likely to be compared."""
    rows = np.minimum(sizes, list_size)
    pairs = sizes * (sizes - 1.0) / (rows * (rows - 1.0))
    group = rng.choice(len(sizes), count, p=pairs / pairs.sum())
    column = np.arange(list_size)
    keys = rng.random((count, list_size))
    keys[column >= sizes[group][:, None]] = np.inf
    shuffled = np.argsort(keys, axis=1)  # (a permutation of the group's rows)
    drawn = rng.integers(0, sizes[group][:, None], (count, list_size))
    big = (sizes[group] > list_size)[:, None]
    offsets = np.where(big, drawn, shuffled)
    valid = column < rows[group][:, None]
    return starts[group][:, None] + np.where(valid, offsets, 0), valid


def _any_pair_differs(target, starts, sizes) -> bool:
    """Some group's targets are not all equal."""
    low = np.minimum.reduceat(target, starts)
    high = np.maximum.reduceat(target, starts)
    return bool((high > low).any())
