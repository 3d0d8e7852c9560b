"""`ProgressLogger`: progress lines for log files, notebooks and pipes, and how
long tracing and compilation took."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import keras

#: The phases of a fit / evaluate / predict, by the callback hooks' names.
_MODES = {"train": "training", "test": "evaluation", "predict": "prediction"}


class ProgressLogger(keras.callbacks.Callback):
    """Progress lines that work in a terminal, a log file and a notebook.

    Keras's progress bar needs a terminal; elsewhere `verbose=2` prints one line
    per epoch, and a long epoch (or a first step that traces and compiles the
    model, with XLA a minute or more) prints nothing until it ends. This
    callback:

    - before the first training step prints "tracing and compiling the training
      step (XLA on|off)…" and after it "first step (tracing + compilation) took
      X s"; the first evaluation / prediction step (also fit's validation) is
      reported the same way when it took at least `slow_first_step` seconds;
    - when `periodic` (by default: when `stream` is not a terminal), prints a
      line during an epoch, evaluation or prediction whenever `interval`
      seconds have passed since its last line (step i/n, seconds since the
      epoch began, current loss), and each epoch's summary (its seconds and
      logs, as `verbose=2` prints them) unless `epoch_summaries=False`.

    In a terminal use it beside Keras's progress bar (`verbose=1`): only the
    compilation lines are added. Elsewhere pass `verbose=0` to `fit`.

    Args:
        interval: float. Seconds between progress lines within an epoch.
            Defaults to 30.
        periodic: bool or None. Print the progress lines and epoch summaries;
            None: when `stream` is not a terminal. Defaults to None.
        slow_first_step: float. Report the first evaluation / prediction step
            when it took at least this many seconds. Defaults to 2.
        epoch_summaries: bool. With `periodic`, a line per epoch (turn off for
            many short epochs). Defaults to True.
        stream: file or None. Where the lines go; None: `sys.stdout` at each
            line. Defaults to None.
        clock: callable or None. Seconds on a monotonic clock (tests pass a
            fake one); None: `time.monotonic`. Defaults to None.

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(loss="mse", jit_compile=False)
    >>> ticks = iter(range(0, 1000, 10))  # each reading of the clock: 10 s on
    >>> logger = km.training.ProgressLogger(
    ...     interval=25, periodic=True, clock=lambda: next(ticks))
    >>> _ = model.fit(np.zeros((8, 2)), np.zeros((8, 1)), batch_size=2,
    ...               epochs=1, verbose=0, callbacks=[logger])
    tracing and compiling the training step (XLA off)…
    first step (tracing + compilation) took 10.0 s
    epoch 1/1 step 4/4, 50 s, loss 0.0000
    epoch 1/1: 60.0 s - loss: 0.0000
    """

    def __init__(
        self,
        interval: float = 30.0,
        periodic: bool | None = None,
        slow_first_step: float = 2.0,
        epoch_summaries: bool = True,
        stream=None,
        clock: Callable[[], float] | None = None,
    ):
        super().__init__()
        if not interval > 0:
            raise ValueError(f"interval must be a positive number, got {interval!r}.")
        self.interval = float(interval)
        self.periodic = periodic
        self.slow_first_step = float(slow_first_step)
        self.epoch_summaries = bool(epoch_summaries)
        self.stream = stream
        self.clock = clock or time.monotonic
        self._stepped = set()  # modes whose first step has run
        self._times = {}  # mode -> the clock when it began (epoch, evaluation...)
        self._last_line = None  # the clock at the last timed line
        self._epoch = 0
        self._epochs = None
        self._in_epoch = False

    def _print(self, line: str) -> None:
        stream = self.stream or sys.stdout
        print(line, file=stream, flush=True)

    def _is_periodic(self) -> bool:
        if self.periodic is not None:
            return self.periodic
        stream = self.stream or sys.stdout
        isatty = getattr(stream, "isatty", None)
        return not (isatty is not None and isatty())

    # -------------------------------------------------------------- phases

    def _begin(self, mode: str) -> None:
        now = self.clock()
        self._times[mode] = now
        if self._last_line is None:
            self._last_line = now

    def _batch_begin(self, mode: str) -> None:
        if mode not in self._stepped:
            self._first_step_start = self.clock()

    def _batch_end(self, mode: str, batch: int, logs) -> None:
        now = self.clock()
        if mode not in self._stepped:
            self._stepped.add(mode)
            seconds = now - self._first_step_start
            if mode == "train":
                self._print(f"first step (tracing + compilation) took {seconds:.1f} s")
                self._last_line = now
            elif seconds >= self.slow_first_step:
                # In a terminal, fit's validation comes while Keras's bar is
                # on its line: start a new one.
                mid_bar = self._in_epoch and not self._is_periodic()
                self._print(
                    f"{chr(10) if mid_bar else ''}first {_MODES[mode]} step "
                    f"(tracing + compilation) took {seconds:.1f} s"
                )
                self._last_line = now
        start = self._times.get(mode)
        if start is None or not self._is_periodic():
            return
        if now - self._last_line < self.interval:
            return
        self._last_line = now
        steps = self.params.get("steps") if mode == "train" else None
        step = f"step {batch + 1}/{steps}" if steps else f"step {batch + 1}"
        if mode == "train":
            where = f"epoch {self._epoch + 1}/{self._epochs} "
        else:
            where = f"{_MODES[mode]} "
        line = f"{where}{step}, {now - start:.0f} s"
        loss = (logs or {}).get("loss")
        if loss is not None:
            line += f", loss {float(loss):.4f}"
        self._print(line)

    # -------------------------------------------------------------- training

    def on_train_begin(self, logs=None):
        self._epochs = self.params.get("epochs")
        if "train" not in self._stepped:
            xla = "on" if getattr(self.model, "jit_compile", False) else "off"
            self._print(f"tracing and compiling the training step (XLA {xla})…")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._in_epoch = True
        self._begin("train")

    def on_epoch_end(self, epoch, logs=None):
        self._in_epoch = False
        if not (self._is_periodic() and self.epoch_summaries):
            return
        self._last_line = self.clock()
        seconds = self._last_line - self._times["train"]
        values = " - ".join(f"{k}: {float(v):.4f}" for k, v in (logs or {}).items())
        line = f"epoch {epoch + 1}/{self._epochs}: {seconds:.1f} s"
        self._print(f"{line} - {values}" if values else line)

    def on_train_batch_begin(self, batch, logs=None):
        self._batch_begin("train")

    def on_train_batch_end(self, batch, logs=None):
        self._batch_end("train", batch, logs)

    # -------------------------------------------------------------- evaluation

    def on_test_begin(self, logs=None):
        self._begin("test")

    def on_test_batch_begin(self, batch, logs=None):
        self._batch_begin("test")

    def on_test_batch_end(self, batch, logs=None):
        self._batch_end("test", batch, logs)

    def on_predict_begin(self, logs=None):
        self._begin("predict")

    def on_predict_batch_begin(self, batch, logs=None):
        self._batch_begin("predict")

    def on_predict_batch_end(self, batch, logs=None):
        self._batch_end("predict", batch, logs)
