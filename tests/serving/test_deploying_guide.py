"""The README's deployer's guide works: its export block runs, and its curl
request bodies and gRPC code, sent to the TF Serving stand-in serving that
export, get the exported model's answers."""

import json
import math
import pathlib
import re

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # an export and a server process

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def guide_block(marker: str) -> str:
    """The fenced block after `<!-- deploy: marker -->` in the README."""
    text = README.read_text()
    match = re.search(
        rf"<!-- deploy: {marker} -->\n```\w*\n(.*?)\n```", text, re.DOTALL
    )
    assert match, f"README has no block marked deploy: {marker}"
    return match.group(1)


def curl_requests() -> list[tuple[str, dict]]:
    """`(path, body)` of each `curl ... localhost:8501<path> -d '<body>'`."""
    found = re.findall(
        r"curl -s localhost:8501(\S+) -d '(.*?)'", guide_block("requests")
    )
    return [(path, json.loads(body)) for path, body in found]


@pytest.fixture(scope="module")
def guide(tmp_path_factory, tf_serving_standin, monkeypatch_module):
    workdir = tmp_path_factory.mktemp("guide")
    monkeypatch_module.chdir(workdir)
    namespace = {}
    exec(guide_block("export"), namespace)  # noqa: S102 - the README's own code
    config = (workdir / "saved_models" / "models.config").read_text()
    assert 'base_path: "/models/shop"' in config and 'key: "stable"' in config
    # The config names /models/shop as a container sees it; here the stand-in
    # serves the same directory under the same name and label.
    local = workdir / "local.config"
    local.write_text(
        config.replace("/models/shop", str(workdir / "saved_models" / "shop"))
    )
    return namespace, tf_serving_standin(model_config_file=local)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def model_inputs(columns: dict) -> dict:
    """The guide's raw columns as the model takes them (lists padded to 5)."""
    tags = [row + [""] * (5 - len(row)) for row in columns["tags"]]
    return {
        "city": np.array(columns["city"]),
        "item": np.array(columns["item"], np.int64),
        "tags": np.array(tags),
        "price": np.array(columns["price"], np.float32),
        "age": np.array(columns["age"], np.float32),
    }


def test_the_export_block_writes_version_1_with_its_warm_up(guide):
    namespace, _ = guide
    import keras_mtl as km

    served = km.serving.read_warmup_requests(pathlib.Path("saved_models/shop/1"))
    assert sorted({name for name, _ in served}) == [
        "ranking_score",
        "serving_default",
        "serving_examples",
    ]
    assert "model" in namespace


def test_the_curl_bodies_get_the_models_answers(guide):
    import urllib.request

    namespace, server = guide
    model = namespace["model"]
    requests = curl_requests()
    assert len(requests) == 3
    for path, body in requests:
        request = urllib.request.Request(
            server.rest_url + path, data=json.dumps(body).encode()
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        if "instances" in body:
            columns = {k: [row[k] for row in body["instances"]] for k in model.input}
            got = {k: [row[k] for row in answer["predictions"]] for k in ("ctr", "cvr")}
        else:
            columns = body["inputs"]
            got = answer["outputs"]
        want = model.predict(model_inputs(columns), verbose=0)
        if body.get("signature_name") == "ranking_score":
            # One output: TF Serving leaves it unwrapped.
            np.testing.assert_allclose(got, want["ctr"] * want["cvr"], atol=1e-5)
            continue
        for task in ("ctr", "cvr"):
            np.testing.assert_allclose(got[task], want[task], atol=1e-5)
    # The missing age went as NaN, which JSON allows only as TF Serving reads it.
    assert math.isnan(requests[1][1]["inputs"]["age"][0])


def test_the_grpc_code_gets_the_models_answer(guide, capsys):
    namespace, server = guide
    code = guide_block("grpc").replace("localhost:8500", server.grpc_target)
    exec(code, {})  # noqa: S102 - the README's own code
    printed = capsys.readouterr().out
    got = np.array(re.findall(r"[-\d.e]+", printed), np.float32)
    x = {"city": ["rome"], "item": [42], "tags": [["red", "sale"]]}
    x.update(price=[[9.5, 1.0]], age=[31.0])
    want = namespace["model"].predict(model_inputs(x), verbose=0)["ctr"]
    np.testing.assert_allclose(got, want, atol=1e-5)
