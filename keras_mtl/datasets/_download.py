"""Downloads that say how far they are: bytes of the total on standard error,
one line at most every 5 s outside a terminal (a log file, a notebook, a pipe),
one updating line in a terminal."""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable


def keras_home() -> pathlib.Path:
    """Keras's cache directory, where `keras.utils.get_file` puts downloads:
    `$KERAS_HOME`, else `~/.keras` (`/tmp/.keras` when home is not writable)."""
    if os.environ.get("KERAS_HOME"):
        return pathlib.Path(os.environ["KERAS_HOME"])
    home = os.path.expanduser("~")
    return pathlib.Path(home if os.access(home, os.W_OK) else "/tmp", ".keras")


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def download_file(
    url: str,
    target: str | os.PathLike,
    *,
    stream=None,
    clock: Callable[[], float] | None = None,
    interval: float | None = None,
    chunk_size: int = 1 << 16,
) -> pathlib.Path:
    """`url` saved as `target` (kept: a second call downloads nothing), with
    progress on `stream`.

    The file appears only when complete (written beside it, then renamed).

    Args:
        url: str. What to download.
        target: str or path-like. The file to write.
        stream: file or None. Where progress goes; None: `sys.stderr`.
            Defaults to None.
        clock: callable or None. Seconds on a monotonic clock (tests pass a
            fake one). Defaults to `time.monotonic`.
        interval: float or None. Seconds between progress lines; None: 0.5 in a
            terminal (one line, rewritten), 5 elsewhere. Defaults to None.
        chunk_size: int. Bytes read at a time. Defaults to 65536.

    Returns:
        The `target` path.
    """
    target = pathlib.Path(target)
    if target.is_file():
        return target
    stream = stream or sys.stderr
    clock = clock or time.monotonic
    isatty = getattr(stream, "isatty", None)
    terminal = bool(isatty is not None and isatty())
    if interval is None:
        interval = 0.5 if terminal else 5.0
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(prefix=f".{target.name}.part-", dir=target.parent)
    try:
        with urllib.request.urlopen(url) as response, os.fdopen(fd, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            size = f" ({_megabytes(total)})" if total else ""
            print(f"downloading {url}{size} to {target}", file=stream, flush=True)
            start = last = clock()
            done = 0
            while chunk := response.read(chunk_size):
                out.write(chunk)
                done += len(chunk)
                now = clock()
                if now - last >= interval:
                    last = now
                    line = f"  {_megabytes(done)}"
                    if total:
                        line += f" of {_megabytes(total)} ({100 * done / total:.0f}%)"
                    line += f", {now - start:.0f} s"
                    print(line, end="\r" if terminal else "\n", file=stream, flush=True)
            seconds = clock() - start
        os.replace(part, target)
    except BaseException:
        pathlib.Path(part).unlink(missing_ok=True)
        raise
    end = " " * 20 + "\n" if terminal else "\n"  # (over a rewritten line)
    print(
        f"  downloaded {_megabytes(done)} in {seconds:.1f} s",
        end=end,
        file=stream,
        flush=True,
    )
    return target
