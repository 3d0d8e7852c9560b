"""TF Serving's configuration files: `models.config` and batching parameters.

Both are ASCII (text format) protocol buffers, built here from the protos (so a
written file parses by construction) and written atomically (a temporary file
renamed into place), since TF Serving can poll a config file for changes
(`--model_config_file_poll_wait_seconds`) and must never read half of one.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence

from keras_mtl._checks import check_int_at_least, check_positive_int
from keras_mtl.serving._files import write_atomically
from keras_mtl.serving.dupn import DUPN_PARTS


@dataclasses.dataclass(frozen=True)
class ServedModel:
    """One model of a TF Serving `models.config`: a name, a base path, and which
    versions to serve.

    TF Serving's "Serving Configuration" guide: by default the server serves
    the version with the largest number (`latest`, 1 version); `versions`
    (policy `specific`) pins versions, e.g. a known good one for a rollback or
    two at once for a canary; `all_versions` serves every version found.
    `labels` name versions ("stable", "canary") so clients can ask for
    `/v1/models/<name>/labels/<label>` and the label can move without telling
    them. TF Serving assigns a label only to a version that is loaded (unless
    started with `--allow_version_labels_for_unavailable_models`), so with a
    `specific` policy each label must name one of its versions.

    Args:
        name: the model's name in requests (`/v1/models/<name>`, the gRPC
            `model_spec.name`); non-empty, no whitespace or '/'.
        base_path: the directory holding the model's version directories, as
            the server sees it (e.g. `/models/esmm` in a container). A relative
            path is made absolute against the current directory; a URI
            (`gs://…`, `s3://…`) is kept as is.
        versions: versions to serve (policy `specific`), or None.
        latest: serve the newest `latest` versions (policy `latest`), or None.
        all_versions: serve every version (policy `all`). Defaults to False.
        labels: `{label: version}`. Defaults to none.

    At most one of `versions`, `latest` and `all_versions` may be given; with
    none, the config has no `model_version_policy` and TF Serving serves the
    newest version.

    Example:
    >>> ServedModel("ctr", "/models/ctr", versions=(4, 3), labels={"stable": 3})
    ServedModel(name='ctr', base_path='/models/ctr', versions=(3, 4),
                latest=None, all_versions=False, labels={'stable': 3})
    """

    name: str
    base_path: str | os.PathLike
    versions: Sequence[int] | None = None
    latest: int | None = None
    all_versions: bool = False
    labels: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        name = self.name
        if (
            not isinstance(name, str)
            or not name
            or any(c.isspace() or c == "/" for c in name)
        ):
            raise ValueError(
                "ServedModel: name must be a non-empty string without whitespace "
                f"or '/', got {name!r}."
            )
        owner = f"ServedModel {name!r}"
        if not isinstance(self.base_path, (str, os.PathLike)) or not os.fspath(
            self.base_path
        ):
            raise ValueError(
                f"{owner}: base_path must be a non-empty path, got {self.base_path!r}."
            )
        base_path = os.fspath(self.base_path)
        if "://" not in base_path:
            base_path = os.path.abspath(base_path)
        object.__setattr__(self, "base_path", base_path)

        if not isinstance(self.all_versions, bool):
            raise ValueError(
                f"{owner}: all_versions must be a bool, got {self.all_versions!r}."
            )
        policies = [
            arg
            for arg, value in (
                ("versions", self.versions),
                ("latest", self.latest),
                ("all_versions", self.all_versions or None),
            )
            if value is not None
        ]
        if len(policies) > 1:
            raise ValueError(
                f"{owner}: give at most one version policy, got {' and '.join(policies)}."
            )
        check_positive_int(owner, "latest", self.latest, allow_none=True)
        if self.versions is not None:
            if isinstance(self.versions, (str, bytes)) or not isinstance(
                self.versions, Iterable
            ):
                raise ValueError(
                    f"{owner}: versions must be a sequence of positive ints, got "
                    f"{self.versions!r}."
                )
            versions = [check_positive_int(owner, "versions", v) for v in self.versions]
            if not versions or len(set(versions)) != len(versions):
                raise ValueError(
                    f"{owner}: versions must be distinct and at least one, got "
                    f"{self.versions!r}."
                )
            object.__setattr__(self, "versions", tuple(sorted(versions)))
        if not isinstance(self.labels, Mapping):
            raise ValueError(
                f"{owner}: labels must be a mapping {{label: version}}, got "
                f"{self.labels!r}."
            )
        labels = {}
        for label, version in self.labels.items():
            if (
                not isinstance(label, str)
                or not label
                or any(c.isspace() or c == "/" for c in label)
            ):
                raise ValueError(
                    f"{owner}: labels keys must be non-empty strings without "
                    f"whitespace or '/', got {label!r}."
                )
            labels[label] = check_positive_int(owner, f"labels[{label!r}]", version)
            if self.versions is not None and version not in self.versions:
                raise ValueError(
                    f"{owner}: labels[{label!r}] is version {version}, which its "
                    f"versions {self.versions} do not serve (TF Serving labels "
                    "only loaded versions)."
                )
        object.__setattr__(self, "labels", labels)

    def to_proto(self):
        """This model as a `tensorflow.serving.ModelConfig` proto."""
        from tensorflow_serving.config import model_server_config_pb2

        config = model_server_config_pb2.ModelConfig(
            name=self.name, base_path=self.base_path, model_platform="tensorflow"
        )
        policy = config.model_version_policy
        if self.versions is not None:
            policy.specific.versions.extend(self.versions)
        elif self.latest is not None:
            policy.latest.num_versions = self.latest
        elif self.all_versions:
            policy.all.SetInParent()
        for label, version in sorted(self.labels.items()):
            config.version_labels[label] = version
        return config


def models_config(models: Iterable[ServedModel]) -> str:
    """The text of a TF Serving `models.config` serving `models`.

    TF Serving reads it with `--model_config_file=<path>` (then
    `--model_name` / `--model_base_path` are ignored): an ASCII
    `ModelServerConfig` proto whose `model_config_list` holds one `config`
    per model (name, base_path, model_platform "tensorflow", an optional
    `model_version_policy` and `version_labels`). Each time the server reloads
    the file it serves exactly the models in it, unloading the others.

    Args:
        models: `ServedModel`s with distinct names (e.g. an ESMM plus DUPN's
            user encoder and scorer, `dupn_models`).

    Returns:
        The `ModelServerConfig` in protobuf text format.

    Example:
    >>> print(models_config([
    ...     ServedModel("esmm", "/models/esmm", latest=2),
    ...     ServedModel("ctr", "/models/ctr", versions=[3, 4],
    ...                 labels={"stable": 3, "canary": 4}),
    ... ]))
    model_config_list {
      config {
        name: "esmm"
        base_path: "/models/esmm"
        model_platform: "tensorflow"
        model_version_policy {
          latest {
            num_versions: 2
          }
        }
      }
      config {
        name: "ctr"
        base_path: "/models/ctr"
        model_platform: "tensorflow"
        model_version_policy {
          specific {
            versions: 3
            versions: 4
          }
        }
        version_labels {
          key: "canary"
          value: 4
        }
        version_labels {
          key: "stable"
          value: 3
        }
      }
    }
    <BLANKLINE>
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    if isinstance(models, ServedModel):
        models = [models]
    models = list(models)
    if not models:
        raise ValueError("models_config: models must hold at least one ServedModel.")
    seen = set()
    config = model_server_config_pb2.ModelServerConfig()
    for model in models:
        if not isinstance(model, ServedModel):
            raise ValueError(
                f"models_config: models must be ServedModels, got {model!r}."
            )
        if model.name in seen:
            raise ValueError(f"models_config: two models are named {model.name!r}.")
        seen.add(model.name)
        config.model_config_list.config.append(model.to_proto())
    return text_format.MessageToString(config)


def write_models_config(
    path: str | os.PathLike, models: Iterable[ServedModel]
) -> pathlib.Path:
    """Write `models_config(models)` to `path`, atomically.

    Args:
        path: the file to write (e.g. `models/models.config`); its directory
            is created.
        models: as in `models_config`.

    Returns:
        `path` as a `pathlib.Path`.

    Example:
    >>> import shutil, tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> path = write_models_config(f"{tmp}/models.config",
    ...                            [ServedModel("ctr", "/models/ctr")])
    >>> print(path.read_text())
    model_config_list {
      config {
        name: "ctr"
        base_path: "/models/ctr"
        model_platform: "tensorflow"
      }
    }
    <BLANKLINE>
    >>> shutil.rmtree(tmp)
    """
    return _write_atomically(path, models_config(models))


def dupn_models(
    base_dir: str | os.PathLike,
    name_prefix: str = "dupn",
    *,
    parts: Sequence[str] = DUPN_PARTS,
    versions: Sequence[int] | None = None,
    latest: int | None = None,
    all_versions: bool = False,
    labels: Mapping[str, int] | None = None,
) -> list[ServedModel]:
    """The parts of a DUPN export (`export_dupn`) as served models.

    `export_dupn(model, base_dir)` writes `full`, `user_encoder` and `scorer`
    under `base_dir`, each a TF Serving model of the same versions; this names
    them `<name_prefix>_<part>` with one version policy and labels for all, so
    a request's encoder and scorer calls can use the same version (or label).

    Args:
        base_dir: the `base_dir` given to `export_dupn`, as the server sees it.
        name_prefix: prefix of the model names. Defaults to "dupn".
        parts: which of `DUPN_PARTS` to serve. Defaults to all three; a
            server that only ranks candidates needs `("user_encoder", "scorer")`.
        versions, latest, all_versions, labels: the version policy and labels
            of every part, as in `ServedModel`.

    Returns:
        One `ServedModel` per part, in the order of `parts`.

    Example:
    >>> [(m.name, m.base_path) for m in dupn_models(
    ...     "/models/dupn", parts=("user_encoder", "scorer"))]
    [('dupn_user_encoder', '/models/dupn/user_encoder'),
     ('dupn_scorer', '/models/dupn/scorer')]
    """
    if isinstance(parts, str):
        parts = (parts,)
    unknown = [p for p in parts if p not in DUPN_PARTS]
    if unknown or not parts or len(set(parts)) != len(parts):
        raise ValueError(
            f"dupn_models: parts must be distinct names among {DUPN_PARTS}, got "
            f"{tuple(parts)!r}."
        )
    if not isinstance(name_prefix, str) or not name_prefix:
        raise ValueError(
            f"dupn_models: name_prefix must be a non-empty string, got {name_prefix!r}."
        )
    base = pathlib.Path(base_dir) if "://" not in os.fspath(base_dir) else None
    return [
        ServedModel(
            f"{name_prefix}_{part}",
            base / part if base is not None else f"{os.fspath(base_dir)}/{part}",
            versions=versions,
            latest=latest,
            all_versions=all_versions,
            labels=labels or {},
        )
        for part in parts
    ]


def batching_parameters(
    max_batch_size: int = 1024,
    batch_timeout_micros: int = 0,
    max_enqueued_batches: int | None = None,
    num_batch_threads: int = 2,
    allowed_batch_sizes: Sequence[int] | None = None,
    pad_variable_length_inputs: bool = False,
) -> str:
    """The text of TF Serving's `--batching_parameters_file` (`BatchingParameters`).

    TF Serving batches requests when started with `--enable_batching`, one
    scheduler for all models and versions, tuned by this file. What its
    batching guide says of the parameters: `max_batch_size` governs the
    throughput / latency trade-off (and a single request of more rows is
    refused, "Task size … is larger than maximum batch size …", so it must be
    at least the largest request, e.g. a DUPN candidate list);
    `batch_timeout_micros` is the longest a batch waits to fill up;
    `num_batch_threads` is how many batches run at once; `max_enqueued_batches`
    bounds the queue, turning away requests rather than building a backlog.
    For a CPU-only server the guide suggests starting from `num_batch_threads`
    = the number of cores, a large `max_batch_size` and `batch_timeout_micros`
    = 0, then trying 1000-10000 µs ("0 may be the optimal value"), and for
    online serving `max_enqueued_batches` = `num_batch_threads`. The defaults
    here are that start for a 2-core server. `allowed_batch_sizes` pads each
    batch up to the next listed size (increasing, the last equal to
    `max_batch_size`).

    Args:
        max_batch_size: positive int. Defaults to 1024.
        batch_timeout_micros: int >= 0. Defaults to 0.
        max_enqueued_batches: positive int, or None (the default) for
            `num_batch_threads`.
        num_batch_threads: positive int. Defaults to 2.
        allowed_batch_sizes: increasing positive ints ending at
            `max_batch_size`, or None (the default: any size).
        pad_variable_length_inputs: pad variable-length inputs when a batch is
            formed. Defaults to False.

    Returns:
        The `BatchingParameters` in protobuf text format.

    Example:
    >>> print(batching_parameters(max_batch_size=512, batch_timeout_micros=1000))
    max_batch_size {
      value: 512
    }
    batch_timeout_micros {
      value: 1000
    }
    max_enqueued_batches {
      value: 2
    }
    num_batch_threads {
      value: 2
    }
    <BLANKLINE>
    """
    from google.protobuf import text_format

    owner = "batching_parameters"
    max_batch_size = check_positive_int(owner, "max_batch_size", max_batch_size)
    batch_timeout_micros = check_int_at_least(
        owner, "batch_timeout_micros", batch_timeout_micros, 0
    )
    num_batch_threads = check_positive_int(
        owner, "num_batch_threads", num_batch_threads
    )
    if max_enqueued_batches is None:
        max_enqueued_batches = num_batch_threads
    max_enqueued_batches = check_positive_int(
        owner, "max_enqueued_batches", max_enqueued_batches
    )
    if not isinstance(pad_variable_length_inputs, bool):
        raise ValueError(
            f"{owner}: pad_variable_length_inputs must be a bool, got "
            f"{pad_variable_length_inputs!r}."
        )
    message = batching_parameters_class()()
    message.max_batch_size.value = max_batch_size
    message.batch_timeout_micros.value = batch_timeout_micros
    message.max_enqueued_batches.value = max_enqueued_batches
    message.num_batch_threads.value = num_batch_threads
    if allowed_batch_sizes is not None:
        sizes = [
            check_positive_int(owner, "allowed_batch_sizes", s)
            for s in allowed_batch_sizes
        ]
        if (
            not sizes
            or any(a >= b for a, b in zip(sizes, sizes[1:]))
            or sizes[-1] != max_batch_size
        ):
            raise ValueError(
                f"{owner}: allowed_batch_sizes must be increasing and end at "
                f"max_batch_size={max_batch_size}, got {list(allowed_batch_sizes)!r}."
            )
        message.allowed_batch_sizes.extend(sizes)
    message.pad_variable_length_inputs = pad_variable_length_inputs
    return text_format.MessageToString(message)


def write_batching_parameters(path: str | os.PathLike, **parameters) -> pathlib.Path:
    """Write `batching_parameters(**parameters)` to `path`, atomically.

    Pass the file to TF Serving with `--enable_batching
    --batching_parameters_file=<path>`.

    Args:
        path: the file to write (e.g. `models/batching.config`); its directory
            is created.
        **parameters: as in `batching_parameters`.

    Returns:
        `path` as a `pathlib.Path`.

    Example:
    >>> import shutil, tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> path = write_batching_parameters(f"{tmp}/batching.config")
    >>> path.read_text().splitlines()[:2]
    ['max_batch_size {', '  value: 1024']
    >>> shutil.rmtree(tmp)
    """
    return _write_atomically(path, batching_parameters(**parameters))


@functools.cache
def batching_parameters_class():
    """The `tensorflow.serving.BatchingParameters` message class.

    From `tensorflow_serving.servables.tensorflow.session_bundle_config_pb2` if
    installed; the `tensorflow-serving-api` wheel ships only the `apis` and
    `config` protos, so otherwise from a copy of the message's fields (names,
    numbers and types as in TF Serving's `session_bundle_config.proto`) in a
    private descriptor pool. Parse a file back with
    `text_format.Parse(text, batching_parameters_class()())`.
    """
    try:
        from tensorflow_serving.servables.tensorflow import (  # type: ignore
            session_bundle_config_pb2,
        )
    except ImportError:
        pass
    else:
        return session_bundle_config_pb2.BatchingParameters

    from google.protobuf import (
        descriptor_pb2,
        descriptor_pool,
        message_factory,
        wrappers_pb2,
    )

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="keras_mtl/serving/batching_parameters.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = proto.message_type.add(name="BatchingParameters")
    wrapped = [
        ("max_batch_size", 1, "Int64Value"),
        ("batch_timeout_micros", 2, "Int64Value"),
        ("max_enqueued_batches", 3, "Int64Value"),
        ("num_batch_threads", 4, "Int64Value"),
        ("thread_pool_name", 5, "StringValue"),
    ]
    for name, number, wrapper in wrapped:
        message.field.add(
            name=name,
            number=number,
            label=field.LABEL_OPTIONAL,
            type=field.TYPE_MESSAGE,
            type_name=f".google.protobuf.{wrapper}",
        )
    message.field.add(
        name="allowed_batch_sizes",
        number=6,
        label=field.LABEL_REPEATED,
        type=field.TYPE_INT64,
    )
    message.field.add(
        name="pad_variable_length_inputs",
        number=7,
        label=field.LABEL_OPTIONAL,
        type=field.TYPE_BOOL,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    )


def _write_atomically(path: str | os.PathLike, text: str) -> pathlib.Path:
    """Write `text` to `path` atomically (`_files.write_atomically`)."""

    def write(tmp: str) -> None:
        pathlib.Path(tmp).write_text(text, encoding="utf-8")

    return write_atomically(path, write)
