"""benchmarks/large_vocab.py --quick end to end: its table matches its JSON rows,
the keras-mtl contenders run row-wise with XLA, and every export is lean."""

import json
import re

import pytest

from benchmarks.large_vocab import main


@pytest.mark.slow  # six subprocesses, each importing TensorFlow
def test_quick_run_prints_one_row_per_contender(tmp_path, capsys):
    out_json = tmp_path / "rows.json"
    assert main(["--quick", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    rows = {r["key"]: r for r in json.loads(out_json.read_text())}
    assert sorted(rows) == [
        "farmhash_200k",
        "hash_200k",
        "plain_200k",
        "vocab_1k",
        "vocab_200k",
    ]
    for key, r in rows.items():
        row_wise = not key.startswith(("plain", "farmhash"))
        assert r["optimizer_class"] == ("RowWiseOptimizer" if row_wise else "Adam")
        # Only Keras's string-based Hashing keeps XLA off.
        assert r["jit_compile"] is (key != "farmhash_200k"), key
        assert r["steps"] == (5 if row_wise else 2)
        assert r["examples_per_s"] == pytest.approx(1024 / r["step_ms"] * 1000)
        # A Zipf batch of 1024 ids touches far fewer distinct rows.
        assert 10 < r["distinct_items_per_batch"] < 600, r["distinct_items_per_batch"]
        line = re.search(rf"^\| adam \| {key} \|.*$", out, re.M)
        assert line, out
        assert f"{r['examples_per_s']:,.0f}" in line.group(0)
    for key in ("vocab_200k", "hash_200k", "plain_200k"):
        # 200k x 16 float32 = 12.8 MB of table; the graph adds well under 5%.
        assert rows[key]["param_bytes"] <= rows[key]["export_bytes"]
        assert rows[key]["export_bytes"] <= 1.05 * rows[key]["param_bytes"], key
        # Adam's two slots of the big table, row-wise or plain: 3x the table.
        table = (200_000 + (key != "hash_200k")) * 16 * 4
        assert rows[key]["table_and_slot_bytes"] == 3 * table, key
