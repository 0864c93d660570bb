"""Atomic file writing: a file is either absent, the old version, or complete.

Every writer goes through a temporary file in the destination's folder (same file
system, so the rename is atomic), flushes and fsyncs it, then ``os.replace``s it onto
the destination. A failure or an exception inside the block removes the temporary; a
process killed mid-write leaves only a temporary, whose name holds :data:`TMP_MARK`, and
:func:`remove_temporaries` clears those on the next run.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import IO, Any, Iterator

TMP_MARK = ".tmp-"


def _temp_file(path: str) -> str:
    """A new empty temp file beside ``path``, with the permissions a plain ``open`` would give."""
    folder, base = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}{TMP_MARK}", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files
    return tmp


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temp file name beside ``path`` for a writer that opens files by name
    (e.g. ``tf.io.TFRecordWriter``); renames it onto ``path`` only if the block succeeds."""
    path = os.fspath(path)
    tmp = _temp_file(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Opens a temp file beside ``path`` (mode "w" or "wb"; text is UTF-8); the block's
    writes replace ``path`` only if it succeeds."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> None:
    """Writes ``obj`` as JSON (UTF-8, non-ASCII kept, trailing newline) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def remove_temporaries(folder: str | os.PathLike) -> None:
    """Deletes the temporaries a killed run left in ``folder`` (they are never valid output)."""
    folder = os.fspath(folder)
    if os.path.isdir(folder):
        for entry in os.listdir(folder):
            if TMP_MARK in entry:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(folder, entry))
