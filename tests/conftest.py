import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# XLA compiles each test model once and runs it for a few steps: skip LLVM's
# optimisation passes, which cost more than those steps (same results; fast
# math stays off). Set before TensorFlow is imported; also seen by the fresh
# processes the tests start.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(
    os.environ.get("KERAS_MTL_SHARED_DATA", REPO.parent / "shared" / "data")
)
SLOW_REASON = (
    "slow end-to-end test: run it with `python -m pytest --run-slow` (CI does)"
)


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run the tests marked slow (end-to-end trainings, benchmark "
        "smoke tests, real-data checks); CI (.ci/run) passes it",
    )


#: The longest test files (about 20 s or more on 2 cores), longest first, run
#: first: pytest-xdist hands whole files to the workers in collection order
#: (`pytest_configure` below keeps it), so the long ones must not be left for
#: the end while the other worker idles.
LONGEST_FIRST = (
    "test_notebooks.py",  # a wheel, a venv, then every notebook in a kernel
    "models/test_builders.py",  # every builder's battery
    "models/test_dupn.py",  # DUPN's battery, exports and warm starts: ~3 min
    "test_cli.py",
    "datasets/test_raw_serving.py",  # one test of one to two minutes
    "test_serving_latency_benchmark.py",
    "test_esmm_proof.py",
    "test_dupn_benchmark.py",
    "models/test_funnel_builders.py",
    "test_large_vocab_benchmark.py",
    "test_census_benchmark.py",
    "test_cli_resume.py",
    "weighting/test_strategies.py",
    "test_compile_cost_benchmark.py",
    "test_star_domains_benchmark.py",
    "test_mmoe_census_benchmark.py",
    "test_weighting_benchmark.py",
    "data/test_stream_source.py",
    "data/test_epochs.py",
)


def pytest_configure(config):
    # pytest-xdist (3.6 on) hands out the files with the most tests first
    # unless told not to: a one-test file of two minutes would start last.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def _file_order(item) -> int:
    path = item.path.relative_to(REPO / "tests").as_posix()
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


def _skip_other_backends(items):
    """`@pytest.mark.backends("tensorflow", reason=...)` runs a test on the named
    Keras backends only and skips it, with its reason, on the others (the one
    way the suite says a test cannot run on a backend: tf.* code, SavedModel
    export, string tensors, ...)."""
    import keras

    backend = keras.backend.backend()
    for item in items:
        marker = item.get_closest_marker("backends")
        if marker is None or backend in marker.args:
            continue
        reason = marker.kwargs.get("reason")
        if not reason:
            raise pytest.UsageError(f"{item.nodeid}: backends(...) needs a reason=")
        item.add_marker(pytest.mark.skip(reason=f"not on {backend}: {reason}"))


def pytest_collection_modifyitems(config, items):
    items.sort(key=_file_order)  # stable: the order within each file is kept
    _skip_other_backends(items)
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason=SLOW_REASON)
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data():
    """Path of ../shared/data; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _xla_for_runs_of_any_length():
    """`jit_compile="auto"` keeps the rule the suite was written for: XLA
    wherever every layer supports it, however short the run (the tests' runs
    are all short, and the policy would turn XLA off in every one; its own
    tests, tests/training/test_auto_jit_compile.py, restore it). Session-wide,
    so that module-scoped fixtures, set up before `_xla_where_marked`, see it."""
    import keras_mtl.training

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras_mtl.training, "auto_jit_compile", lambda *run: True)
        yield


@pytest.fixture(autouse=True)
def _xla_where_marked(request, monkeypatch):
    """Models compile without XLA (`jit_compile="auto"` reads
    `keras_mtl.training.supports_jit`) except in the tests marked `xla`: XLA
    compiling each small test model costs more than its training. The marked
    ones are what XLA must be checked on: the XLA-specific checks (string
    lookups beside an XLA step, "XLA stays on"), in both loops, and the
    builders' batteries (every registered model trains, saves and exports
    compiled with XLA, as users' models are), marked
    `xla(full_suite_only=True)`: in the full suite (`--run-slow`, CI) only."""
    import keras

    if keras.backend.backend() == "jax":
        # JAX without jit runs the step op by op in Python: slower than
        # compiling, even for the suite's tiny models (a builder battery case:
        # 30-74 s un-jitted). The library's own default there is jit.
        return
    marker = request.node.get_closest_marker("xla")
    if marker is not None and (
        request.config.getoption("--run-slow")
        or not marker.kwargs.get("full_suite_only", False)
    ):
        return
    import keras_mtl.training

    monkeypatch.setattr(keras_mtl.training, "supports_jit", lambda model: False)


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(1234)
