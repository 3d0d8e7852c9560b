"""Fully-adaptive feature sharing: group the tasks by affinity, build the branches.

Lu et al. (CVPR 2017) grow a multi-task network from a thin shared one: tasks
that find the same examples easy or hard stay on one branch, the others split
off, and each extra branch has a price. Here that is four steps:

1. train a thin shared-bottom model briefly on all tasks;
2. `per_example_losses`: each task's loss on each example;
3. `task_affinity`: for each pair of tasks, the probability that an example is
   easy for both or hard for both (easy: a loss below the task's median);
4. `group_tasks`: the grouping with the lowest `grouping_cost` (separation of
   dissimilar tasks in a group plus `complexity` per extra branch),

and `adaptive_branching` runs them and builds `build_branched` on the groups.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator, Mapping, Sequence

import keras
import numpy as np
import pandas as pd

from keras_mtl._checks import (
    check_non_negative,
    check_positive,
    check_positive_int,
    check_units,
)
from keras_mtl.data import make_dataset
from keras_mtl.features import Feature
from keras_mtl.models._common import TOWER_TASK_TYPES, builds, check_builder_tasks
from keras_mtl.models.branched import build_branched, check_branches
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.models.shared_bottom import build_shared_bottom
from keras_mtl.tasks import Task

#: Up to this many tasks `group_tasks` tries every grouping (Bell(8) = 4140);
#: above it, it merges groups greedily.
EXHAUSTIVE_TASKS = 8
#: Probabilities are clipped to [EPSILON, 1 - EPSILON] in the log losses (as in
#: `keras_mtl.losses`).
EPSILON = 1e-7


@dataclasses.dataclass(frozen=True, eq=False)
class AdaptiveBranching:
    """What `adaptive_branching` measured and chose.

    Args:
        affinity: pandas.DataFrame. Task x task affinity (`task_affinity`).
        groups: list of lists of task names. The chosen branches, for
            `build_branched(..., branches=groups)`.
        cost: float. Their `grouping_cost`.
        separation: pandas.Series. For each number of branches d (the index,
            1 to the number of tasks), the lowest separation term found with d
            branches (exact up to `EXHAUSTIVE_TASKS` tasks, along the greedy
            merges above): `separation[d] + complexity · (d − 1) / (T − 1)` is
            the cost of the best grouping into d branches, so it shows which
            `complexity` would choose how many.
        model: the `MultiTaskModel` built by `build_branched` on `groups`, or
            None when `adaptive_branching` was called with `build=False`.
    """

    affinity: pd.DataFrame
    groups: list
    cost: float
    separation: pd.Series
    model: MultiTaskModel | None


def per_example_losses(
    tasks: Sequence[Task], labels: Mapping, predictions: Mapping
) -> pd.DataFrame:
    """Each task's loss on each example, NaN where the example has no label.

    The losses the tasks train with, per example: binary cross-entropy for
    "binary" (probabilities clipped to [1e-7, 1 − 1e-7]), the squared error
    for "regression", the cross-entropy of the label distribution for
    "multiclass". A label that is NaN or the task's `missing_value` (for
    multiclass: any entry of the row) is missing.

    Args:
        tasks: the `Task`s (binary, regression or multiclass).
        labels: dict task name -> labels `(N,)` (`(N, num_classes)` for
            multiclass: a distribution per row, as `make_dataset` gives it).
        predictions: dict task name -> the model's outputs, shaped like them.

    Returns:
        A DataFrame with one column per task (in task order), one row per
        example.

    Example:
    >>> tasks = [Task("click"), Task("spend", "regression", missing_value=-1)]
    >>> per_example_losses(
    ...     tasks,
    ...     {"click": np.array([1.0, 0.0]), "spend": np.array([2.0, -1.0])},
    ...     {"click": np.array([0.5, 0.5]), "spend": np.array([3.0, 0.0])},
    ... ).round(4)
        click  spend
    0  0.6931    1.0
    1  0.6931    NaN
    """
    columns = {}
    for task in tasks:
        if task.type not in TOWER_TASK_TYPES:
            raise ValueError(
                f"per_example_losses: task {task.name!r} has type {task.type!r}; "
                f"supported: {', '.join(TOWER_TASK_TYPES)}."
            )
        for what, values in (("labels", labels), ("predictions", predictions)):
            if task.name not in values:
                raise ValueError(
                    f"per_example_losses: {what} has no entry for task "
                    f"{task.name!r}; it has {sorted(values)}."
                )
        y = np.asarray(labels[task.name], dtype=np.float64)
        p = np.asarray(predictions[task.name], dtype=np.float64)
        if task.type != "multiclass":  # (batch, 1) -> (batch,)
            y, p = (v[:, 0] if v.ndim == 2 and v.shape[1] == 1 else v for v in (y, p))
        if y.shape != p.shape:
            raise ValueError(
                f"per_example_losses: task {task.name!r} has labels of shape "
                f"{y.shape} and predictions of shape {p.shape}; expected the same."
            )
        missing = ~np.isfinite(y)
        if task.missing_value is not None:
            missing |= y == task.missing_value
        if task.type == "multiclass":
            missing = missing.any(axis=-1)
        y = np.where(np.isfinite(y), y, 0.0)
        if task.type == "binary":
            q = np.clip(p, EPSILON, 1.0 - EPSILON)
            loss = -(y * np.log(q) + (1.0 - y) * np.log(1.0 - q))
        elif task.type == "regression":
            loss = np.square(p - y)
        else:
            loss = -np.sum(y * np.log(np.clip(p, EPSILON, 1.0)), axis=-1)
        columns[task.name] = np.where(missing, np.nan, loss)
    return pd.DataFrame(columns)


def task_affinity(losses, easy_quantile: float = 0.5) -> pd.DataFrame:
    """How often two tasks find the same examples easy, or the same hard.

    Example n is easy for task i (`e_i^n = 1`) when its loss is below the
    `easy_quantile` quantile of task i's losses (the median by default, so
    half of a task's examples are easy), hard otherwise. The affinity of tasks
    i and j is Lu et al.'s `P(e_i = e_j) = P(both easy) + P(both hard)`, the
    mean of `e_i^n e_j^n + (1 − e_i^n)(1 − e_j^n)` over the examples labelled
    for both: 1 when they agree on every example, about 0.5 for unrelated
    tasks, 0 when one's easy examples are the other's hard ones.

    Args:
        losses: DataFrame (one column per task, one row per example, NaN
            where the task has no label) or a dict task name -> losses `(N,)`,
            e.g. from `per_example_losses`.
        easy_quantile: float in (0, 1). The quantile of a task's losses below
            which an example is easy. Defaults to 0.5 (the median).

    Returns:
        A symmetric DataFrame, task x task, with 1 on the diagonal.

    Example:
    >>> losses = {"a": [0.1, 0.2, 0.3, 0.4], "b": [1.0, 2.0, 3.0, 4.0],
    ...           "c": [0.4, 0.1, 0.3, 0.2]}
    >>> task_affinity(losses)  # easy: a and b on rows 0, 1; c on rows 1, 3
         a    b    c
    a  1.0  1.0  0.5
    b  1.0  1.0  0.5
    c  0.5  0.5  1.0
    """
    owner = "task_affinity"
    if not isinstance(losses, pd.DataFrame):
        try:
            losses = pd.DataFrame(
                {k: np.asarray(v, dtype=np.float64) for k, v in losses.items()}
            )
        except (AttributeError, TypeError, ValueError) as error:
            raise ValueError(
                f"{owner}: losses must be a DataFrame or a dict of equally long "
                f"1-D arrays, one per task; got {type(losses).__name__} ({error})."
            ) from None
    quantile = float(easy_quantile) if _is_number(easy_quantile) else np.nan
    if not 0.0 < quantile < 1.0:
        raise ValueError(
            f"{owner}: easy_quantile must be a number in (0, 1), got {easy_quantile!r}."
        )
    if losses.shape[1] == 0:
        raise ValueError(f"{owner}: losses has no task (no column).")
    values = losses.to_numpy(dtype=np.float64)
    labelled = np.isfinite(values)
    easy = np.zeros(values.shape, dtype=bool)
    for i, name in enumerate(losses.columns):
        if not labelled[:, i].any():
            raise ValueError(f"{owner}: task {name!r} has no finite loss.")
        column = values[labelled[:, i], i]
        easy[:, i] = values[:, i] < np.quantile(column, quantile)
    names = list(losses.columns)
    affinity = np.eye(len(names))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            both = labelled[:, i] & labelled[:, j]
            if not both.any():
                raise ValueError(
                    f"{owner}: tasks {names[i]!r} and {names[j]!r} share no "
                    "labelled example, so their affinity is undefined."
                )
            agree = float(np.mean(easy[both, i] == easy[both, j]))
            affinity[i, j] = affinity[j, i] = agree
    return pd.DataFrame(affinity, index=names, columns=names)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _distances(owner: str, affinity) -> tuple[list[str], np.ndarray]:
    """Task names and the dissimilarity `1 − affinity` of a checked matrix."""
    if not isinstance(affinity, pd.DataFrame):
        raise ValueError(
            f"{owner}: affinity must be a task x task DataFrame (task_affinity's), "
            f"got {type(affinity).__name__}."
        )
    names = list(affinity.index)
    if list(affinity.columns) != names or len(set(names)) != len(names) or not names:
        raise ValueError(
            f"{owner}: affinity must be square with the same unique task names on "
            f"both axes; got rows {names} and columns {list(affinity.columns)}."
        )
    a = affinity.to_numpy(dtype=np.float64)
    if not np.all((a >= 0.0) & (a <= 1.0)) or not np.allclose(a, a.T, atol=1e-9):
        raise ValueError(
            f"{owner}: affinity must be symmetric with values in [0, 1]; got\n"
            f"{affinity}"
        )
    return names, 1.0 - a


def _separation(distance: np.ndarray, groups: Sequence[Sequence[int]]) -> float:
    """Mean over tasks of the dissimilarity to the least similar group-mate."""
    total = 0.0
    for group in groups:
        if len(group) > 1:
            block = distance[np.ix_(group, group)]
            total += float(block.max(axis=1).sum())  # (the diagonal is 0)
    return total / len(distance)


def _complexity_term(complexity: float, num_groups: int, num_tasks: int) -> float:
    return complexity * (num_groups - 1) / max(num_tasks - 1, 1)


def grouping_cost(affinity: pd.DataFrame, groups, complexity: float = 0.5) -> float:
    """The grouping loss: separation plus `complexity` per extra branch.

    With T tasks in d groups and the dissimilarity `1 − A(i, j)` of the
    affinities, the cost is

        mean_i max_{j in group(i), j != i} (1 − A(i, j))
            + complexity · (d − 1) / (T − 1)

    The separation term (0 for a task alone) charges each task for its least
    similar group-mate, a minimum-affinity linkage like Lu et al.'s affinity
    between branches. The complexity term is their penalty linear in the
    `d − 1` extra branches, scaled so that `complexity` is what splitting every
    task off costs (one group: 0; T groups: `complexity`) whatever T; with two
    tasks they share a branch exactly when `1 − A < complexity`. (The paper's
    own weights, per layer of a convolutional network, do not carry over.)

    Args:
        affinity: task x task DataFrame (`task_affinity`).
        groups: list of lists of task names, every task exactly once.
        complexity: float >= 0. The price of branches. Defaults to 0.5.

    Returns:
        The cost, a float.

    Example:
    >>> a = pd.DataFrame([[1.0, 0.9, 0.5], [0.9, 1.0, 0.4], [0.5, 0.4, 1.0]],
    ...                  index=list("xyz"), columns=list("xyz"))
    >>> round(grouping_cost(a, [["x", "y"], ["z"]], complexity=0.5), 4)
    0.3167
    >>> round(grouping_cost(a, [["x", "y", "z"]]), 4)  # mean of 0.5, 0.6, 0.6
    0.5667
    """
    owner = "grouping_cost"
    names, distance = _distances(owner, affinity)
    complexity = check_non_negative(owner, "complexity", complexity)
    groups = check_branches(owner, groups, names)
    index = {name: i for i, name in enumerate(names)}
    indices = [[index[name] for name in group] for group in groups]
    return _separation(distance, indices) + _complexity_term(
        complexity, len(groups), len(names)
    )


def _set_partitions(n: int) -> Iterator[list[list[int]]]:
    """Every partition of range(n), groups ordered by their first element."""
    groups: list[list[int]] = []

    def extend(i: int):
        if i == n:
            yield [list(g) for g in groups]
            return
        for group in groups:
            group.append(i)
            yield from extend(i + 1)
            group.pop()
        groups.append([i])
        yield from extend(i + 1)
        groups.pop()

    yield from extend(0)


def _best_by_count(distance: np.ndarray) -> dict[int, tuple[float, list]]:
    """Number of groups -> (lowest separation, its grouping) found.

    Exhaustive up to `EXHAUSTIVE_TASKS` tasks. Above, agglomerative: from one
    group per task, repeatedly merge the two groups whose union separates
    least, down to one group; each step gives one grouping per count.
    """
    n = len(distance)
    best: dict[int, tuple[float, list]] = {}
    if n <= EXHAUSTIVE_TASKS:
        for groups in _set_partitions(n):
            cost = _separation(distance, groups)
            d = len(groups)
            if d not in best or cost < best[d][0] - 1e-12:
                best[d] = (cost, groups)
        return best
    groups = [[i] for i in range(n)]
    best[n] = (0.0, [list(g) for g in groups])
    while len(groups) > 1:
        choices = []
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                merged = groups[:a] + groups[a + 1 : b] + groups[b + 1 :]
                merged.append(sorted(groups[a] + groups[b]))
                choices.append((_separation(distance, merged), a, b, merged))
        cost, _, _, groups = min(choices, key=lambda c: (c[0], c[1], c[2]))
        groups = sorted(groups)
        best[len(groups)] = (cost, groups)
    return best


def _choose(names, distance, complexity):
    """(groups as names, cost, separation Series) of the cheapest grouping."""
    best = _best_by_count(distance)
    n = len(names)
    costs = {d: s + _complexity_term(complexity, d, n) for d, (s, _) in best.items()}
    chosen = None
    for d in sorted(costs):  # ties: the fewest branches
        if chosen is None or costs[d] < costs[chosen] - 1e-12:
            chosen = d
    groups = [[names[i] for i in group] for group in best[chosen][1]]
    separation = pd.Series(
        {d: best[d][0] for d in sorted(best)}, name="separation", dtype=float
    )
    separation.index.name = "branches"
    return groups, costs[chosen], separation


def group_tasks(affinity: pd.DataFrame, complexity: float = 0.5) -> list[list[str]]:
    """The grouping of the tasks with the lowest `grouping_cost`.

    Every grouping is tried up to `EXHAUSTIVE_TASKS` (8) tasks; with more,
    groups are merged greedily (from one group per task, always the merge
    that adds the least separation) and the cheapest grouping along the way
    is chosen. Among equal costs, the fewest branches win.

    Args:
        affinity: task x task DataFrame (`task_affinity`).
        complexity: float >= 0. The price of branches (`grouping_cost`):
            0 puts every task alone unless some tasks agree on every example;
            T − 1 or more (T tasks) always gives one group. Defaults to 0.5.

    Returns:
        List of lists of task names: groups ordered by their first task, tasks
        in the order of the affinity's rows.

    Example:
    >>> names = ["ctr", "like", "spend", "stay"]
    >>> a = pd.DataFrame([[1.0, 0.85, 0.5, 0.45], [0.85, 1.0, 0.55, 0.5],
    ...                   [0.5, 0.55, 1.0, 0.8], [0.45, 0.5, 0.8, 1.0]],
    ...                  index=names, columns=names)
    >>> group_tasks(a)
    [['ctr', 'like'], ['spend', 'stay']]
    >>> group_tasks(a, complexity=2.0)
    [['ctr', 'like', 'spend', 'stay']]
    """
    owner = "group_tasks"
    names, distance = _distances(owner, affinity)
    complexity = check_non_negative(owner, "complexity", complexity)
    return _choose(names, distance, complexity)[0]


def _losses_of(model: MultiTaskModel, dataset, tasks: Sequence[Task]):
    """`per_example_losses` of `model` over the `(features, labels)` batches."""
    labels = {task.name: [] for task in tasks}
    predictions = {task.name: [] for task in tasks}
    for x, y in dataset:
        out = model.predict_on_batch(x)
        for task in tasks:
            labels[task.name].append(np.asarray(y[task.name]))
            predictions[task.name].append(np.asarray(out[task.name]))
    return per_example_losses(
        tasks,
        {k: np.concatenate(v) for k, v in labels.items()},
        {k: np.concatenate(v) for k, v in predictions.items()},
    )


@builds(TOWER_TASK_TYPES)
def adaptive_branching(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    data,
    *,
    complexity: float = 0.5,
    epochs: int = 3,
    batch_size: int = 256,
    thin_units: Sequence[int] = (16,),
    learning_rate: float = 0.01,
    easy_quantile: float = 0.5,
    seed: int | None = None,
    build: bool = True,
    **options,
) -> AdaptiveBranching:
    """Group the tasks by affinity on a short shared run; build the branched model.

    Fully-adaptive feature sharing (Lu et al.): a thin model, shared by all
    tasks up to one linear output per task as the paper's thin network
    (`build_shared_bottom` with `hidden_units=thin_units` and
    `tower_units=()`), trains `epochs` epochs on all tasks; its per-example
    losses on `data` give the task affinities (`task_affinity`: how often two
    tasks find the same examples easy, or the same hard), `group_tasks` chooses the grouping with the
    lowest separation plus complexity cost (`grouping_cost`), and
    `build_branched(features, tasks, branches=groups, **options)` builds a
    fresh model on those branches, to train as usual.

    Differences from the paper, which widens a thin convolutional network
    top-down, layer by layer, during training: the branched model here splits
    at one point (above the shared trunk), so the grouping is decided once, for
    the layers under the towers; the affinities are measured once, after the
    short run, on the examples of `data`, rather than averaged over training;
    an example is easy for a task when its loss is below that task's
    `easy_quantile` quantile (the paper thresholds the margin); and the
    branch penalty is normalised by the number of tasks (`grouping_cost`).

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass; each needs a
            loss, so no `metric_only` task).
        data: what `keras_mtl.data.make_dataset` reads (DataFrame, dict of
            arrays, files, blocks) with every feature and label. Used to train
            the thin model and to measure the affinities.
        complexity: float >= 0. The price of branches (`grouping_cost`).
            Defaults to 0.5.
        epochs: int >= 1. Epochs of the thin model's run. Defaults to 3.
        batch_size: int >= 1. Defaults to 256.
        thin_units: widths of the thin model's shared layers (not empty).
            Defaults to (16,).
        learning_rate: float > 0. Adam's learning rate for the thin model.
            Defaults to 0.01.
        easy_quantile: float in (0, 1). See `task_affinity`. Defaults to 0.5.
        seed: int or None. When given, seeds Keras (and NumPy, TensorFlow,
            Python: `keras.utils.set_random_seed`) and the data order, so the
            run is reproducible. Defaults to None.
        build: bool. Build the branched model. Defaults to True.
        **options: keyword arguments of `build_branched` (`shared_units`,
            `branch_units`, `tower_units`, `dropout`, `compile`, `name`, ...);
            not `branches`, which this function chooses.

    Returns:
        An `AdaptiveBranching`: `affinity`, `groups`, `cost`, `separation`
        and `model`.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(64, 4)).astype("float32")
    >>> data = {"x": x, "a": x[:, 0], "b": x[:, 0] + 0.1, "c": x[:, 1]}
    >>> tasks = [Task(t, "regression") for t in "abc"]
    >>> found = adaptive_branching([km.DenseFeature("x", dim=4)], tasks, data,
    ...                            epochs=1, batch_size=64, seed=0,
    ...                            shared_units=(8,), branch_units=(4,))
    >>> found.affinity.shape, sorted(sum(found.groups, []))
    ((3, 3), ['a', 'b', 'c'])
    >>> sorted(found.model.output) == ["a", "b", "c"]
    True

    References:
        Lu, Kumar, Zhai, Cheng, Javidi, Feris, "Fully-adaptive Feature Sharing
        in Multi-Task Networks with Applications in Person Attribute
        Classification", CVPR 2017, arXiv:1611.05377.
    """
    owner = "adaptive_branching"
    tasks = check_builder_tasks(adaptive_branching, tasks)
    for task in tasks:
        if task.metric_only:
            raise ValueError(
                f"{owner}: task {task.name!r} is metric_only: it has no loss, so "
                "its examples are neither easy nor hard for the thin model."
            )
    complexity = check_non_negative(owner, "complexity", complexity)
    epochs = check_positive_int(owner, "epochs", epochs)
    batch_size = check_positive_int(owner, "batch_size", batch_size)
    thin_units = check_units(owner, "thin_units", thin_units, allow_empty=False)
    learning_rate = check_positive(owner, "learning_rate", learning_rate)
    if "branches" in options:
        raise ValueError(
            f"{owner}: branches is what adaptive_branching chooses; pass "
            "build_branched's other options only."
        )
    try:
        inspect.signature(build_branched).bind(features, tasks, **options)
    except TypeError as error:
        raise ValueError(f"{owner}: options are for build_branched: {error}.") from None
    if seed is not None:
        keras.utils.set_random_seed(seed)
    thin = build_shared_bottom(
        features,
        tasks,
        hidden_units=thin_units,
        tower_units=(),
        # No metrics and no XLA: a short run does not repay their tracing.
        compile={
            "learning_rate": learning_rate,
            "metrics": {task.name: [] for task in tasks},
            "jit_compile": False,
        },
        name="thin_shared_bottom",
    )
    train = make_dataset(data, features, tasks, batch_size=batch_size, seed=seed)
    thin.fit(train, epochs=epochs, verbose=0, shuffle=False)  # (shuffled above)
    every = make_dataset(
        data, features, tasks, batch_size=max(batch_size, 1024), shuffle=False
    )
    affinity = task_affinity(_losses_of(thin, every, tasks), easy_quantile)
    names, distance = _distances(owner, affinity)
    groups, cost, separation = _choose(names, distance, complexity)
    model = (
        build_branched(features, tasks, branches=groups, **options) if build else None
    )
    return AdaptiveBranching(affinity, groups, cost, separation, model)
