import os
import shutil
import stat
import subprocess

import numpy as np
import pytest

import keras_mtl as km

FEATURES = [
    km.SparseFeature("item", vocabulary_size=10, embedding_dim=2),
    km.SparseFeature("tags", hash_bins=16, embedding_dim=2, max_len=3),
    km.DenseFeature("price", dim=2),
]
TASKS = [km.Task("click"), km.Task("gmv", "regression")]


@pytest.fixture(scope="module")
def model():
    return km.build_mmoe(FEATURES, TASKS, num_experts=2, expert_units=(4,))


def test_versions_count_up_and_are_never_overwritten(model, tmp_path):
    assert km.export_saved_model(model, tmp_path) == tmp_path / "1"
    assert km.export_saved_model(model, tmp_path) == tmp_path / "2"
    assert km.export_saved_model(model, tmp_path, version=7) == tmp_path / "7"
    assert km.export_saved_model(model, tmp_path) == tmp_path / "8"
    with pytest.raises(FileExistsError, match="immutable"):
        km.export_saved_model(model, tmp_path, version=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "2", "7", "8"]


@pytest.mark.parametrize("bad", [0, -1, "3", True])
def test_bad_version(model, tmp_path, bad):
    with pytest.raises(ValueError, match="positive int"):
        km.export_saved_model(model, tmp_path, version=bad)


def test_failed_export_leaves_no_version_and_no_debris(model, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    # Fails after the SavedModel is written, before it is moved into place.
    monkeypatch.setattr("keras_mtl.serving.export.os.rename", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        km.export_saved_model(model, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "umask, dirs, files", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)]
)
def test_export_modes_follow_the_umask(model, tmp_path, umask, dirs, files):
    """A server running as another user can read the version (mkdtemp's 0700
    would keep it out): directories and files get what the umask allows."""
    old = os.umask(umask)
    try:
        target = km.export_saved_model(model, tmp_path)
    finally:
        os.umask(old)
    paths = [target, *target.rglob("*")]
    assert any(p.is_file() for p in paths) and any(p.is_dir() for p in paths[1:])
    for path in paths:
        want = dirs if path.is_dir() else files
        assert stat.S_IMODE(path.stat().st_mode) == want, (path, oct(want))


@pytest.mark.slow  # saved_model_cli: a fresh Python that imports TensorFlow
def test_signature_names_dtypes_and_shapes(model, tmp_path):
    path = km.export_saved_model(
        model, tmp_path, ranking_score=km.serving.RankingScore({"click": 1})
    )
    cli = shutil.which("saved_model_cli")
    if cli is None:
        pytest.skip("saved_model_cli not on PATH")

    shown = subprocess.run(
        [cli, "show", "--dir", str(path), "--all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in ("serving_default", "serving_examples", "ranking_score"):
        assert f"signature_def['{name}']:" in shown, shown
    assert (
        "inputs['examples'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)\n"
        in shown
    ), shown
    for expected in [
        "inputs['item'] tensor_info:\n        dtype: DT_INT64\n        shape: (-1)",
        "inputs['tags'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1, -1)",
        "inputs['price'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, -1)",
        "outputs['click'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1)",
        "outputs['gmv'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1)",
        "outputs['ranking_score'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1)",
    ]:
        assert expected in shown, shown


def test_raw_strings_are_hashed_inside_the_graph(model, tmp_path):
    import tensorflow as tf

    path = km.export_saved_model(model, tmp_path)
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    x = {
        "item": np.array([3, 99]),  # 99: out of range -> OOV row, no error
        "tags": np.array([["red", "", ""], ["blue", "red", ""]], dtype=object),
        "price": np.array([[1.0, 2.0], [0.5, 0.0]], "float32"),
    }
    x = {k: tf.constant(v) for k, v in x.items()}
    out = serve(**x)
    expected = model.predict(x, verbose=0)
    for task in ("click", "gmv"):
        np.testing.assert_allclose(out[task].numpy(), expected[task], atol=1e-6)


def test_each_variable_is_stored_once(tmp_path):
    """An export holds the parameters once: ≤ 1.05× their bytes on disk."""
    import tensorflow as tf

    features = [km.SparseFeature("item", vocabulary_size=100_000, embedding_dim=16)]
    big = km.build_mmoe(features, TASKS, num_experts=2, expert_units=(4,))
    path = km.export_saved_model(big, tmp_path)
    stored = tf.train.list_variables(str(path / "variables" / "variables"))
    tables = [name for name, shape in stored if shape == [100_001, 16]]
    assert len(tables) == 1, stored
    params = sum(int(np.prod(v.shape)) * 4 for v in big.variables)
    on_disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert params <= on_disk <= 1.05 * params
    # ... and the loaded SavedModel still lists every variable, by name.
    loaded = tf.saved_model.load(str(path))
    assert sorted(v.name for v in loaded.variables) == sorted(
        v.value.name for v in big.variables
    )


def test_the_staging_directory_note_is_dropped_unless_tensorflow_logs_debug(caplog):
    """TensorFlow's "Assets written to: <dir>/.1.tmp-xxxx/assets" (INFO, shown
    where the root logger is at INFO, and in a notebook, where TensorFlow sets
    its own logger to INFO) names a directory renamed a moment later: dropped
    during the export, unless TensorFlow's own logger is set to DEBUG
    (`keras-mtl train --verbose`). Other records pass."""
    import logging

    from keras_mtl.serving.export import _without_staging_notes

    logger = logging.getLogger("tensorflow")
    caplog.set_level(logging.INFO)  # (the root logger, as a user's basicConfig)
    level = logger.level
    try:
        # NOTSET: a script's default; INFO: what TensorFlow sets in a notebook;
        # DEBUG: `keras-mtl train --verbose`.
        for logger_level in (logging.NOTSET, logging.INFO, logging.DEBUG):
            logger.setLevel(logger_level)
            caplog.clear()
            with _without_staging_notes():
                logger.info("Assets written to: %s", "/m/.1.tmp-abc/assets")
                logger.info("something else")
            logger.info("Assets written to: %s", "/m/outside")  # after the export
            staging = ["Assets written to: /m/.1.tmp-abc/assets"]
            assert [r.getMessage() for r in caplog.records] == (
                staging if logger_level == logging.DEBUG else []
            ) + ["something else", "Assets written to: /m/outside"], logger_level
    finally:
        logger.setLevel(level)
