"""The run directory: where a run's config, per-node records and summary live, written so nothing tears.

Layout::

    RUN_DIR/
      config.toml            the resolved config every node ran with (addresses and ports included)
      topology.json          the exact graph, as the nodes read it (generators are seeded, but a file removes all doubt)
      topology.graphml       the same graph for people and tools (yEd, Gephi, NetworkX)
      data.npz               the dataset, generated once by the launcher and read by every node (none for a lazy
                             plug-in dataset: each node reads its own part through the loader, gossip.data.source)
      shards.npz             the launcher's split of the training set: node i reads part_i (no need to recompute it)
      nodes/node-<i>.jsonl   one JSON object per round: loss, accuracy, consensus distance, bytes, times
      nodes/node-<i>.json    the node's final summary (written once, atomically)
      nodes/node-<i>.npy     the node's final parameter vector (numpy format, no pickle)
      nodes/node-<i>.ckpt.npz  the node's checkpoint: vector, round, fingerprint (gossip.node.checkpoint)
      nodes/node-<i>.premerge.npy  with [merge] enabled: the vector that went into the global merge
      nodes/node-<i>.log     the node process's stderr/stdout
      summary.json           the run summary the launcher writes at the end
      prometheus/            scrape config (prometheus.yml) and rules/ for this run's metrics ports;
                             data/ (the TSDB) and prometheus.log when launched with --prometheus
      report/                PNG plots and report.md (gossip report; gossip launch unless --no-report)

A JSONL record is written with a single ``write`` of a complete line and flushed; readers ignore a
trailing partial line, so a process killed mid-write loses at most its last record, never corrupts
earlier ones. Whole files are written to a temporary name and renamed (atomic on POSIX).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["NodeFiles", "atomic_write_bytes", "atomic_write_text", "keep_records_before", "read_jsonl", "write_json"]


class NodeFiles:
    """Paths of one node's files inside a run directory."""

    def __init__(self, run_dir: str | Path, node: int) -> None:
        self.dir = Path(run_dir) / "nodes"
        self.node = node
        self.records = self.dir / f"node-{node}.jsonl"
        self.summary = self.dir / f"node-{node}.json"
        self.model = self.dir / f"node-{node}.npy"
        self.checkpoint = self.dir / f"node-{node}.ckpt.npz"
        self.premerge = self.dir / f"node-{node}.premerge.npy"  # the model before the global merge
        self.log = self.dir / f"node-{node}.log"


class RecordWriter:
    """Append-only JSONL writer: one complete line per ``write`` call, in one ``write(2)`` on an O_APPEND file.

    Unbuffered on purpose: a buffered text file splits a line longer than its buffer into several
    system calls, and a reader (the launcher's progress, a resume) could see half a line.
    """

    def __init__(self, path: Path, truncate: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "wb" if truncate else "ab", buffering=0)

    def write(self, record: Mapping[str, Any]) -> None:
        try:  # the common case: plain finite floats, no numpy scalars; _jsonable's walk costs more than the dump
            line = json.dumps(record, separators=(",", ":"), allow_nan=False)
        except (ValueError, TypeError):
            line = json.dumps(_jsonable(record), separators=(",", ":"))
        data = memoryview((line + "\n").encode("utf-8"))
        while data:  # a regular file takes it in one call; the loop only covers a short write (disk full)
            written = self._fh.write(data)
            data = data[written or 0 :]

    def close(self) -> None:
        self._fh.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every complete record of a JSONL file; a torn last line (killed writer) is ignored."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def keep_records_before(path: str | Path, round_: int) -> int:
    """Cut a node's JSONL back to its records of rounds ``< round_``; returns how many were kept.

    For a resumed node: records written after its checkpoint are replayed (or skipped) from the
    checkpoint on, so they must go, and a torn last line (a writer killed mid-line) goes with them.
    The file is rewritten atomically, so a crash here leaves either the old file or the new one.
    """
    p = Path(path)
    if not p.exists():
        return 0
    kept: list[bytes] = []
    for line in p.read_bytes().splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # torn: the writer died mid-line
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        if not isinstance(record, dict) or not isinstance(record.get("round"), int) or record["round"] >= round_:
            break
        kept.append(line)
    atomic_write_bytes(p, b"".join(kept))
    return len(kept)


def iter_new_records(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Records appended since byte ``offset``; returns them and the new offset (complete lines only)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], offset
    records = []
    for line in chunk[: end + 1].splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records, offset + end + 1


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a whole file or nothing: temp file, fsync, rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def save_vector(path: str | Path, vector: np.ndarray) -> None:
    """Save a parameter vector in .npy format, atomically (np.load reads it with allow_pickle=False)."""
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(vector), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def load_vector(path: str | Path) -> np.ndarray:
    vector: np.ndarray = np.load(path, allow_pickle=False)
    return vector


def _jsonable(obj: Any) -> Any:
    """JSON has no NaN: non-finite floats become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    return obj


def records_by_node(run_dir: str | Path) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(node id, records) for every node of a run, in node order."""
    nodes = Path(run_dir) / "nodes"
    files = sorted(nodes.glob("node-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))
    for f in files:
        yield int(f.stem.split("-")[1]), read_jsonl(f)
