"""`ProgressLogger`: its lines at known steps, on a fake clock (each reading of
the clock is 10 s after the previous one)."""

import io
import re

import keras
import numpy as np
import pytest

from keras_mtl.training import ProgressLogger


class Terminal(io.StringIO):
    def isatty(self):
        return True


def fake_clock():
    ticks = iter(range(0, 10_000, 10))
    return lambda: next(ticks)


@pytest.fixture(scope="module")
def model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(loss="mse", jit_compile=False)
    return model


def test_lines_outside_a_terminal(model):
    """8 rows in batches of 2: 4 steps an epoch, 2 validation steps. Clock
    readings: epoch start 0, first step 10 -> 20 (10 s), then one reading per
    step end; a line when 25 s have passed since the last one."""
    out = io.StringIO()
    logger = ProgressLogger(interval=25, stream=out, clock=fake_clock())
    x, y = np.ones((8, 2)), np.zeros((8, 1))
    model.fit(
        x,
        y,
        batch_size=2,
        epochs=2,
        verbose=0,
        validation_data=(x[:4], y[:4]),
        callbacks=[logger],
    )
    lines = out.getvalue().splitlines()
    # Losses vary; the rest is fixed by the clock.
    shape = [line.split(", loss")[0].split(" - ")[0] for line in lines]
    assert shape == [
        "tracing and compiling the training step (XLA off)…",
        # epoch 1 begins at 0; first step 10 -> 20 (a line at 20); the steps
        # end at 30, 40, 50 (25 s since the last line: a line)
        "first step (tracing + compilation) took 10.0 s",
        "epoch 1/2 step 4/4, 50 s",
        # validation begins at 60; first step 70 -> 80 (>= 2 s: reported);
        # step 2 ends at 90
        "first evaluation step (tracing + compilation) took 10.0 s",
        "epoch 1/2: 100.0 s",  # the epoch ends at 100
        # epoch 2 begins at 110; steps end at 120, 130 (a line), 140, 150;
        # validation begins at 160, its steps end at 170 (a line), 180
        "epoch 2/2 step 2/4, 20 s",
        "evaluation step 1, 10 s",
        "epoch 2/2: 80.0 s",  # ends at 190
    ]
    assert re.fullmatch(r"epoch 1/2 step 4/4, 50 s, loss \d+\.\d{4}", lines[2])
    for epoch in (4, 7):
        assert " - loss: " in lines[epoch] and " - val_loss: " in lines[epoch]


def test_only_the_compilation_lines_in_a_terminal(model):
    """Beside Keras's progress bar: the compilation lines (per logger: its
    first step), no progress lines or epoch summaries; a first evaluation /
    prediction step is reported when it took at least `slow_first_step`
    seconds, on a new line during an epoch (the bar is on its line then).
    Clock: training 0-50, validation 60-90 (first step 70 -> 80), prediction
    100-120 (first step 110 -> 120)."""
    out = Terminal()
    logger = ProgressLogger(interval=25, stream=out, clock=fake_clock())
    x, y = np.ones((8, 2)), np.zeros((8, 1))
    model.fit(
        x,
        y,
        batch_size=2,
        verbose=0,
        validation_data=(x[:4], y[:4]),
        callbacks=[logger],
    )
    model.predict(np.ones((4, 2)), batch_size=2, verbose=0, callbacks=[logger])
    assert out.getvalue().splitlines() == [
        "tracing and compiling the training step (XLA off)…",
        "first step (tracing + compilation) took 10.0 s",
        "",
        "first evaluation step (tracing + compilation) took 10.0 s",
        "first prediction step (tracing + compilation) took 10.0 s",
    ]
    quick = Terminal()
    model.predict(
        np.ones((4, 2)),
        batch_size=2,
        verbose=0,
        callbacks=[
            ProgressLogger(slow_first_step=11, stream=quick, clock=fake_clock())
        ],
    )
    assert quick.getvalue() == ""


def test_without_epoch_summaries_lines_still_come_every_interval(model):
    """Many short epochs (2 steps each) and no summaries: the interval runs on
    across epochs. Epoch e begins at 30 (e - 1) + 10 (0 for the first), its
    steps end 10 and 20 later (the first step: 10 -> 20, a line). 30 s since
    the last line: lines at 50, 80 and 110, each epoch's first step."""
    out = io.StringIO()
    logger = ProgressLogger(
        interval=25, epoch_summaries=False, stream=out, clock=fake_clock()
    )
    model.fit(
        np.ones((4, 2)),
        np.zeros((4, 1)),
        batch_size=2,
        epochs=4,
        verbose=0,
        callbacks=[logger],
    )
    assert [line.split(", loss")[0] for line in out.getvalue().splitlines()] == [
        "tracing and compiling the training step (XLA off)…",
        "first step (tracing + compilation) took 10.0 s",
        "epoch 2/4 step 1/2, 10 s",
        "epoch 3/4 step 1/2, 10 s",
        "epoch 4/4 step 1/2, 10 s",
    ]


def test_bad_interval_is_named():
    with pytest.raises(ValueError, match="interval must be a positive number, got 0"):
        ProgressLogger(interval=0)
