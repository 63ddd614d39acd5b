"""Reading the files a user points gossip at: regular files only, within a size cap, JSON within a nesting cap.

A file named in a config or on the command line can be anything: a FIFO (reading it blocks until
someone writes), ``/dev/zero`` (it never ends), a directory, or a regular file of many gigabytes. Each
reader states the most it will read, and :func:`read_capped` checks the file's type and size *before*
reading and then reads at most that much, so a wrong path costs one line and no memory. Structured
formats also get a cap on what parsing them can build: :func:`load_json` refuses, before ``json.loads``
sees it, a document nested deeper than its cap (Python's decoder recurses once per level) or holding
more values than its cap (each costs tens of bytes once decoded, a kilobyte file can cost megabytes).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from gossip.errors import GossipError

__all__ = ["clip", "load_json", "open_capped", "quote", "read_capped", "size_text"]

# A JSON string, escapes included: removed before counting brackets, so '"[[["' is not nesting.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = frozenset(b"[]{}")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)


def size_text(nbytes: int) -> str:
    """``64 MiB``, ``512 KiB``, ``12 bytes``: a cap or a size as people read it."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            value = nbytes / (1 << shift)
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{nbytes} bytes"


def clip(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters: an error message shows what it refuses, never all of it."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def quote(text: str, limit: int = 60) -> str:
    """``repr(text)``, cut like :func:`clip` (the repr of the first ``limit`` characters only: cheap on any size)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text):,} characters)"


def open_capped(path: str | Path, max_bytes: int, error: type[GossipError], what: str) -> BinaryIO:
    """``path`` opened for binary reading, or ``error`` with one line when it is missing, not a regular file,
    or larger than ``max_bytes``. The caller closes it (``with open_capped(...) as handle``).

    The type and size come from ``fstat`` on the opened descriptor (no window between the check and the
    read), and the open does not block (``O_NONBLOCK``: a FIFO would otherwise wait for a writer).
    ``what`` names the file in messages: ``"topology file"`` gives ``topology file not found: PATH``.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd)
        if stat.S_ISDIR(mode.st_mode):
            raise error(f"{what} {path} is a directory, not a file")
        if not stat.S_ISREG(mode.st_mode):
            raise error(f"{what} {path} is not a regular file (a FIFO, socket or device); refusing to read it")
        if mode.st_size > max_bytes:
            raise error(f"{what} {path} is {size_text(mode.st_size)}, larger than {size_text(max_bytes)}, the most gossip reads")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_capped(path: str | Path, max_bytes: int, error: type[GossipError], what: str) -> bytes:
    """The bytes of the regular file ``path``, checked as :func:`open_capped` does; the read stops at
    ``max_bytes + 1`` whatever ``fstat`` said (a file that grows while we read it)."""
    chunks: list[bytes] = []
    with open_capped(path, max_bytes, error, what) as handle:
        # read(n) allocates n bytes up front: ask for the size fstat gives (plus one, to see the end), not the
        # cap, then on in small chunks for a file that is longer than it said (those in /proc say 0)
        want, have = min(os.fstat(handle.fileno()).st_size, max_bytes) + 1, 0
        try:
            while have <= max_bytes and (chunk := handle.read(min(want, max_bytes + 1 - have))):
                chunks.append(chunk)
                have += len(chunk)
                want = 1 << 16
        except OSError as exc:
            raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    data = b"".join(chunks) if len(chunks) != 1 else chunks[0]
    if len(data) > max_bytes:
        raise error(f"{what} {path} holds more than {size_text(max_bytes)}, the most gossip reads")
    return data


def load_json(data: bytes, *, max_depth: int, max_values: int, error: type[GossipError], where: str) -> Any:
    """``json.loads(data)`` once a scan has shown it nests at most ``max_depth`` deep and holds at most
    ``max_values`` containers and commas (a bound on the values it decodes to).

    The scan works on a copy of ``data`` with its strings emptied, at C speed (a regular expression, a
    byte translation and a numpy cumulative sum over the brackets alone), so it costs a fraction of the
    decode it guards. Any malformed document is ``error``, one line, starting with ``where`` (e.g. ``cannot read
    t.json as JSON``).
    """
    skeleton = _JSON_STRING.sub(b'""', data)
    brackets = skeleton.translate(None, _NOT_BRACKETS)
    opened = skeleton.count(b"[") + skeleton.count(b"{")
    if opened + skeleton.count(b",") > max_values:
        raise error(f"{where}: more than {max_values:,} values; refusing to decode it")
    if brackets:
        steps = np.frombuffer(brackets, dtype=np.uint8)
        depth = int(np.cumsum(np.where((steps == ord("[")) | (steps == ord("{")), 1, -1), dtype=np.int64).max())
        if depth > max_depth:
            raise error(f"{where}: nested {depth} deep, deeper than {max_depth}")
    try:
        return json.loads(data)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise error(f"{where}: {clip(str(exc), 120)}") from None
