"""Starting and stopping the TF Serving stand-in (`tf_serving_standin.py`)
in a fresh process: the `tf_serving_standin` fixture and the builder battery
use it."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

STANDIN_SCRIPT = pathlib.Path(__file__).resolve().with_name("tf_serving_standin.py")
#: Longest wait for a stand-in to load its models and listen.
STARTUP_SECONDS = 60.0


class StandinHandle:
    """A running stand-in: ``rest_url``, ``grpc_target``, ``pid``, ``stop()``."""

    def __init__(self, process, port_file, report_file, log_file):
        self.process = process
        self.pid = process.pid
        self.port_file = port_file
        self.report_file = report_file
        self.log_file = log_file
        self.rest_port = None
        self.grpc_port = None
        self.rest_url = None
        self.grpc_target = None

    def wait_ready(self, timeout: float = STARTUP_SECONDS) -> StandinHandle:
        """Waits (bounded) for the port file; raises with the log if the
        process died or did not listen in time."""
        deadline = time.monotonic() + timeout
        while not self.port_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the TF Serving stand-in exited with {self.process.returncode}"
                    f" before listening:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the TF Serving stand-in did not listen within {timeout}s:\n"
                    f"{self.log()}"
                )
            time.sleep(0.05)
        ports = json.loads(self.port_file.read_text())
        self.rest_port = ports["rest_api_port"]
        self.grpc_port = ports["port"]
        self.rest_url = f"http://127.0.0.1:{self.rest_port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        return self

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def report(self, timeout: float = 10.0) -> dict:
        """What the running process has imported and served (SIGUSR1 makes it
        write its report file)."""
        if self.report_file.exists():
            self.report_file.unlink()
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while not self.report_file.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"no report within {timeout}s:\n{self.log()}")
            time.sleep(0.05)
        return json.loads(self.report_file.read_text())

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        return self.process.returncode


def start_standin(
    workdir,
    model_base_path=None,
    model_name=None,
    model_config_file=None,
    *,
    max_seconds: float = 600.0,
    wait: bool = True,
) -> StandinHandle:
    """Start a stand-in serving one model (`model_base_path`, `model_name`) or
    a `model_config_file`, its files in `workdir`; stop it with `.stop()`."""
    workdir = pathlib.Path(workdir)
    port_file = workdir / "ports.json"
    report_file = workdir / "report.json"
    log_file = workdir / "stderr.log"
    command = [
        sys.executable,
        str(STANDIN_SCRIPT),
        "--rest_api_port=0",
        "--port=0",
        f"--port_file={port_file}",
        f"--report_file={report_file}",
        f"--max_seconds={max_seconds}",
    ]
    if model_config_file is not None:
        command.append(f"--model_config_file={model_config_file}")
    else:
        command += [
            f"--model_base_path={model_base_path}",
            f"--model_name={model_name}",
        ]
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with open(log_file, "wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    handle = StandinHandle(process, port_file, report_file, log_file)
    return handle.wait_ready() if wait else handle
