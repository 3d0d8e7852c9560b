"""`keras-mtl train --backup-dir`: a training process killed mid-run and started
again resumes at its last finished epoch and ends as an uninterrupted run does;
a backup of other options is refused."""

import argparse
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_mtl import cli

REPO = pathlib.Path(__file__).resolve().parents[1]
EPOCHS = 6
TRAIN = [
    "train",
    "--model",
    "mmoe",
    "--data",
    "synthetic",
    "--num-examples",
    "320",
    "--batch-size",
    "64",
    "--epochs",
    str(EPOCHS),
    "--loss-weighting",
    "dwa",
    "--seed",
    "1",
]


def command(*extra):
    return [sys.executable, "-m", "keras_mtl", *TRAIN, *extra]


def environment():
    return {**os.environ, "PYTHONPATH": str(REPO)}


def run(*extra, cwd):
    proc = subprocess.run(
        command(*extra),
        capture_output=True,
        text=True,
        env=environment(),
        cwd=cwd,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def exported_variables(export_dir):
    import tensorflow as tf

    model = tf.saved_model.load(str(export_dir / "1"))
    return {v.name: v.numpy() for v in model.variables}


def wait_for_backup(metadata, proc, seconds=600):
    """Polls until the backup of a finished epoch is complete (Keras writes its
    metadata last), then returns that epoch count."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        try:
            return json.loads(metadata.read_text())["epoch"]
        except (FileNotFoundError, ValueError, KeyError):
            time.sleep(0.01)
    pytest.fail(f"no backup in {seconds} s")


@pytest.mark.slow
def test_a_killed_training_process_resumes_with_the_uninterrupted_result(tmp_path):
    uninterrupted = tmp_path / "uninterrupted"
    run("--export-dir", str(uninterrupted), cwd=tmp_path)

    backup, resumed = tmp_path / "backup", tmp_path / "resumed"
    extra = ("--backup-dir", str(backup), "--export-dir", str(resumed))
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(
            command(*extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment(),
            cwd=tmp_path,
        )
        try:
            done = wait_for_backup(backup / "training_metadata.json", proc)
            os.kill(proc.pid, signal.SIGKILL)  # mid-epoch, just after a backup
        finally:
            if proc.poll() is None:  # (the test failed before its kill)
                proc.kill()
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert 1 <= done < EPOCHS and not resumed.exists()

    out = run(*extra, cwd=tmp_path)
    # Keras's "Epoch 3/12" lines, or keras_mtl's progress lines ("epoch 3/12: ...").
    found = re.findall(rf"^epoch (\d+)/{EPOCHS}\b", out, re.M | re.I)
    epochs = [int(e) for e in found]
    assert epochs[0] >= done + 1 > 1 and epochs[-1] == EPOCHS  # resumed, not redone
    assert not backup.exists()  # deleted when training ended

    want, got = exported_variables(uninterrupted), exported_variables(resumed)
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=0, atol=1e-5, err_msg=name)


def args(directory, **changes):
    parsed = cli.build_parser().parse_args([*TRAIN, "--backup-dir", str(directory)])
    return argparse.Namespace(**{**vars(parsed), **changes})


def test_a_backup_of_other_options_or_a_foreign_directory_is_refused(tmp_path):
    backup = tmp_path / "backup"
    assert cli.backup_callbacks(args(backup))  # a new directory: the options noted
    (backup / "latest.weights.h5").write_text("a finished epoch")
    assert cli.backup_callbacks(args(backup, epochs=30))  # more epochs: resumes
    with pytest.raises(
        SystemExit,
        match=r"holds the backup of a run with other options: --loss-weighting "
        r"'dwa' \(now None\), --seed 1 \(now 2\)\. Resume",
    ):
        cli.backup_callbacks(args(backup, seed=2, loss_weighting=None))
    # Only the options (stopped before an epoch ended): nothing to resume.
    (backup / "latest.weights.h5").unlink()
    assert cli.backup_callbacks(args(backup, seed=2))
    assert json.loads((backup / "keras-mtl-options.json").read_text())["seed"] == 2
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="is not empty and holds no keras-mtl backup"):
        cli.backup_callbacks(args(foreign))
    assert cli.build_parser().parse_args(TRAIN).backup_dir is None
    assert cli.backup_callbacks(args(backup, backup_dir=None)) == []
