"""`download_file`: progress on a fake clock (each reading 2 s after the last),
from a local file:// URL (no network)."""

import io

import pytest

from keras_mtl.datasets._download import download_file, keras_home


def fake_clock():
    ticks = iter(range(0, 1000, 2))
    return lambda: next(ticks)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "source.bin"
    path.write_bytes(bytes(range(256)) * 1171 + bytes(224))  # 300,000 bytes
    return path


def test_a_line_at_most_every_interval_outside_a_terminal(source, tmp_path):
    """5 chunks of 65,536 bytes (the last 37,856). Clock: start 0, chunks end at
    2, 4, 6 (6 s since the last line: a line), 8, 10; the end reads 12."""
    out = io.StringIO()
    target = tmp_path / "cache" / "file.zip"
    path = download_file(source.as_uri(), target, stream=out, clock=fake_clock())
    assert path == target and target.read_bytes() == source.read_bytes()
    assert out.getvalue().splitlines() == [
        f"downloading {source.as_uri()} (0.3 MB) to {target}",
        "  0.2 MB of 0.3 MB (66%), 6 s",
        "  downloaded 0.3 MB in 12.0 s",
    ]
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.zip"]
    # Kept: a second call neither downloads nor prints.
    again = io.StringIO()
    assert download_file("file:///nowhere", target, stream=again) == target
    assert again.getvalue() == ""


def test_a_failed_download_leaves_no_file(tmp_path):
    target = tmp_path / "file.zip"
    with pytest.raises(OSError):
        download_file((tmp_path / "absent").as_uri(), target, stream=io.StringIO())
    assert list(tmp_path.iterdir()) == []


def test_keras_home(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_home() == tmp_path
