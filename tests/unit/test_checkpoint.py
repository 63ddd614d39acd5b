"""The checkpoint file: a round trip, atomic writes, and refusals of damaged or foreign files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from gossip.errors import ConfigError
from gossip.node import checkpoint

FP = bytes(range(16))


def _ckpt(n: int = 100, round_: int = 7) -> checkpoint.Checkpoint:
    return checkpoint.Checkpoint(np.random.default_rng(0).standard_normal(n).astype(np.float32), round_, FP)


def test_round_trip_is_exact(tmp_path: Path) -> None:
    """What is saved loads back bit for bit: vector, dtype, round and fingerprint."""
    saved = _ckpt()
    checkpoint.save(tmp_path / "c.npz", saved)
    loaded = checkpoint.load(tmp_path / "c.npz", fingerprint=FP)
    assert loaded.vector.dtype == np.float32
    assert loaded.vector.tobytes() == saved.vector.tobytes()
    assert (loaded.round, loaded.fingerprint) == (7, FP)


def test_save_replaces_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    """A second save replaces the first whole; no temporary file stays in the directory."""
    path = tmp_path / "c.npz"
    checkpoint.save(path, _ckpt(round_=1))
    checkpoint.save(path, _ckpt(round_=2))
    assert checkpoint.load(path).round == 2
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]


def test_another_models_checkpoint_is_refused(tmp_path: Path) -> None:
    """A fingerprint mismatch is one clear error, not a silently wrong model."""
    checkpoint.save(tmp_path / "c.npz", _ckpt())
    with pytest.raises(ConfigError, match="belongs to another model"):
        checkpoint.load(tmp_path / "c.npz", fingerprint=b"\xff" * 16)


@pytest.mark.parametrize("damage", ["truncated", "not-npz", "missing-member", "object-array"])
def test_damaged_files_are_refused(tmp_path: Path, damage: str) -> None:
    """Truncated, foreign, incomplete and pickled files end in ConfigError (never a pickle load)."""
    path = tmp_path / "c.npz"
    if damage == "truncated":
        checkpoint.save(path, _ckpt())
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "not-npz":
        path.write_bytes(b"hello, not a zip file")
    elif damage == "missing-member":
        np.savez(path, vector=np.zeros(3, np.float32))
    else:
        buf = io.BytesIO()
        np.savez(buf, vector=np.array([object()], dtype=object), round=np.int64(1), fingerprint=np.frombuffer(FP, np.uint8))
        path.write_bytes(buf.getvalue())
    with pytest.raises(ConfigError, match=r"checkpoint .*"):
        checkpoint.load(path)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    """A path that does not exist is named in the error."""
    with pytest.raises(ConfigError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.npz")


def test_records_are_cut_back_to_the_checkpoint_and_a_torn_line_is_dropped(tmp_path: Path) -> None:
    """keep_records_before keeps complete records of earlier rounds only: later rounds (to be redone after a
    resume) and a torn last line (a writer killed mid-line) are removed, and appending continues cleanly."""
    from gossip.results.rundir import RecordWriter, keep_records_before, read_jsonl

    path = tmp_path / "node-0.jsonl"
    writer = RecordWriter(path, truncate=True)
    for t in range(6):
        writer.write({"round": t, "loss": 1.0 / (t + 1)})
    writer.close()
    with open(path, "ab") as fh:
        fh.write(b'{"round":6,"lo')  # torn
    assert keep_records_before(path, 4) == 4
    assert [r["round"] for r in read_jsonl(path)] == [0, 1, 2, 3]
    writer = RecordWriter(path)
    writer.write({"round": 4})
    writer.close()
    assert [r["round"] for r in read_jsonl(path)] == [0, 1, 2, 3, 4]
    assert path.read_bytes().endswith(b"\n")
    with open(path, "ab") as fh:
        fh.write(b"garbage\n")
    assert keep_records_before(path, 100) == 5
    assert keep_records_before(tmp_path / "absent.jsonl", 3) == 0
