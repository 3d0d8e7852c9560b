#!/usr/bin/env bash
# Runs the fast test loop against the newest keras-nightly, in a second virtual
# environment beside the project's own (default: ../keras-nightly-venv).
#
#   tools/keras_nightly.sh                # build or update the venv, run the fast loop
#   tools/keras_nightly.sh tests/optimizers   # any pytest arguments instead
#
# CI does not run this: a nightly's own bugs must not block a landing.
# docs/development.md says when to run it.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${KERAS_NIGHTLY_VENV:-../keras-nightly-venv}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
export TF_CPP_MIN_LOG_LEVEL=3

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip
# The project and its test extras (TensorFlow, keras-rs, ...), then the newest
# nightly in place of the released Keras.
# Both distributions install the `keras` package: remove the release, then
# (re)install the nightly's files in full.
"$PY" -m pip install --quiet -e ".[tests]"
"$PY" -m pip uninstall --quiet --yes keras
"$PY" -m pip install --quiet --upgrade --force-reinstall --no-deps --pre keras-nightly
"$PY" -c "import keras, tensorflow as tf; print('keras', keras.__version__, '/ tensorflow', tf.__version__)"

if [ "$#" -eq 0 ]; then
    set -- -q
fi
exec "$PY" -m pytest "$@"
