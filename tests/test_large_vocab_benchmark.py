"""benchmarks/large_vocab.py --quick end to end: its table matches its JSON rows,
the keras-mtl contenders (string ids included) run row-wise with XLA, and every
export is lean."""

import json
import re

import pytest

from benchmarks.large_vocab import main


@pytest.mark.slow  # one subprocess (--quick: --one-child) training eight models
def test_quick_run_prints_one_row_per_contender(tmp_path, capsys):
    out_json = tmp_path / "rows.json"
    assert main(["--quick", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    rows = {r["key"]: r for r in json.loads(out_json.read_text())}
    assert sorted(rows) == [
        "farmhash_200k",
        "hash_200k",
        "plain_200k",
        "strhash_200k",
        "strvocab_1k",
        "strvocab_ingraph_1k",
        "vocab_1k",
        "vocab_200k",
    ]
    for key, r in rows.items():
        baseline = key.startswith(("plain", "farmhash"))
        row_wise = not baseline and key != "strvocab_ingraph_1k"  # (a plain Model)
        assert r["optimizer_class"] == ("RowWiseOptimizer" if row_wise else "Adam")
        # Keras's Hashing on ints, and string lookups inside the step, keep XLA
        # off; string lookups beside the step (MultiTaskModel's) do not.
        xla_off = ("farmhash_200k", "strvocab_ingraph_1k")
        assert r["jit_compile"] is (key not in xla_off), key
        assert r["steps"] == (2 if baseline else 5)
        assert r["examples_per_s"] == pytest.approx(1024 / r["step_ms"] * 1000)
        # A Zipf batch of 1024 ids touches far fewer distinct rows.
        assert 10 < r["distinct_items_per_batch"] < 600, r["distinct_items_per_batch"]
        line = re.search(rf"^\| adam \| {key} \|.*$", out, re.M)
        assert line, out
        assert f"{r['examples_per_s']:,.0f}" in line.group(0)
    for key in ("vocab_200k", "hash_200k", "plain_200k", "strhash_200k"):
        # 200k x 16 float32 = 12.8 MB of table; the graph adds well under 5%.
        assert rows[key]["param_bytes"] <= rows[key]["export_bytes"]
        assert rows[key]["export_bytes"] <= 1.05 * rows[key]["param_bytes"], key
        # Adam's two slots of the big table, row-wise or plain: 3x the table.
        table = (200_000 + key.startswith(("vocab", "plain"))) * 16 * 4
        assert rows[key]["table_and_slot_bytes"] == 3 * table, key


def test_ratio_lines_hold_jax_to_1_5x_and_state_torch():
    from benchmarks.large_vocab import _ratio_lines

    def row(key, ms):
        return {"key": key, "step_ms": ms, "optimizer_class": "RowWiseOptimizer"}

    rows = [row("vocab_100k", 10.0), row("vocab_10m", 16.0), row("plain_10m", 500.0)]
    (jax,) = _ratio_lines("jax", "adam", rows)
    assert jax == (
        "- jax, adam: vocab_10m / vocab_100k = 1.60× (RowWiseOptimizer); "
        "MISSES ≤ 1.5×; plain optimizer: 50.00×"
    )
    (torch,) = _ratio_lines("torch", "adam", rows[:2])
    assert torch == "- torch, adam: vocab_10m / vocab_100k = 1.60× (RowWiseOptimizer)"
    assert "meets ≤ 1.5×" in _ratio_lines("tensorflow", "adam", rows[:1] * 2)[0]


@pytest.mark.slow  # two subprocesses (JAX, torch) training two small models each
def test_quick_run_on_jax_and_torch_is_row_wise(tmp_path, capsys):
    out_json = tmp_path / "rows.json"
    argv = ["--quick", "--backends", "jax,torch", "--no-baselines"]
    assert main([*argv, "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out_json.read_text())
    assert [(r["backend"], r["key"]) for r in rows] == [
        ("jax", "vocab_1k"),
        ("jax", "vocab_200k"),
        ("torch", "vocab_1k"),
        ("torch", "vocab_200k"),
    ]
    for r in rows:
        assert r["optimizer_class"] == "RowWiseOptimizer"
        assert r["jit_compile"] is (r["backend"] == "jax")  # (torch: eager)
        assert r["export_bytes"] is None  # (the export is TensorFlow's)
    for backend in ("jax", "torch"):
        assert re.search(rf"^- {backend}, adam: vocab_200k / vocab_1k = ", out, re.M)
