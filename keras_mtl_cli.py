"""`keras-mtl`'s launcher: the command line parser and quiet logs, without TensorFlow.

Importing anything under `keras_mtl` imports TensorFlow (the package registers
its layers at import, which `keras.saving.load_model` relies on). This module
lives outside the package so that `keras-mtl --help` prints at once, and so that
the log environment is in place before TensorFlow is first imported: it parses
the arguments, calls `quiet_logs()` (unless `--verbose`), and only then imports
`keras_mtl.cli` to run the command.

`quiet_logs()` is public: library users and notebooks call it before importing
`keras_mtl` to get the command line's quiet logs (README, "Quiet logs").

The `--model`, `--data` and `--loss-weighting` choices are static lists here;
tests/test_cli_launcher.py checks that they equal `keras_mtl.models.registry.MODELS`,
`keras_mtl.cli.DATASETS` and `keras_mtl.weighting.STRATEGIES`.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

#: `keras_mtl.models.registry.MODELS`, in its order.
MODEL_NAMES = (
    "mmoe",
    "omoe",
    "ple",
    "cgc",
    "shared_bottom",
    "cross_stitch",
    "sluice",
    "snr",
    "star",
    "branched",
    "hierarchy",
    "mrn",
    "l2_constrained",
    "single_task",
    "esmm",
    "esm2",
    "aitm",
    "dupn",
)
#: `keras_mtl.models.registry.model_names(gated=True)`.
GATED_MODEL_NAMES = ("mmoe", "omoe", "ple", "cgc")
#: `keras_mtl.cli.DATASETS`.
DATASET_NAMES = ("synthetic", "census", "funnel", "movielens", "multi_domain")
#: `keras_mtl.weighting.STRATEGIES`.
WEIGHTING_NAMES = (
    "fixed",
    "uncertainty",
    "gradnorm",
    "dwa",
    "decay",
    "pareto",
    "pcgrad",
    "cagrad",
)

#: The Keras backends `--backend` (and `KERAS_BACKEND`) may name, with the
#: package each needs and how to install it (torch: the CPU wheel, without the
#: CUDA libraries a CPU machine never uses).
BACKENDS = {
    "tensorflow": ("tensorflow", "pip install tensorflow"),
    "jax": ("jax", "pip install jax"),
    "torch": (
        "torch",
        "pip install torch --index-url https://download.pytorch.org/whl/cpu",
    ),
}

#: What `quiet_logs` puts in the environment (unless already set). Level 3
#: keeps TensorFlow's C++ log to FATAL: on a CPU-only machine that drops the
#: CPU-feature note (INFO), the XLA service lines (INFO) and "failed call to
#: cuInit" (ERROR, at the first operation). Python exceptions and warnings are
#: not affected. (CUDA_VISIBLE_DEVICES changes none of these lines.)
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3"}

#: Lines TensorFlow writes to file descriptor 2 while it is imported, before
#: its log level applies (each of two libraries links its own absl logging),
#: on every machine without CUDA. No environment variable drops them.
IMPORT_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine"
)


class _HelpFormatter(argparse.HelpFormatter):
    """Appends every option's default to its help: "(default: X)", "(default:
    none)" for an option left out, "(default: off)" for a flag (unless the help
    already says what the default is)."""

    def _get_help_string(self, action):
        help = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS:
            return help
        if "default" in help:
            return help
        if action.default is None:
            return help + " (default: none)"
        if action.default is False:  # a flag
            return help + " (default: off)"
        return help + " (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    """The `keras-mtl` argument parser (no TensorFlow import)."""
    parser = argparse.ArgumentParser(
        prog="keras-mtl",
        description="Multi-task recommendation models for Keras 3.",
        formatter_class=_HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train a model, report held-out metrics, export a SavedModel",
        description=(
            "Train on a seeded 80/10/10 train/validation/test split, print each "
            "task's test metric (AUC for binary tasks, MSE for regression) and "
            "export a TF Serving SavedModel."
        ),
        formatter_class=_HelpFormatter,
    )
    train.add_argument(
        "--model",
        choices=MODEL_NAMES,
        default="mmoe",
        help="the registered builder (keras_mtl.models.registry.MODELS)",
    )
    train.add_argument(
        "--data",
        choices=DATASET_NAMES,
        default="synthetic",
        help="synthetic: the MMoE paper's generator (no download); census: UCI "
        "census-income KDD (--data-path, or downloaded from UCI); funnel: "
        "simulated impressions with clicks, carts and conversions whose true "
        "probabilities are known (no download); movielens: MovieLens-100K "
        "behaviour sequences for dupn, split by time (--data-path, or downloaded "
        "from GroupLens); multi_domain: simulated clicks in five domains of "
        "unequal sizes whose true probabilities are known (no download), for star",
    )
    train.add_argument(
        "--loss-weighting",
        "--weighting",
        choices=WEIGHTING_NAMES,
        help="how the task losses are combined in fit (default: each Task's "
        "loss_weight). Their weights are logged per epoch as <task>_weight",
    )
    train.add_argument(
        "--data-path",
        help="local census-income file, or MovieLens-100K directory (default: "
        "downloaded into the Keras cache)",
    )
    train.add_argument("--epochs", type=int, default=10, help="training epochs")
    train.add_argument("--batch-size", type=int, default=1024, help="batch size")
    train.add_argument(
        "--learning-rate", type=float, default=1e-3, help="Adam's learning rate"
    )
    train.add_argument(
        "--seed", type=int, default=0, help="seed of the split, data and weights"
    )
    train.add_argument(
        "--num-examples",
        type=int,
        help="synthetic data: number of examples (default 50000); funnel: "
        "impressions (default 200000); multi_domain: rows (default 100000)",
    )
    train.add_argument(
        "--correlation",
        type=float,
        default=0.5,
        help="synthetic data: task correlation",
    )
    train.add_argument(
        "--export-dir",
        help="TF Serving model directory; the SavedModel goes to <dir>/<version>/ "
        "(default: saved_models/<model>-<data>)",
    )
    train.add_argument("--no-export", action="store_true", help="skip the export")
    train.add_argument(
        "--warm-start",
        metavar="PATH",
        help="start from the weights of a previous export (SavedModel or export "
        "directory, its highest version) or .keras file, built with the same "
        "options, and continue training on the new data",
    )
    train.add_argument(
        "--since",
        metavar="YYYY-MM-DD",
        help="movielens: train only on interactions from this day on (UTC)",
    )
    train.add_argument(
        "--until",
        metavar="YYYY-MM-DD",
        help="movielens: train only on interactions before this day (UTC)",
    )
    train.add_argument(
        "--backup-dir",
        metavar="DIR",
        help="back up the training state to DIR after every epoch; the same "
        "command run again after a crash or kill resumes at the last finished "
        "epoch and ends as an uninterrupted run would (DIR is deleted when "
        "training ends)",
    )
    train.add_argument(
        "--gate-plot",
        metavar="PNG",
        help=f"gated models ({', '.join(GATED_MODEL_NAMES)}): save a heatmap "
        "of each task's mean gate weight per expert on the test split",
    )
    train.add_argument(
        "--backend",
        choices=tuple(BACKENDS),
        help="the Keras backend that trains (sets KERAS_BACKEND before Keras is "
        "imported; default: KERAS_BACKEND, else Keras's own default, "
        "tensorflow). The SavedModel is the same on every backend",
    )
    train.add_argument(
        "--verbose",
        action="store_true",
        help="TensorFlow's and Keras's own logging (C++ log lines, CUDA probing, "
        "the export's 'Assets written to' line), which are off by default",
    )
    return parser


class _QuietImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports `tensorflow`, the first time, with file descriptor 2 captured;
    then writes back every captured line except `IMPORT_NOISE`."""

    _finding = False

    def find_spec(self, name, path=None, target=None):
        # (`importlib.util.find_spec("tensorflow")` asks too, without importing.)
        if name != "tensorflow" or self._finding:
            return None
        self._finding = True
        try:  # the real spec, from the finders after this one
            spec = importlib.util.find_spec(name)
        finally:
            self._finding = False
        if spec is None or spec.loader is None:
            return spec
        self.loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        uninstall_quiet_import()  # the first import only
        module.__loader__ = module.__spec__.loader = self.loader
        with filtered_stderr(IMPORT_NOISE):
            self.loader.exec_module(module)


_QUIET_IMPORT = _QuietImport()


def uninstall_quiet_import() -> None:
    if _QUIET_IMPORT in sys.meta_path:
        sys.meta_path.remove(_QUIET_IMPORT)


class filtered_stderr:
    """Context manager: what is written to file descriptor 2 inside it (C++ and
    Python alike) is held back, then written to `sys.stderr` without the lines
    that match `pattern`."""

    def __init__(self, pattern: re.Pattern):
        self.pattern = pattern

    def __enter__(self):
        if sys.stderr is not None:
            sys.stderr.flush()
        self.held = tempfile.TemporaryFile()
        self.saved = os.dup(2)
        os.dup2(self.held.fileno(), 2)
        return self

    def __exit__(self, *exc_info):
        if sys.stderr is not None:
            sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.held.seek(0)
        text = self.held.read().decode("utf-8", errors="replace")
        self.held.close()
        kept = [
            line
            for line in text.splitlines(keepends=True)
            if not self.pattern.search(line)
        ]
        if kept and sys.stderr is not None:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
        return False


def quiet_logs() -> None:
    """Quiet TensorFlow's start-up logs; call it before importing TensorFlow,
    Keras or keras_mtl.

    Sets `QUIET_ENVIRONMENT` (where the variables are not set already) and, if
    TensorFlow is not imported yet, makes its first import drop the
    `IMPORT_NOISE` lines it writes to standard error on a machine without CUDA
    (everything else it writes is kept). Needs no TensorFlow itself.

    Example:
    >>> import keras_mtl_cli
    >>> keras_mtl_cli.quiet_logs()  # then: import keras_mtl as km
    """
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if "tensorflow" not in sys.modules and _QUIET_IMPORT not in sys.meta_path:
        sys.meta_path.insert(0, _QUIET_IMPORT)


def select_backend(name: str | None = None) -> str | None:
    """Set `KERAS_BACKEND` to `name` (or keep the variable's value when `name`
    is None) before Keras is imported; returns the backend chosen (None: Keras's
    own default).

    Raises SystemExit with a message naming the backend: one keras-mtl does not
    train on, a backend whose package is not installed (and how to install
    it), or Keras already imported in this process with another backend (a
    process's backend is fixed at Keras's first import).
    """
    source = "--backend"
    if name is None:
        name = os.environ.get("KERAS_BACKEND") or None
        source = "KERAS_BACKEND"
        if name is None:
            return None
    if name not in BACKENDS:
        raise SystemExit(
            f"keras-mtl: {source}={name!r}: keras-mtl trains on {', '.join(BACKENDS)}."
        )
    package, install = BACKENDS[name]
    keras = sys.modules.get("keras")
    if keras is not None:
        running = keras.backend.backend()
        if running != name:
            raise SystemExit(
                f"keras-mtl: {source} {name}, but Keras is already imported with "
                f"the {running} backend in this process, and a process's backend "
                "is fixed when Keras is first imported. Run the `keras-mtl` "
                f"command (or set KERAS_BACKEND={name} before Python imports "
                "Keras)."
            )
    elif not _importable(package):
        raise SystemExit(
            f"keras-mtl: {source} {name} needs the {package!r} package, which is "
            f"not installed; install it with `{install}`."
        )
    os.environ["KERAS_BACKEND"] = name
    return name


def _importable(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def main(argv=None) -> int:
    """`keras-mtl`: parse (no TensorFlow), choose the Keras backend, quiet the
    logs, run the command."""
    args = build_parser().parse_args(argv)
    select_backend(getattr(args, "backend", None))
    if not args.verbose:
        quiet_logs()
    from keras_mtl import cli  # TensorFlow, Keras and the models

    return cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
