"""A node's own summary, ``nodes/node-<i>.json``, as a type: :class:`NodeSummary` and the parts it is made of.

Written by the node as it ends, read by the launcher into the run's :class:`~gossip.results.summary.RunSummary`;
the conventions (``to_dict`` is the file, ``from_dict`` its only reader, ``null`` for a non-finite number, a
:class:`~gossip.errors.RunDirError` for a file that does not fit) are :mod:`gossip.results.summary`'s. The
readers below are shared with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossip.errors import RunDirError
from gossip.results.rundir import write_json

__all__ = ["Divergence", "NodeMerge", "NodeProcess", "NodeSummary", "Rejoin"]


def ints(values: Sequence[Any]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def read_object(path: Path, what: str) -> Mapping[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, Mapping):
        raise RunDirError(f"{path}: not {what} (a JSON object)")
    return data


@dataclass(frozen=True)
class Divergence:
    """``diverged``: the round after which a node's model was no longer finite, and its training loss then."""

    round: int
    loss: float | None  # None: the loss was not finite either

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "loss": self.loss}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Divergence | None:
        return None if d is None else cls(int(d["round"]), opt_float(d["loss"]))


@dataclass(frozen=True)
class Rejoin:
    """``resumed``: a node restarted from its checkpoint of ``checkpoint_round`` and rejoined the run at ``joined_round``."""

    checkpoint_round: int
    joined_round: int

    def to_dict(self) -> dict[str, int]:
        return {"checkpoint_round": self.checkpoint_round, "joined_round": self.joined_round}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Rejoin | None:
        return None if d is None else cls(int(d["checkpoint_round"]), int(d["joined_round"]))


@dataclass(frozen=True)
class NodeMerge:
    """``merge`` in a node's summary: what its global merge averaged, and whether every view it saw agreed."""

    members: tuple[int, ...]  # the nodes averaged, sorted
    heard: tuple[int, ...]  # nodes whose model arrived here
    views_agree: bool
    hash: str  # of the merged model
    calibration_batches: int
    seconds: float
    phase_seconds: Mapping[str, float] = field(default_factory=dict)  # <phase>_s: written beside the others

    def to_dict(self) -> dict[str, Any]:
        fixed = {
            "members": list(self.members),
            "heard": list(self.heard),
            "views_agree": self.views_agree,
            "hash": self.hash,
            "calibration_batches": self.calibration_batches,
            "seconds": self.seconds,
        }
        return {**fixed, **self.phase_seconds}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> NodeMerge | None:
        if d is None:
            return None
        fixed = ("members", "heard", "views_agree", "hash", "calibration_batches", "seconds")
        phases = {k: float(v) for k, v in d.items() if k not in fixed}
        return cls(
            ints(d["members"]),
            ints(d["heard"]),
            bool(d["views_agree"]),
            str(d["hash"]),
            int(d["calibration_batches"]),
            float(d["seconds"]),
            phases,
        )


@dataclass(frozen=True)
class NodeProcess:
    """What a node process saw of its run: traffic, peers, merge, restarts. A simulated node has none of it."""

    rounds_skipped: int  # skipped to catch up with the neighbours (a resume, a pause, a lag)
    diverged: Divergence | None
    bytes_sent: int
    bytes_received: int
    rejected: Mapping[str, int]  # messages refused, by reason
    neighbours: tuple[int, ...]
    parameters: int
    send_buffers_allocated: int  # the snapshot pool: 0 below 32 MiB (clones), else a few, not one per round
    mode: str
    variance_layers: tuple[str, ...]
    accuracy_before_merge: float | None
    merge: NodeMerge | None
    peers_down: tuple[int, ...]  # neighbours missing at the end
    peers_were_down: tuple[int, ...]  # neighbours missing at some point
    resumed: Rejoin | None
    link_dropped: int  # messages this node's link emulation lost
    checkpoints_written: int
    send_path: str
    mass: float | None = None  # push-sum only: the node's mass at the end
    choco_dense_rounds: int | None = None  # CHOCO only: rounds sent in full (resyncs)
    attack: str | None = None  # a Byzantine node's attack (``byzantine: {"attack": ...}``)
    device: str = "cpu"  # where the node trained and mixed ("cpu", "cuda:1")
    precision: str = "fp32"  # the local steps' autocast ([training] precision)
    deterministic: bool = False  # whether torch ran with deterministic algorithms only
    gpu_memory_peak_bytes: int | None = None  # the most GPU memory torch held at once; absent on the CPU
    shared_memory: tuple[int, int] = (0, 0)  # models sent and received through same-host shared memory
    # open membership only: joins through this node, leaves, failures, neighbour changes, view size, the members it started from
    membership: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "rounds_skipped": self.rounds_skipped,
            "diverged": self.diverged.to_dict() if self.diverged else None,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "rejected": dict(self.rejected),
            "neighbours": list(self.neighbours),
            "parameters": self.parameters,
            "send_buffers_allocated": self.send_buffers_allocated,
            "mode": self.mode,
            "variance_layers": list(self.variance_layers),
            "accuracy_before_merge": self.accuracy_before_merge,
            "merge": self.merge.to_dict() if self.merge else None,
            "peers_down": list(self.peers_down),
            "peers_were_down": list(self.peers_were_down),
            "resumed": self.resumed.to_dict() if self.resumed else None,
            "link_dropped": self.link_dropped,
            "checkpoints_written": self.checkpoints_written,
            "send_path": self.send_path,
            "device": self.device,
            "precision": self.precision,
            "deterministic": self.deterministic,
            "shared_memory": {"sent": self.shared_memory[0], "received": self.shared_memory[1]},
        }
        if self.gpu_memory_peak_bytes is not None:
            out["gpu_memory_peak_bytes"] = self.gpu_memory_peak_bytes
        if self.mass is not None:
            out["mass"] = self.mass
        if self.choco_dense_rounds is not None:
            out["choco_dense_rounds"] = self.choco_dense_rounds
        if self.attack is not None:
            out["byzantine"] = {"attack": self.attack}
        if self.membership is not None:
            out["membership"] = dict(self.membership)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NodeProcess:
        return cls(
            rounds_skipped=int(d["rounds_skipped"]),
            diverged=Divergence.from_dict(d["diverged"]),
            bytes_sent=int(d["bytes_sent"]),
            bytes_received=int(d["bytes_received"]),
            rejected={str(k): int(v) for k, v in d["rejected"].items()},
            neighbours=ints(d["neighbours"]),
            parameters=int(d["parameters"]),
            send_buffers_allocated=int(d["send_buffers_allocated"]),
            mode=str(d["mode"]),
            variance_layers=tuple(str(n) for n in d["variance_layers"]),
            accuracy_before_merge=opt_float(d["accuracy_before_merge"]),
            merge=NodeMerge.from_dict(d["merge"]),
            peers_down=ints(d["peers_down"]),
            peers_were_down=ints(d["peers_were_down"]),
            resumed=Rejoin.from_dict(d["resumed"]),
            link_dropped=int(d["link_dropped"]),
            checkpoints_written=int(d["checkpoints_written"]),
            send_path=str(d["send_path"]),
            mass=opt_float(d.get("mass")),
            choco_dense_rounds=int(d["choco_dense_rounds"]) if "choco_dense_rounds" in d else None,
            attack=str(d["byzantine"]["attack"]) if "byzantine" in d else None,
            device=str(d.get("device", "cpu")),
            precision=str(d.get("precision", "fp32")),
            deterministic=bool(d.get("deterministic", False)),
            gpu_memory_peak_bytes=int(d["gpu_memory_peak_bytes"]) if "gpu_memory_peak_bytes" in d else None,
            membership=dict(d["membership"]) if "membership" in d else None,
            shared_memory=(int(d["shared_memory"]["sent"]), int(d["shared_memory"]["received"])) if "shared_memory" in d else (0, 0),
        )


@dataclass(frozen=True)
class NodeSummary:
    """``nodes/node-<i>.json``: how a node's run ended, written once by the node as it exits (its presence means
    the node's other files are whole)."""

    node: int
    status: str  # "finished" | "stopped" | "diverged"
    rounds_completed: int  # rounds run to the end, one record each (across restarts)
    accuracy: float | None  # of the final model (the merged one when the merge ran)
    model_hash: str
    process: NodeProcess | None = None  # None: no node process ran (gossip simulate)
    simulated: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {
            "node": self.node,
            "status": self.status,
            "rounds_completed": self.rounds_completed,
            "accuracy": self.accuracy,
            "model_hash": self.model_hash,
            **(self.process.to_dict() if self.process else {}),
        }
        if self.simulated:
            out["simulated"] = True
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NodeSummary:
        simulated = bool(d.get("simulated", False))
        return cls(
            int(d["node"]),
            str(d["status"]),
            int(d["rounds_completed"]),
            opt_float(d["accuracy"]),
            str(d["model_hash"]),
            None if simulated else NodeProcess.from_dict(d),
            simulated,
        )

    def write(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def read(cls, path: str | Path) -> NodeSummary:
        """The summary in ``path``; RunDirError when it is not one a node wrote."""
        try:
            return cls.from_dict(read_object(Path(path), "a node summary"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RunDirError(f"{path}: not a node summary gossip wrote ({type(exc).__name__}: {exc})") from None

    @property
    def device(self) -> str | None:
        """Where the node trained; None for a simulated node (no process of its own)."""
        return self.process.device if self.process else None

    @property
    def rounds_reached(self) -> int:
        """The round the node got to: the rounds it ran plus those it skipped."""
        return self.rounds_completed + (self.process.rounds_skipped if self.process else 0)
