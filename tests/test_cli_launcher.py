"""`keras_mtl_cli`, the command's TensorFlow-free launcher: fast help with
defaults, static choice lists that match the registries, quiet logs."""

import contextlib
import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import keras_mtl_cli
from keras_mtl import cli
from keras_mtl.models.registry import MODELS, model_names
from keras_mtl.weighting import STRATEGIES

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, env=None, timeout=120) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)  # (CI sets it)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )


def test_static_choices_are_the_registries():
    assert keras_mtl_cli.MODEL_NAMES == tuple(MODELS)
    assert keras_mtl_cli.GATED_MODEL_NAMES == tuple(model_names(gated=True))
    assert keras_mtl_cli.DATASET_NAMES == tuple(cli.DATASETS)
    assert keras_mtl_cli.WEIGHTING_NAMES == tuple(STRATEGIES)


def test_help_imports_neither_tensorflow_nor_keras_and_shows_defaults():
    done = run_python(
        """
        import contextlib, io, sys
        import keras_mtl_cli
        for argv in (["--help"], ["train", "--help"]):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    keras_mtl_cli.main(argv)
                except SystemExit as exit_:
                    assert exit_.code == 0, exit_.code
            print(out.getvalue())
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                        ("tensorflow", "keras", "keras_mtl"))
        print("loaded:", loaded)
        """
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "loaded: []" in out
    assert out.startswith("usage: keras-mtl [-h] {train}")
    assert "usage: keras-mtl train" in out
    help = " ".join(out.split())  # argparse wraps the lines
    for default in (
        "(default: mmoe)",
        "(default: synthetic)",
        "training epochs (default: 10)",
        "batch size (default: 1024)",
        "Adam's learning rate (default: 0.001)",
        "(default: 0)",
        "task correlation (default: 0.5)",
        "(default: saved_models/<model>-<data>)",
        "(default 50000)",
        "(default: each Task's loss_weight)",
        "skip the export (default: off)",
        "new data (default: none)",  # --warm-start
    ):
        assert default in help, default
    assert "--verbose" in help


def test_the_console_script_is_the_launcher():
    text = (ROOT / "setup.py").read_text()
    assert '"keras-mtl=keras_mtl_cli:main"' in text
    assert 'py_modules=["keras_mtl_cli"]' in text


def test_filtered_stderr_drops_only_the_noise(capfd):
    """What C++ writes to descriptor 2 goes through: all but the noise lines."""
    with keras_mtl_cli.filtered_stderr(keras_mtl_cli.IMPORT_NOISE):
        os.write(
            2,
            b"WARNING: All log messages before absl::InitializeLog() is called "
            b"are written to STDERR\n"
            b"I0000 00:00:1.2 8872 cudart_stub.cc:31] Could not find cuda drivers "
            b"on your machine, GPU will not be used.\n"
            b"E0000 00:00:1.3 8872 real.cc:1] a real error\n",
        )
    assert capfd.readouterr().err == "E0000 00:00:1.3 8872 real.cc:1] a real error\n"


@pytest.mark.slow
def test_train_prints_progress_and_no_tensorflow_noise():
    """`keras-mtl train` in a fresh process with its output to a pipe (as in a
    log file): the compilation is announced and timed, each epoch summarised,
    and none of TensorFlow's CPU-only start-up lines appear (they do without
    `quiet_logs`: test_filtered_stderr_drops_only_the_noise, README)."""
    done = run_python(
        """
        import sys
        import keras_mtl_cli
        keras_mtl_cli.quiet_logs()  # (main does it too; here before the patch)
        from keras_mtl import training
        training.supports_jit = lambda model: False  # XLA off: a cheaper test
        sys.exit(keras_mtl_cli.main(["train", "--model", "shared_bottom",
            "--num-examples", "200", "--batch-size", "160", "--epochs", "1",
            "--no-export"]))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith("shared_bottom on synthetic: 160 train rows")
    assert lines[1] == "tracing and compiling the training step (XLA off)…"
    assert re.fullmatch(
        r"first step \(tracing \+ compilation\) took \d+\.\d s", lines[2]
    )
    assert [line for line in lines if line.startswith("epoch 1/1: ")]
    assert "held-out test metrics" in done.stdout
    for noise in ("cuInit", "cudart", "absl", "cpu_feature_guard", "E0000", "I0000"):
        assert noise not in done.stdout, noise


def test_backend_option_and_keras_backend_variable(monkeypatch):
    """`--backend` sets KERAS_BACKEND (it wins over the variable, which is
    kept when the option is left out); a backend Keras cannot switch to now,
    or one not installed, is refused with a message saying what to do."""
    parser = keras_mtl_cli.build_parser()
    assert parser.parse_args(["train", "--backend", "torch"]).backend == "torch"
    assert parser.parse_args(["train"]).backend is None
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        parser.parse_args(["train", "--backend", "numpy"])
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert keras_mtl_cli.select_backend(None) is None
    assert "KERAS_BACKEND" not in os.environ
    assert keras_mtl_cli.select_backend("tensorflow") == "tensorflow"
    assert os.environ["KERAS_BACKEND"] == "tensorflow"
    assert keras_mtl_cli.select_backend(None) == "tensorflow"
    # This process imported Keras with TensorFlow: it cannot become JAX.
    with pytest.raises(SystemExit, match="already imported with the tensorflow"):
        keras_mtl_cli.select_backend("jax")
    monkeypatch.setenv("KERAS_BACKEND", "numpy")
    with pytest.raises(SystemExit, match="KERAS_BACKEND='numpy'.*tensorflow, jax"):
        keras_mtl_cli.select_backend(None)
    # Before Keras is imported, a backend whose package is missing.
    monkeypatch.delitem(sys.modules, "keras")
    monkeypatch.setattr(keras_mtl_cli, "_importable", lambda package: False)
    with pytest.raises(SystemExit) as refused:
        keras_mtl_cli.select_backend("torch")
    assert "--backend torch needs the 'torch' package" in str(refused.value)
    assert "download.pytorch.org/whl/cpu" in str(refused.value)


@pytest.mark.slow  # a JAX training and the TensorFlow child that exports
def test_train_on_jax_exports(tmp_path):
    """`--backend jax` trains on JAX (it wins over KERAS_BACKEND) and the
    export is written (by the TensorFlow backend, in a child process)."""
    pytest.importorskip("jax")
    done = run_python(
        f"""
        import sys
        import keras_mtl_cli
        sys.exit(keras_mtl_cli.main(["train", "--backend", "jax",
            "--num-examples", "400", "--batch-size", "80", "--epochs", "1",
            "--export-dir", {str(tmp_path)!r}]))
        """,
        env={"KERAS_BACKEND": "torch"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mmoe on synthetic: 320 train rows" in done.stdout
    assert "backend jax" in done.stdout
    assert f"exported SavedModel (model): {tmp_path / '1'}" in done.stdout
    assert (tmp_path / "1" / "saved_model.pb").is_file()
    assert (tmp_path / "1" / "assets.extra" / "tf_serving_warmup_requests").is_file()
