"""Version retention of exports: `keep_versions`, pins from a models.config,
`prune_versions` alone, and `export_dupn`'s three parts."""

import keras
import pytest

import keras_mtl as km


@pytest.fixture(scope="module")
def tiny():
    """The cheapest exportable model (an export takes about 0.3 s)."""
    inputs = km.make_inputs([km.DenseFeature("x", dim=3)])
    ctr = km.layers.TaskTower((), "binary", name="ctr")(inputs["x"])
    return keras.Model(inputs, {"ctr": ctr})


def names(base):
    """Entries of `base`, integers first in numeric order."""
    return sorted((p.name for p in base.iterdir()), key=lambda n: (len(n), n))


def write_config(path, base_paths_and_policies):
    """A models.config text with one model per `(base_path, policy text)`."""
    configs = "".join(
        f'  config {{ name: "m{i}" base_path: "{base}" model_platform: '
        f'"tensorflow" {policy} }}\n'
        for i, (base, policy) in enumerate(base_paths_and_policies)
    )
    path.write_text(f"model_config_list {{\n{configs}}}\n")
    return path


def test_keep_versions_keeps_the_newest(tiny, tmp_path):
    seen = []
    for _ in range(5):
        km.export_saved_model(tiny, tmp_path, keep_versions=2)
        seen.append(names(tmp_path))
    assert seen == [["1"], ["1", "2"], ["2", "3"], ["3", "4"], ["4", "5"]]
    # No debris: the removed versions' hidden trash directories are gone too.
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_versions_pinned_in_models_config_survive(tiny, tmp_path):
    base = tmp_path / "ctr"
    for version in range(1, 5):
        (base / str(version)).mkdir(parents=True)
    config = write_config(
        tmp_path / "models.config",
        [
            (base, "model_version_policy { specific { versions: 1 } }"),
            (tmp_path / "other", "model_version_policy { specific { versions: 3 } }"),
        ],
    )
    assert km.serving.pinned_versions(config, base) == {1}
    km.export_saved_model(tiny, base, keep_versions=1, models_config=config)
    assert names(base) == ["1", "5"]  # 3 is pinned for another model only

    # A label pins its version too, whatever the policy (here: the default).
    write_config(config, [(base, 'version_labels { key: "stable" value: 5 }')])
    assert km.serving.pinned_versions(config, base) == {5}
    km.export_saved_model(tiny, base, keep_versions=1, models_config=config)
    assert names(base) == ["5", "6"]


def test_a_relative_base_path_resolves_against_the_working_directory(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    policy = "model_version_policy { specific { versions: 2 versions: 7 } }"
    config = write_config(tmp_path / "models.config", [("models/ctr/", policy)])
    assert km.serving.pinned_versions(config, tmp_path / "models" / "ctr") == {2, 7}


def test_the_newest_and_the_new_version_are_never_removed(tiny, tmp_path):
    for version in (1, 2, 9):
        (tmp_path / str(version)).mkdir()
    # keep=1 and another version pinned: the newest (9) still stays.
    assert km.serving.prune_versions(tmp_path, keep=1, pinned=[1]) == [2]
    assert names(tmp_path) == ["1", "9"]
    # An explicit version below the newest is not pruned right after its export.
    km.export_saved_model(tiny, tmp_path, version=4, keep_versions=1)
    assert names(tmp_path) == ["4", "9"]


def test_pruning_touches_only_integer_version_directories(tmp_path):
    for name in ("1", "2", "3", ".4.tmp-abc", ".hidden", "backup", "v1", "0x1"):
        (tmp_path / name).mkdir()
    (tmp_path / "5").write_text("a file, not a version")
    (tmp_path / ".4.tmp-abc" / "saved_model.pb").write_bytes(b"half written")
    assert km.serving.prune_versions(tmp_path, keep=1) == [1, 2]
    assert names(tmp_path) == [
        "3",
        "5",
        "v1",
        "0x1",
        "backup",
        ".hidden",
        ".4.tmp-abc",
    ]
    assert (tmp_path / ".4.tmp-abc" / "saved_model.pb").read_bytes() == b"half written"
    assert km.serving.prune_versions(tmp_path / "missing", keep=1) == []


@pytest.mark.parametrize("bad", [0, -2, True, "2", 1.5])
def test_bad_keep_versions_fails_before_writing(tiny, tmp_path, bad):
    with pytest.raises(ValueError, match=r"export_saved_model: keep_versions "):
        km.export_saved_model(tiny, tmp_path, keep_versions=bad)
    with pytest.raises(ValueError, match=r"prune_versions: keep "):
        km.serving.prune_versions(tmp_path, keep=bad)
    assert list(tmp_path.iterdir()) == []


def test_a_config_not_serving_base_dir_fails_before_writing(tiny, tmp_path):
    # A container's path, not the one this process exports to.
    config = write_config(tmp_path / "models.config", [("/models/ctr", "")])
    base = tmp_path / "ctr"
    with pytest.raises(ValueError, match=r"serves no model at .*'/models/ctr'"):
        km.export_saved_model(tiny, base, keep_versions=1, models_config=config)
    assert not base.exists() or list(base.iterdir()) == []
    (tmp_path / "broken.config").write_text("model_config_list { config { nme: 1 } }")
    with pytest.raises(ValueError, match=r"broken.config.*not a TF Serving"):
        km.export_saved_model(
            tiny, base, keep_versions=1, models_config=tmp_path / "broken.config"
        )
    assert not base.exists() or list(base.iterdir()) == []


@pytest.mark.parametrize(
    "policy, keep, served",
    [
        ("model_version_policy { latest { num_versions: 3 } }", 2, "newest 3"),
        ("model_version_policy { all {} }", 5, "newest every version"),
    ],
)
def test_keep_versions_below_what_the_policy_serves_fails(
    tiny, tmp_path, policy, keep, served
):
    """A `latest {num_versions: n}` policy serves the newest n versions and
    `all` every one: pruning to fewer would pull versions out from under the
    server, so the export refuses before writing."""
    base = tmp_path / "ctr"
    (base / "1").mkdir(parents=True)
    config = write_config(tmp_path / "models.config", [(base, policy)])
    with pytest.raises(ValueError, match=rf"keep_versions={keep} .*{served}"):
        km.export_saved_model(tiny, base, keep_versions=keep, models_config=config)
    assert names(base) == ["1"]
    # Enough versions kept (or no pruning at all): the export goes ahead.
    km.export_saved_model(tiny, base, models_config=config)
    if "latest" in policy:
        km.export_saved_model(tiny, base, keep_versions=3, models_config=config)
        assert names(base) == ["1", "2", "3"]


def test_export_dupn_prunes_each_part_keeping_pins_of_any(tiny, tmp_path, monkeypatch):
    """Each part is its own TF Serving model; a version pinned for one part is
    kept in all (an encoder and a scorer of one version belong together).
    (The split is stubbed: this checks the retention, not DUPN.)"""
    monkeypatch.setattr(
        "keras_mtl.serving.dupn.dupn_serving_models", lambda model: (tiny, tiny)
    )
    monkeypatch.setattr("keras_mtl.serving.dupn.dupn_group_scorers", lambda model: {})
    for part in km.serving.DUPN_PARTS:
        for version in (1, 2, 3):
            (tmp_path / part / str(version)).mkdir(parents=True)
    config = write_config(
        tmp_path / "models.config",
        [
            (tmp_path / "user_encoder", ""),
            (tmp_path / "scorer", "model_version_policy { specific { versions: 2 } }"),
        ],
    )
    paths = km.export_dupn(tiny, tmp_path, keep_versions=1, models_config=config)
    assert {part: path.name for part, path in paths.items()} == dict.fromkeys(
        km.serving.DUPN_PARTS, "4"
    )
    for part in km.serving.DUPN_PARTS:
        assert names(tmp_path / part) == ["2", "4"], part

    elsewhere = write_config(tmp_path / "elsewhere.config", [("/models/x", "")])
    with pytest.raises(
        ValueError, match="export_dupn: models_config .* serves no model at any of"
    ):
        km.export_dupn(tiny, tmp_path, keep_versions=1, models_config=elsewhere)
    with pytest.raises(ValueError, match="export_dupn: keep_versions"):
        km.export_dupn(tiny, tmp_path, keep_versions=0)
    # A part served by a `latest` policy of 2 needs 2 kept in every part.
    latest = write_config(
        tmp_path / "latest.config",
        [(tmp_path / "scorer", "model_version_policy { latest { num_versions: 2 } }")],
    )
    with pytest.raises(ValueError, match=r"export_dupn: keep_versions=1 would remove"):
        km.export_dupn(tiny, tmp_path, keep_versions=1, models_config=latest)
    for part in km.serving.DUPN_PARTS:
        assert names(tmp_path / part) == ["2", "4"], part


def test_export_dupn_gives_all_three_parts_the_next_version_of_any(
    tiny, tmp_path, monkeypatch
):
    """One version for the three parts: the one after the newest of any part.
    (The split is stubbed, as above; `tests/models/test_dupn.py` exports a
    trained DUPN.)"""
    monkeypatch.setattr(
        "keras_mtl.serving.dupn.dupn_serving_models", lambda model: (tiny, tiny)
    )
    monkeypatch.setattr("keras_mtl.serving.dupn.dupn_group_scorers", lambda model: {})
    (tmp_path / "scorer" / "4").mkdir(parents=True)
    paths = km.export_dupn(tiny, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in paths.values()) == [
        "full/5",
        "scorer/5",
        "user_encoder/5",
    ]
