"""The state of a model's random-seed generators, saved with its weights.

Dropout, sampled gates and every `keras.random` call with a
`keras.random.SeedGenerator` draw their seeds from the generator's state
variable, which advances every training step. Keras leaves these variables out
of `model.weights` and so out of `save_weights` / `.keras` files: a model
restored from a backup (`keras.callbacks.BackupAndRestore`) would draw the
dropout masks of its first steps again, and a resumed run would not end where
an uninterrupted one does. `MultiTaskModel` saves and restores them with its
own variables (`save_random_states` / `load_random_states`).
"""

from __future__ import annotations

PREFIX = "random_state_"


def random_states(model) -> list:
    """The seed-generator state variables of `model`'s layers, in a fixed order:
    the model's `variables` that are not among its `weights` (Keras's
    documented difference: random seeds)."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def save_random_states(model, store) -> None:
    """Writes each state into `store` (a `save_own_variables` store) as
    `random_state_<i>`."""
    for i, state in enumerate(random_states(model)):
        store[f"{PREFIX}{i}"] = state


def load_random_states(model, store) -> dict:
    """Restores the states `save_random_states` wrote; returns the other
    entries of `store` as a dict (the model's own variables, for Keras).

    A store without random states (a file written before they were saved)
    leaves the generators as they are.
    """
    keys = list(store.keys())
    saved = sorted((k for k in keys if k.startswith(PREFIX)), key=_index)
    states = random_states(model)
    if saved and len(saved) != len(states):
        raise ValueError(
            f"{model.name!r} has {len(states)} random-seed generators but the "
            f"weights hold the states of {len(saved)}: they come from a "
            "different model."
        )
    for key, state in zip(saved, states):
        state.assign(store[key])
    return {k: store[k] for k in keys if not k.startswith(PREFIX)}


def _index(key: str) -> int:
    return int(key[len(PREFIX) :])
