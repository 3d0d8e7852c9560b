"""Hour of day, day of week and elapsed times from raw Unix timestamps."""

from __future__ import annotations

from collections.abc import Mapping

import keras
from keras import ops

from keras_mtl.features import INT_PAD

_HOUR = 3_600
_DAY = 86_400
#: 1970-01-01 (Unix time 0) was a Thursday: day 0 is weekday 3 (Monday = 0).
_EPOCH_WEEKDAY = 3


def _check_name(arg: str, value, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"TimeFeatures: {arg} must be an input or output name (a non-empty "
            f"string); got {value!r}."
        )


@keras.saving.register_keras_serializable(package="keras_mtl")
class TimeFeatures(keras.layers.Layer):
    """A preprocessor: raw Unix timestamps -> the time features a model embeds.

    From the request time `t` (int64 Unix seconds, the `timestamp` input):

    - `hour`: the hour of day in UTC, `(t // 3600) % 24` (0..23);
    - `weekday`: the day of week in UTC, `(t // 86400 + 3) % 7` (Monday = 0;
      1970-01-01 was a Thursday);
    - for each `elapsed` output, from a step-time input `s` of any shape (a
      padded behaviour sequence): the seconds since each step, `t - s`
      (a step after the request time counts as 0 s ago).

    A negative timestamp means "no value" (the int64 padding value -1): its
    outputs are -1, the padding value the features' lookups mask. The outputs
    are int64, so Unix seconds lose nothing to a float cast.

    The serving function composes it in front of the model
    (`keras_mtl.export_saved_model(..., preprocessor=)`), so a client sends the
    timestamps a production log has and the exported graph derives the
    features; in Python, the same layer maps raw columns to the model's.

    Args:
        timestamp: str. The request-time input. Defaults to "timestamp".
        hour: str or None. The hour-of-day output, or None for none. Defaults
            to "hour".
        weekday: str or None. The day-of-week output, or None for none.
            Defaults to "weekday".
        elapsed: dict of output name to step-time input name, e.g.
            `{"history_gap": "history_timestamp"}`. Defaults to none.

    Call arguments:
        inputs: dict of input name to int tensor: `timestamp` `(batch,)`, each
            step-time input `(batch, ...)`. Outputs whose inputs are absent are
            left out.

    Returns:
        dict of output name to int64 tensor: `hour` and `weekday` `(batch,)`,
        each elapsed output the shape of its step-time input.

    Example:
    >>> time = TimeFeatures(elapsed={"history_gap": "history_timestamp"})
    >>> out = time({"timestamp": np.array([90_000, -1]),
    ...             "history_timestamp": np.array([[89_940, -1], [5, 6]])})
    >>> {k: keras.ops.convert_to_numpy(v).tolist() for k, v in out.items()}
    {'hour': [1, -1], 'weekday': [4, -1], 'history_gap': [[60, -1], [-1, -1]]}
    """

    #: The dtype of every input (the serving signature's).
    input_dtype = "int64"

    def __init__(
        self,
        timestamp: str = "timestamp",
        hour: str | None = "hour",
        weekday: str | None = "weekday",
        elapsed: Mapping[str, str] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_name("timestamp", timestamp, allow_none=False)
        _check_name("hour", hour)
        _check_name("weekday", weekday)
        if elapsed is not None and not isinstance(elapsed, Mapping):
            raise ValueError(
                "TimeFeatures: elapsed must be a dict of output name to step-time "
                f"input name; got {elapsed!r}."
            )
        elapsed = dict(elapsed or {})
        for output, steps in elapsed.items():
            _check_name("an elapsed output", output, allow_none=False)
            _check_name(f"the step-time input of {output!r}", steps, allow_none=False)
        outputs = [n for n in (hour, weekday) if n is not None] + list(elapsed)
        if not outputs:
            raise ValueError("TimeFeatures: no output; give hour, weekday or elapsed.")
        inputs = {timestamp, *elapsed.values()}
        clash = sorted(inputs & set(outputs))
        if clash or len(set(outputs)) != len(outputs):
            raise ValueError(
                f"TimeFeatures: outputs {outputs} must be distinct and differ from "
                f"the inputs {sorted(inputs)}."
            )
        self.timestamp = timestamp
        self.hour = hour
        self.weekday = weekday
        self.elapsed = elapsed
        self.supports_jit = True
        self.autocast = False

    @property
    def sources(self) -> dict[str, tuple[str, ...]]:
        """`{output: the inputs it is computed from}`."""
        found = {n: (self.timestamp,) for n in (self.hour, self.weekday) if n}
        found.update(
            {out: (steps, self.timestamp) for out, steps in self.elapsed.items()}
        )
        return found

    def input_shapes(self, output_shapes: Mapping[str, tuple]) -> dict[str, tuple]:
        """The per-example shapes of the inputs that give outputs of
        `output_shapes` (`{output: shape}`): the request time is a scalar, a
        step-time input has its elapsed output's shape."""
        shapes = {self.timestamp: ()}
        for output, shape in output_shapes.items():
            steps = self.elapsed.get(output)
            if steps is not None:
                shapes[steps] = tuple(shape)
            elif tuple(shape) != ():
                raise ValueError(
                    f"TimeFeatures: output {output!r} is one value per example, "
                    f"but the model takes it with shape {tuple(shape)}."
                )
        return shapes

    def call(self, inputs):
        t = ops.cast(inputs[self.timestamp], "int64")
        known = ops.greater_equal(t, 0)
        pad = ops.full_like(t, INT_PAD)
        out = {}
        if self.hour is not None:
            out[self.hour] = ops.where(known, (t // _HOUR) % 24, pad)
        if self.weekday is not None:
            out[self.weekday] = ops.where(known, (t // _DAY + _EPOCH_WEEKDAY) % 7, pad)
        for output, steps in self.elapsed.items():
            if steps not in inputs:
                continue
            s = ops.cast(inputs[steps], "int64")
            request = ops.reshape(t, (-1,) + (1,) * (len(s.shape) - 1))
            ok = ops.logical_and(ops.greater_equal(s, 0), ops.greater_equal(request, 0))
            gap = ops.maximum(request - s, 0)
            out[output] = ops.where(ok, gap, ops.full_like(s, INT_PAD))
        return out

    def compute_output_spec(self, inputs):
        t = inputs[self.timestamp]
        out = {
            n: keras.KerasTensor(t.shape, dtype="int64")
            for n in (self.hour, self.weekday)
            if n is not None
        }
        for output, steps in self.elapsed.items():
            if steps in inputs:
                out[output] = keras.KerasTensor(inputs[steps].shape, dtype="int64")
        return out

    def get_config(self):
        return {
            **super().get_config(),
            "timestamp": self.timestamp,
            "hour": self.hour,
            "weekday": self.weekday,
            "elapsed": dict(self.elapsed),
        }
