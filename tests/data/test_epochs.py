"""Epoch-numbered shuffling: a `make_dataset` pass reads the order of its epoch,
a function of `(seed, epoch)` only, so a fresh dataset can start at any epoch."""

import numpy as np
import pytest

from keras_mtl.data import make_dataset, set_shuffle_epoch, shuffle_epoch
from keras_mtl.features import SparseFeature
from keras_mtl.tasks import Task

N = 60
ROWS = {"f": np.arange(N), "y": np.arange(N) % 2}
ARGS = ([SparseFeature("f", vocabulary_size=N)], [Task("y")])


def source(kind, tmp_path):
    if kind == "memory":
        return ROWS
    if kind == "csv":
        path = tmp_path / "rows.csv"
        lines = ["f,y"] + [f"{f},{y}" for f, y in zip(ROWS["f"], ROWS["y"])]
        path.write_text("\n".join(lines) + "\n")
        return str(path)
    return lambda: iter(
        [{k: v[:25] for k, v in ROWS.items()}, {k: v[25:] for k, v in ROWS.items()}]
    )


def passes(ds, count):
    return [
        np.concatenate([x["f"].numpy() for x, _ in ds]).tolist() for _ in range(count)
    ]


@pytest.mark.parametrize("kind", ["memory", "csv", "blocks"])
def test_a_fresh_dataset_set_to_epoch_k_reads_epoch_k(kind, tmp_path):
    data = source(kind, tmp_path)

    def dataset(seed=5):
        return make_dataset(
            data, *ARGS, batch_size=16, seed=seed, shuffle_buffer_size=N
        )

    uninterrupted = passes(dataset(), 3)
    assert all(sorted(order) == list(range(N)) for order in uninterrupted)
    assert len({tuple(order) for order in uninterrupted}) == 3  # reshuffled
    restarted = dataset()
    assert int(shuffle_epoch(restarted).numpy()) == 0
    assert set_shuffle_epoch(restarted, 2)
    assert passes(restarted, 1) == uninterrupted[2:]  # what a resumed run needs
    assert int(shuffle_epoch(restarted).numpy()) == 3  # the next pass: epoch 3
    if kind == "memory":  # (one source suffices: the counter is shared code)
        # Without being told, a fresh dataset starts again at epoch 0's order.
        assert passes(dataset(), 1) == uninterrupted[:1]


def test_unshuffled_datasets_have_no_epoch_and_bad_epochs_fail():
    ds = make_dataset(ROWS, *ARGS, batch_size=16, shuffle=False)
    assert shuffle_epoch(ds) is None
    assert not set_shuffle_epoch(ds, 3)
    assert shuffle_epoch(ds.take(1)) is None  # transformed: the counter stays inside
    shuffled = make_dataset(ROWS, *ARGS, batch_size=16, seed=0)
    with pytest.raises(ValueError, match="epoch must be >= 0, got -1"):
        set_shuffle_epoch(shuffled, -1)
