"""Checkpoint: a node's parameter vector and round in one atomic file, so a stopped node leaves its state behind.

What is saved, and why this shape:

- ``vector`` (the flat parameter vector of :mod:`gossip.learn.flat`), ``round`` (rounds completed) and
  ``fingerprint`` (the model layout's 16-byte fingerprint, so a checkpoint is never loaded into another
  model), as members of one numpy ``.npz`` archive: one file holds all three, so they cannot disagree.
- Every member is written by numpy's ``.npy`` writer with ``allow_pickle=False`` and read back with
  ``allow_pickle=False``: no pickle anywhere, and a tampered file cannot run code.
- The file is written to a temporary name, fsynced and renamed (:func:`gossip.results.rundir.atomic_write_bytes`):
  a node killed mid-write leaves the previous checkpoint whole.

The node writes one every ``[training] checkpoint_every`` rounds, when it stops (SIGTERM) and when it
finishes training (before the global merge: the checkpoint is the training state, the merged model is
``node-<i>.npy``). ``gossip node --resume`` (and ``gossip launch --resume``) start from it.

Besides the vector, ``extras`` holds what the node's *local* training needs to continue exactly where it
stopped: the optimiser's state (momentum buffers, Adam moments and step) and the batch generator's
state and position (``gossip.learn.trainer.LocalTrainer.state``), as members named ``x.<name>`` — numeric
arrays only. A node resumed from a checkpoint takes the same next steps it would have taken; what
differs from an uninterrupted run is only what the network did meanwhile (models it missed).
"""

from __future__ import annotations

import io
import logging
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from gossip.errors import ConfigError
from gossip.results.rundir import NodeFiles, atomic_write_bytes

if TYPE_CHECKING:
    from gossip.node.core import NodeCore

__all__ = ["Checkpoint", "Checkpointer", "load", "save"]

log = logging.getLogger("gossip.node")

_MEMBERS = ("vector", "round", "fingerprint")
_EXTRA = "x."


@dataclass(frozen=True)
class Checkpoint:
    """A node's state at the end of a round."""

    vector: np.ndarray  # 1-D float parameter vector, gossip.learn.flat layout
    round: int  # rounds completed when it was written
    fingerprint: bytes  # gossip.learn.flat layout fingerprint (16 bytes)
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)  # local training state (gossip.learn.trainer)


def save(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically (whole file or nothing)."""
    arrays = {
        "vector": np.ascontiguousarray(checkpoint.vector).reshape(-1),
        "round": np.asarray(checkpoint.round, dtype=np.int64),
        "fingerprint": np.frombuffer(checkpoint.fingerprint, dtype=np.uint8),
        **{f"{_EXTRA}{name}": np.asarray(value) for name, value in checkpoint.extras.items()},
    }
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load(path: str | Path, fingerprint: bytes | None = None) -> Checkpoint:
    """Read a checkpoint; refuse (one-line :class:`ConfigError`) a damaged file or one of another model."""
    p = Path(path)
    try:
        # Read the bytes first: np.load leaks its file handle when the archive turns out to be damaged.
        with np.load(io.BytesIO(p.read_bytes()), allow_pickle=False) as archive:
            missing = [m for m in _MEMBERS if m not in archive.files]
            if missing:
                raise ConfigError(f"checkpoint {p}: not a gossip checkpoint (no {', '.join(missing)})")
            vector, round_, fp = archive["vector"], archive["round"], archive["fingerprint"]
            extras = {name[len(_EXTRA) :]: archive[name] for name in archive.files if name.startswith(_EXTRA)}
    except FileNotFoundError:
        raise ConfigError(f"checkpoint {p} does not exist") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"checkpoint {p} is damaged: {exc}") from None
    if vector.ndim != 1 or round_.shape != () or fp.dtype != np.uint8 or fp.shape != (16,):
        raise ConfigError(f"checkpoint {p}: members have the wrong shapes")
    found = fp.tobytes()
    if fingerprint is not None and found != fingerprint:
        raise ConfigError(f"checkpoint {p} belongs to another model (fingerprint {found.hex()}, expected {fingerprint.hex()})")
    if any(a.dtype.kind not in "biuf" for a in extras.values()):
        raise ConfigError(f"checkpoint {p}: training state members must be numeric arrays")
    return Checkpoint(vector, int(round_), found, extras)


class Checkpointer:
    """When a running node writes its checkpoint, and how it starts from one (the plan's ``resume``)."""

    def __init__(self, core: NodeCore) -> None:
        self.core = core
        self._at = time.monotonic()  # the start counts: the first periodic checkpoint comes an interval in
        self.written = 0

    def due(self, files: NodeFiles | None, t: int) -> None:
        """After round ``t``: a checkpoint every ``checkpoint_every`` rounds, at least ``checkpoint_interval_s`` apart."""
        training = self.core.cfg.training
        every = training.checkpoint_every
        if (
            files
            and every
            and (t + 1) % every == 0
            and t + 1 < training.rounds
            and (time.monotonic() - self._at >= training.checkpoint_interval_s)
        ):
            self.save(files)

    def save(self, files: NodeFiles) -> None:
        core = self.core
        state = Checkpoint(core.flat.vector.cpu().numpy(), core.round, core.flat.layout.fingerprint, core.trainer.state())
        save(files.checkpoint, state)
        self._at = time.monotonic()
        self.written += 1

    def restore(self) -> int:
        """Load the plan's checkpoint, if any, into the model; returns the round to start from."""
        core = self.core
        saved = core.plan.resume
        if saved is None:
            return 0
        core.flat.vector.copy_(torch.from_numpy(np.ascontiguousarray(saved.vector, dtype=np.float32)))
        try:
            core.trainer.load_state(saved.extras)
        except (ValueError, RuntimeError, KeyError) as exc:
            raise ConfigError(f"node {core.id}: its checkpoint's training state does not fit: {exc}") from None
        start = min(saved.round, core.cfg.training.rounds)
        core.round = start
        if core.cfg.training.mode == "sync":
            core.inbox.advance(start, until=core.horizon(start))
        log.info("node %s: resuming from its checkpoint of round %d", core.id, saved.round)
        return start
