"""TF Serving's config files: models.config and the batching parameters file
parse back into TF Serving's protos with the values given."""

import dataclasses
import os
import stat

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

import keras_mtl as km
from keras_mtl.serving.config import batching_parameters_class

ServedModel = km.serving.ServedModel


def parse_models_config(text):
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(text, config)
    return config


def policy_of(config):
    """`(kind, value)` of a ModelConfig's version policy."""
    policy = config.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "specific":
        return kind, list(policy.specific.versions)
    if kind == "latest":
        return kind, policy.latest.num_versions
    return kind, None


def test_esmm_and_dupn_parts_parse_back(tmp_path):
    models = [
        ServedModel("esmm", tmp_path / "esmm", latest=2),
        *km.serving.dupn_models(
            tmp_path / "dupn",
            parts=("user_encoder", "scorer"),
            versions=[4, 3],
            labels={"stable": 3, "canary": 4},
        ),
        ServedModel("mmoe", "gs://bucket/models/mmoe", all_versions=True),
        ServedModel("ple", "/models/ple"),
    ]
    config = parse_models_config(km.serving.models_config(models))
    configs = config.model_config_list.config
    assert [c.name for c in configs] == [
        "esmm",
        "dupn_user_encoder",
        "dupn_scorer",
        "mmoe",
        "ple",
    ]
    assert [c.base_path for c in configs] == [
        str(tmp_path / "esmm"),
        str(tmp_path / "dupn" / "user_encoder"),
        str(tmp_path / "dupn" / "scorer"),
        "gs://bucket/models/mmoe",
        "/models/ple",
    ]
    assert {c.model_platform for c in configs} == {"tensorflow"}
    assert [policy_of(c) for c in configs] == [
        ("latest", 2),
        ("specific", [3, 4]),
        ("specific", [3, 4]),
        ("all", None),
        (None, None),  # TF Serving's default: the newest version
    ]
    assert not configs[4].HasField("model_version_policy")
    assert [dict(c.version_labels) for c in configs] == [
        {},
        {"stable": 3, "canary": 4},
        {"stable": 3, "canary": 4},
        {},
        {},
    ]


def test_a_relative_base_path_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = ServedModel("ctr", "saved_models/ctr/")
    assert model.base_path == str(tmp_path / "saved_models" / "ctr")
    assert ServedModel("ctr", "s3://b/ctr").base_path == "s3://b/ctr"
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.name = "other"


def test_written_config_is_atomic_readable_and_pins_for_retention(tmp_path):
    base = tmp_path / "models" / "ctr"
    path = km.serving.write_models_config(
        tmp_path / "conf" / "models.config",
        [ServedModel("ctr", base, versions=[2, 5], labels={"stable": 2})],
    )
    assert path == tmp_path / "conf" / "models.config"
    assert [p.name for p in path.parent.iterdir()] == ["models.config"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    text = path.read_text()
    assert text == km.serving.models_config(
        [ServedModel("ctr", base, versions=[2, 5], labels={"stable": 2})]
    )
    assert km.serving.pinned_versions(path, base) == {2, 5}


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name=""), r"ServedModel: name must be a non-empty string"),
        (dict(name="my model"), r"without whitespace or '/', got 'my model'"),
        (dict(base_path=""), r"ServedModel 'ctr': base_path must be a non-empty"),
        (dict(latest=0), r"ServedModel 'ctr': latest must be a positive int"),
        (dict(versions=[1, 1]), r"'ctr': versions must be distinct .* \[1, 1\]"),
        (dict(versions=[]), r"'ctr': versions must be distinct and at least one"),
        (dict(versions=[0]), r"'ctr': versions must be a positive int, got 0"),
        (dict(versions="12"), r"'ctr': versions must be a sequence"),
        (dict(versions=[1], latest=2), r"'ctr': give at most one .* versions and"),
        (dict(latest=1, all_versions=True), r"latest and all_versions"),
        (dict(all_versions="yes"), r"'ctr': all_versions must be a bool"),
        (dict(labels={"stable": 0}), r"labels\['stable'\] must be a positive int"),
        (dict(labels={"": 1}), r"'ctr': labels keys must be non-empty"),
        (dict(labels=[("stable", 1)]), r"'ctr': labels must be a mapping"),
        (
            dict(versions=[3, 4], labels={"canary": 5}),
            r"labels\['canary'\] is version 5, which its versions \(3, 4\) do not",
        ),
    ],
)
def test_served_model_errors_name_the_model_and_argument(kwargs, message):
    kwargs = {"name": "ctr", "base_path": "/models/ctr", **kwargs}
    with pytest.raises(ValueError, match=message):
        ServedModel(**kwargs)


def test_models_config_errors():
    ctr = ServedModel("ctr", "/models/ctr")
    with pytest.raises(ValueError, match="two models are named 'ctr'"):
        km.serving.models_config([ctr, ServedModel("ctr", "/models/other")])
    with pytest.raises(ValueError, match="at least one ServedModel"):
        km.serving.models_config([])
    with pytest.raises(ValueError, match=r"must be ServedModels, got \('ctr', "):
        km.serving.models_config([("ctr", "/models/ctr")])
    # One ServedModel alone is a list of one.
    assert km.serving.models_config(ctr) == km.serving.models_config([ctr])


def test_dupn_models_defaults_and_errors():
    models = km.serving.dupn_models("/models/dupn", "rank", latest=1)
    assert [(m.name, m.base_path, m.latest) for m in models] == [
        ("rank_full", "/models/dupn/full", 1),
        ("rank_user_encoder", "/models/dupn/user_encoder", 1),
        ("rank_scorer", "/models/dupn/scorer", 1),
    ]
    assert km.serving.dupn_models("gs://b/dupn", parts="scorer")[0].base_path == (
        "gs://b/dupn/scorer"
    )
    with pytest.raises(ValueError, match=r"dupn_models: parts .* got \('encoder',\)"):
        km.serving.dupn_models("/models/dupn", parts=["encoder"])
    with pytest.raises(ValueError, match=r"dupn_models: name_prefix"):
        km.serving.dupn_models("/models/dupn", "")


def parse_batching(text):
    message = batching_parameters_class()()
    text_format.Parse(text, message)
    return message


def test_batching_parameters_parse_back():
    defaults = parse_batching(km.serving.batching_parameters())
    assert defaults.max_batch_size.value == 1024
    assert defaults.HasField("batch_timeout_micros")  # 0, written explicitly
    assert defaults.batch_timeout_micros.value == 0
    assert defaults.num_batch_threads.value == 2
    assert defaults.max_enqueued_batches.value == 2  # = num_batch_threads
    assert list(defaults.allowed_batch_sizes) == []
    assert defaults.pad_variable_length_inputs is False
    assert not defaults.HasField("thread_pool_name")

    text = km.serving.batching_parameters(
        max_batch_size=256,
        batch_timeout_micros=2000,
        max_enqueued_batches=100,
        num_batch_threads=4,
        allowed_batch_sizes=[32, 128, 256],
        pad_variable_length_inputs=True,
    )
    parsed = parse_batching(text)
    assert (
        parsed.max_batch_size.value,
        parsed.batch_timeout_micros.value,
        parsed.max_enqueued_batches.value,
        parsed.num_batch_threads.value,
        list(parsed.allowed_batch_sizes),
        parsed.pad_variable_length_inputs,
    ) == (256, 2000, 100, 4, [32, 128, 256], True)
    assert "max_batch_size {\n  value: 256\n}\n" in text
    assert "allowed_batch_sizes: 32\n" in text


def test_the_batching_message_matches_tf_servings_proto():
    """Field names and numbers of `BatchingParameters` in TF Serving's
    session_bundle_config.proto, and its documented example file parses."""
    descriptor = batching_parameters_class().DESCRIPTOR
    assert descriptor.full_name == "tensorflow.serving.BatchingParameters"
    assert {f.name: f.number for f in descriptor.fields} == {
        "max_batch_size": 1,
        "batch_timeout_micros": 2,
        "max_enqueued_batches": 3,
        "num_batch_threads": 4,
        "thread_pool_name": 5,
        "allowed_batch_sizes": 6,
        "pad_variable_length_inputs": 7,
    }
    # The example of TF Serving's "Serving Configuration" guide.
    example = parse_batching(
        "max_batch_size { value: 128 }\n"
        "batch_timeout_micros { value: 0 }\n"
        "max_enqueued_batches { value: 1000000 }\n"
        "num_batch_threads { value: 8 }\n"
    )
    assert example.max_enqueued_batches.value == 1_000_000


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_batch_size=0), r"batching_parameters: max_batch_size must be"),
        (dict(batch_timeout_micros=-1), r"batch_timeout_micros must be an int >= 0"),
        (dict(num_batch_threads=1.5), r"num_batch_threads must be a positive int"),
        (dict(max_enqueued_batches=0), r"max_enqueued_batches must be a positive"),
        (
            dict(max_batch_size=64, allowed_batch_sizes=[8, 32]),
            r"allowed_batch_sizes must be increasing and end at max_batch_size=64",
        ),
        (
            dict(max_batch_size=64, allowed_batch_sizes=[32, 8, 64]),
            r"got \[32, 8, 64\]",
        ),
        (dict(allowed_batch_sizes=[]), r"allowed_batch_sizes must be increasing"),
        (dict(pad_variable_length_inputs=1), r"pad_variable_length_inputs must be"),
    ],
)
def test_batching_parameters_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        km.serving.batching_parameters(**kwargs)


def test_write_batching_parameters(tmp_path):
    path = km.serving.write_batching_parameters(
        tmp_path / "batching.config", max_batch_size=64, num_batch_threads=1
    )
    parsed = parse_batching(path.read_text())
    assert (parsed.max_batch_size.value, parsed.max_enqueued_batches.value) == (64, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["batching.config"]
