"""Version retention: keep the newest N exported versions and every pinned one.

TF Serving serves the versions under a model's base path that its version
policy selects (by default the highest one) and ignores directories whose names
are not integers, such as the hidden staging directories `export_saved_model`
writes into before renaming. Old versions pile up: `prune_versions` removes all
but the newest `keep`, sparing the versions a `models.config` still pins.
"""

from __future__ import annotations

import math
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterable

from keras_mtl._checks import check_positive_int


def version_dirs(base_dir: str | os.PathLike) -> dict[int, pathlib.Path]:
    """`{version: path}` of the integer version directories under `base_dir`.

    Only directories named by ASCII digits count (TF Serving's versions);
    hidden directories (a name starting with '.', e.g. a staging directory) and
    files never do.

    Args:
        base_dir: a model's base path; a missing directory has no versions.

    Returns:
        A dict, ascending by version.

    Example:
    >>> import shutil, tempfile
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("1", "10", "2", ".3.tmp-x", "notes"):
    ...     (base / name).mkdir()
    >>> list(version_dirs(base))
    [1, 2, 10]
    >>> shutil.rmtree(base)
    """
    base = pathlib.Path(base_dir)
    if not base.is_dir():
        return {}
    found = {
        int(p.name): p
        for p in base.iterdir()
        if p.name.isascii() and p.name.isdigit() and p.is_dir()
    }
    return dict(sorted(found.items()))


def prune_versions(
    base_dir: str | os.PathLike, keep: int, pinned: Iterable[int] = ()
) -> list[int]:
    """Remove the older version directories of `base_dir`, keeping the newest `keep`.

    The newest version and every version in `pinned` are never removed, so
    more than `keep` versions may remain. Each removed directory is first
    renamed to a hidden name (atomic: a server polling `base_dir` sees the
    version vanish at once, never half deleted) and then deleted. Hidden
    directories (names starting with '.') and non-integer names are never
    touched.

    Args:
        base_dir: a model's base path in TF Serving's layout.
        keep: positive int, how many of the newest versions to keep.
        pinned: versions to keep whatever their age (e.g. from
            `pinned_versions`). Defaults to none.

    Returns:
        The removed versions, ascending.

    Example:
    >>> import shutil, tempfile
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> for version in range(1, 6):
    ...     (base / str(version)).mkdir()
    >>> prune_versions(base, keep=2, pinned={1})
    [2, 3]
    >>> sorted(p.name for p in base.iterdir())
    ['1', '4', '5']
    >>> shutil.rmtree(base)
    """
    keep = check_positive_int("prune_versions", "keep", keep)
    pinned = {check_positive_int("prune_versions", "pinned", v) for v in pinned}
    versions = version_dirs(base_dir)
    kept = set(list(versions)[-keep:]) | pinned
    removed = [v for v in versions if v not in kept]
    for version in removed:
        path = versions[version]
        doomed = tempfile.mkdtemp(prefix=f".{path.name}.del-", dir=path.parent)
        os.rename(path, pathlib.Path(doomed) / path.name)
        shutil.rmtree(doomed)
    return removed


def pinned_versions(
    models_config: str | os.PathLike, base_dir: str | os.PathLike
) -> set[int]:
    """The versions of `base_dir` that a TF Serving `models.config` pins.

    The file is TF Serving's `--model_config_file`, an ASCII `ModelServerConfig`
    protocol buffer with a `model_config_list` (TF Serving's "Serving
    Configuration" guide). A version is pinned by a model config whose
    `base_path` is `base_dir` and that either lists it in a
    `model_version_policy { specific { versions: N } }` (the guide's way to pin
    a known good version for a rollback, or to serve several for a canary), or
    maps a label to it in `version_labels` (labels may only name versions that
    are loaded, so removing one would break the label's traffic).

    Paths are compared after resolving them (a relative `base_path` against the
    current directory). A config that lists no model at `base_dir` is an error
    rather than "nothing pinned": it usually names the path the server sees
    (e.g. `/models/ctr` inside a container) and not the one exported to, and
    pruning against it would remove versions the server may still serve.

    Args:
        models_config: path of the `models.config` file.
        base_dir: the model's base path, as exported to.

    Returns:
        The pinned versions (empty if the model's config pins none).

    Example:
    >>> import shutil, tempfile
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (tmp / "models.config").write_text(f'''
    ... model_config_list {{
    ...   config {{
    ...     name: "ctr"
    ...     base_path: "{tmp / 'ctr'}"
    ...     model_platform: "tensorflow"
    ...     model_version_policy {{ specific {{ versions: 3 versions: 4 }} }}
    ...     version_labels {{ key: "stable" value: 3 }}
    ...   }}
    ... }}''')
    >>> sorted(pinned_versions(tmp / "models.config", tmp / "ctr"))
    [3, 4]
    >>> shutil.rmtree(tmp)
    """
    config = load_models_config(models_config)
    return _pins(config, models_config, [base_dir], "pinned_versions")


def load_models_config(models_config: str | os.PathLike):
    """The `ModelServerConfig` proto read from a `models.config` text file;
    ValueError naming the file if it does not parse."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = pathlib.Path(models_config)
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(path.read_text(encoding="utf-8"), config)
    except text_format.ParseError as error:
        raise ValueError(
            f"models_config {str(path)!r} is not a TF Serving ModelServerConfig "
            f"text proto: {error}"
        ) from error
    return config


def versions_pinned_in(config, base_dir: str | os.PathLike) -> set[int] | None:
    """The versions of `base_dir` pinned by a `ModelServerConfig` proto, or None
    if none of its models has `base_dir` as base path."""
    matching = _models_at(config, base_dir)
    if not matching:
        return None
    pinned = set()
    for model in matching:
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") == "specific":
            pinned.update(policy.specific.versions)
        pinned.update(model.version_labels.values())
    return {v for v in pinned if v > 0}


def _models_at(config, base_dir) -> list:
    base = pathlib.Path(base_dir).resolve()
    models = config.model_config_list.config
    return [m for m in models if pathlib.Path(m.base_path).resolve() == base]


def _newest_served(config, base_dir) -> float:
    """How many of the newest versions of `base_dir` the config serves: a
    `latest` policy's `num_versions` (1 without a policy, TF Serving's
    default), every version (inf) for `all`, none for `specific` (its pins)."""
    needed = 0.0
    for model in _models_at(config, base_dir):
        policy = model.model_version_policy
        kind = policy.WhichOneof("policy_choice")
        if kind == "all":
            needed = math.inf
        elif kind != "specific":
            needed = max(needed, policy.latest.num_versions or 1)
    return needed


def _pins(config, path, bases: list, owner: str, keep: int | None = None) -> set[int]:
    """The versions `config` (read from `path`) pins for any of `bases`; an
    error if it serves none of them, or if it serves more of the newest
    versions of one (a `latest` or `all` policy) than `keep` would leave."""
    found = [versions_pinned_in(config, base) for base in bases]
    if all(pins is None for pins in found):
        listed = [m.base_path for m in config.model_config_list.config]
        where = [str(pathlib.Path(b).resolve()) for b in bases]
        where = repr(where[0]) if len(where) == 1 else f"any of {where}"
        raise ValueError(
            f"{owner}: models_config {str(path)!r} serves no model at {where} (its "
            f"base_paths: {listed}). Pass the config that serves this directory, "
            "with the base_path as this process sees it."
        )
    for base in bases:
        needed = _newest_served(config, base)
        if keep is not None and needed > keep:
            served = "every version" if math.isinf(needed) else f"{needed:.0f}"
            raise ValueError(
                f"{owner}: keep_versions={keep} would remove versions that "
                f"models_config {str(path)!r} serves at "
                f"{str(pathlib.Path(base).resolve())!r} (its policy serves the "
                f"newest {served}); keep at least that many, or pin versions "
                "with a `specific` policy."
            )
    return set().union(*(pins for pins in found if pins is not None))


def check_retention(
    bases: list,
    keep_versions: int | None,
    models_config: str | os.PathLike | None,
    owner: str = "export_saved_model",
) -> set[int]:
    """Check the retention arguments of an export to the model directories
    `bases` (before it writes anything) and return the versions
    `models_config` pins for any of them (empty without a config)."""
    check_positive_int(owner, "keep_versions", keep_versions, allow_none=True)
    if models_config is None:
        return set()
    config = load_models_config(models_config)
    return _pins(config, models_config, bases, owner, keep_versions)
