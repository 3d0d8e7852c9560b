"""The contenders of `dupn_movielens.py`, how each is trained and tested, and
the serving check of the multi-task model.

NOTE: `build_dupn(..., compile=...)` is keras_mtl's current compile API (see
`build`).
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import tempfile
import time

try:  # imported as `benchmarks._dupn_contenders`
    from benchmarks import _harness as h
except ImportError:  # `python benchmarks/dupn_movielens.py`
    import _harness as h

TASKS = ("ctr", "l2r", "genre")
EMBEDDING_LAYERS = (
    "item_embedding",
    "property_embedding",
    "profile_encoder",
    "query_encoder",
)
SERVING_CANDIDATES = 100
#: key -> (table label, build_dupn encoder arguments, tasks).
CONTENDERS = {
    "dupn": (
        "DUPN multi-task",
        {"cell": "property_gated", "pooling": "attention"},
        TASKS,
    ),
    **{
        f"dupn_{task}": (
            f"DUPN per task: {task}",
            {"cell": "property_gated", "pooling": "attention"},
            (task,),
        )
        for task in TASKS
    },
    "mean": ("mean pooling multi-task", {"cell": "none", "pooling": "mean"}, TASKS),
    "lstm": (
        "standard LSTM multi-task",
        {"cell": "lstm", "pooling": "attention"},
        TASKS,
    ),
}


@dataclasses.dataclass
class Result:
    """One trained contender on one seed."""

    metrics: dict  # task name -> test metric
    epochs: int
    best_epoch: int
    examples_per_s: float
    parameters: int
    non_embedding: int
    seconds: float
    other_cores: float  # CPU used by other processes during the training


def input_names(feature) -> list[str]:
    names = getattr(feature, "input_names", None)
    return list(names) if names is not None else [feature.name]


def model_features(model, features) -> list:
    """The features whose inputs the model takes (a genre-only DUPN has no
    target item and no candidates)."""
    wanted = set(model.input)
    return [f for f in features if set(input_names(f)) & wanted]


# ----------------------------------------------------------------------------- training


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Seconds of the training part of each epoch (validation excluded)."""

        def __init__(self):
            super().__init__()
            self.seconds = []
            self._start = None

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_test_begin(self, logs=None):
            if self._start is not None:  # validation inside fit
                self.seconds.append(time.perf_counter() - self._start)
                self._start = None

        def on_epoch_end(self, epoch, logs=None):
            if self._start is not None:  # no validation data
                self.seconds.append(time.perf_counter() - self._start)
                self._start = None

    return EpochTimer()


def build(key: str, ml, args):
    import keras_mtl as km

    _, encoder, task_names = CONTENDERS[key]
    tasks = [t for t in ml.tasks if t.name in task_names]
    ranking = any(t.type == "ranking" for t in tasks)
    # MovieLens's one feature list, less what a per-task model has no task
    # for (build_dupn rejects unused inputs): the candidate list without a
    # ranking task, the target item without the ctr task.
    scores_item = any(t.name == "ctr" for t in tasks)
    features = [
        f
        for f in ml.features
        if (f is not ml.candidates or ranking) and (f not in ml.item or scores_item)
    ]
    model = km.build_dupn(
        features,
        tasks,
        query=ml.query,
        units=args.units,
        profile_units=args.profile_units,
        attention_units=args.attention_units,
        tower_units=args.tower_units,
        compile={"learning_rate": args.learning_rate},
        name=key,
        **encoder,
    )
    return model, tasks


def embedding_parameters(model) -> int:
    total = 0
    for name in EMBEDDING_LAYERS:
        try:
            total += model.get_layer(name).count_params()
        except ValueError:
            pass
    return total


def train_and_test(key: str, ml, seed: int, args):
    """Train one contender with early stopping, evaluate it on the test split."""
    import keras

    from keras_mtl.data import make_dataset
    from keras_mtl.training import METRIC_NAMES

    keras.backend.clear_session()
    gc.collect()
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model, tasks = build(key, ml, args)
    features = model_features(model, ml.features)
    batch = args.batch_size
    train = make_dataset(ml.train, features, tasks, batch, shuffle=True, seed=seed)
    val = make_dataset(ml.val, features, tasks, batch, shuffle=False)
    test = make_dataset(ml.test, features, tasks, batch, shuffle=False)
    timer = _epoch_timer()
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", mode="min", patience=1, restore_best_weights=True
    )
    with h.OtherCpuMeter() as others:
        history = model.fit(
            train,
            validation_data=val,
            epochs=args.epochs,
            callbacks=[timer, stop, *h.progress()],
            verbose=0,
        )
    scores = model.evaluate(test, return_dict=True, verbose=0)
    rows = len(ml.train["item"])
    later = timer.seconds[1:] or timer.seconds  # one epoch: that one
    total = model.count_params()
    # Keras names a single-output model's metric without the output's name.
    metrics = {
        t.name: float(
            scores.get(f"{t.name}_{METRIC_NAMES[t.type]}", scores[METRIC_NAMES[t.type]])
            if len(tasks) == 1
            else scores[f"{t.name}_{METRIC_NAMES[t.type]}"]
        )
        for t in tasks
    }
    result = Result(
        metrics=metrics,
        epochs=len(history.history["loss"]),
        best_epoch=int(stop.best_epoch) + 1,
        examples_per_s=rows / statistics.median(later),
        parameters=total,
        non_embedding=total - embedding_parameters(model),
        seconds=time.perf_counter() - start,
        other_cores=others.cores,
    )
    return result, model


# ----------------------------------------------------------------------------- serving


def serving_latency(model, ml, calls: int, warmup: int) -> dict:
    """Time one request with `SERVING_CANDIDATES` candidates through the exports.

    Returns `{"full": [ms...], "split": [...], "encoder": [...], "scorer":
    [...], "max_abs_diff": float, "candidates": int}`.
    """
    import numpy as np
    import tensorflow as tf

    import keras_mtl as km

    n = SERVING_CANDIDATES
    test = ml.test
    # The request: the first test example's user, history and context. The
    # candidates: movies of the test candidate lists, in order (repeated if the
    # data holds fewer), with their genres and year.
    request = {k: np.asarray(v[:1]) for k, v in test.items()}
    items = np.resize(test["candidates_item"].reshape(-1), n)
    genres_flat = test["candidates_genres"].reshape(-1, test["genres"].shape[-1])
    genres = genres_flat[np.resize(np.arange(len(genres_flat)), n)]
    years = np.resize(test["candidates_year"].reshape(-1), n)
    candidate = {"item": items, "genres": genres, "year": years}

    def tiled(name):
        return np.repeat(request[name], n, axis=0)

    with tempfile.TemporaryDirectory(prefix="dupn_serving_") as tmp:
        paths = km.export_dupn(model, tmp)
        loaded = {k: tf.saved_model.load(str(p)) for k, p in paths.items()}
        full, encoder, scorer = (
            loaded[k].signatures["serving_default"]
            for k in ("full", "user_encoder", "scorer")
        )

        def names(fn):
            return list(fn.structured_input_signature[1])

        full_x = {
            k: tf.constant(candidate[k] if k in candidate else tiled(k))
            for k in names(full)
        }
        encoder_x = {k: tf.constant(request[k]) for k in names(encoder)}
        scorer_rest = {
            k: tf.constant(candidate[k] if k in candidate else tiled(k))
            for k in names(scorer)
            if k != "user_representation"
        }

        def split():
            user = encoder(**encoder_x)["user_representation"]
            rep = tf.repeat(user, n, axis=0)
            return scorer(user_representation=rep, **scorer_rest)

        diff = float(
            np.max(np.abs(full(**full_x)["ctr"].numpy() - split()["ctr"].numpy()))
        )
        user = encoder(**encoder_x)["user_representation"]
        scorer_x = dict(scorer_rest, user_representation=tf.repeat(user, n, axis=0))
        times = {}
        for key, fn in (
            ("full", lambda: full(**full_x)),
            ("split", split),
            ("encoder", lambda: encoder(**encoder_x)),
            ("scorer", lambda: scorer(**scorer_x)),
        ):
            times[key] = h.time_calls(fn, calls, warmup)
    return {**times, "max_abs_diff": diff, "candidates": n}
