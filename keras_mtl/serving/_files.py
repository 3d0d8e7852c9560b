"""Files a server reads: written atomically, with the modes the umask gives."""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Callable


def umask() -> int:
    """The process's umask (read by setting it, then restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(
    path: str | os.PathLike, write: Callable[[str], None]
) -> pathlib.Path:
    """`write(temporary path)`, then rename the file into place at `path`, so a
    server polling the directory never reads half a file. The file gets the
    mode a plain `open` gives (0644 under umask 022; mkstemp's 0600 would hide
    it from a server running as another user)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path
