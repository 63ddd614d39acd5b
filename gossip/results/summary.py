"""The run directory's two summaries as types: ``nodes/node-<i>.json`` and ``summary.json``, each written and read here.

A node writes its :class:`NodeSummary` as it ends; the launcher reads them (with the records) into the run's
:class:`RunSummary`, writes that, prints it as a table, and ``gossip report`` reads it back. One class per file
owns the file's keys: its ``to_dict`` is what lands on disk (JSON has no NaN: a non-finite number is written as
``null`` and read back as ``None``), its ``from_dict`` is the only reader, and a file that does not fit it is a
:class:`~gossip.errors.RunDirError`, not a ``KeyError`` three calls later. Users and tests read the same JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from gossip.errors import RunDirError
from gossip.results.rundir import write_json

__all__ = [
    "Attackers",
    "Divergence",
    "MergeAgreement",
    "NodeMerge",
    "NodeOutcome",
    "NodeProcess",
    "NodeSummary",
    "Rejoin",
    "RunSummary",
]


def _ints(values: Sequence[Any]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _read(path: Path, what: str) -> Mapping[str, Any]:
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
        return None if d is None else cls(int(d["round"]), _opt_float(d["loss"]))


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
            _ints(d["members"]),
            _ints(d["heard"]),
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
        }
        if self.mass is not None:
            out["mass"] = self.mass
        if self.choco_dense_rounds is not None:
            out["choco_dense_rounds"] = self.choco_dense_rounds
        if self.attack is not None:
            out["byzantine"] = {"attack": self.attack}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NodeProcess:
        return cls(
            rounds_skipped=int(d["rounds_skipped"]),
            diverged=Divergence.from_dict(d["diverged"]),
            bytes_sent=int(d["bytes_sent"]),
            bytes_received=int(d["bytes_received"]),
            rejected={str(k): int(v) for k, v in d["rejected"].items()},
            neighbours=_ints(d["neighbours"]),
            parameters=int(d["parameters"]),
            send_buffers_allocated=int(d["send_buffers_allocated"]),
            mode=str(d["mode"]),
            variance_layers=tuple(str(n) for n in d["variance_layers"]),
            accuracy_before_merge=_opt_float(d["accuracy_before_merge"]),
            merge=NodeMerge.from_dict(d["merge"]),
            peers_down=_ints(d["peers_down"]),
            peers_were_down=_ints(d["peers_were_down"]),
            resumed=Rejoin.from_dict(d["resumed"]),
            link_dropped=int(d["link_dropped"]),
            checkpoints_written=int(d["checkpoints_written"]),
            send_path=str(d["send_path"]),
            mass=_opt_float(d.get("mass")),
            choco_dense_rounds=int(d["choco_dense_rounds"]) if "choco_dense_rounds" in d else None,
            attack=str(d["byzantine"]["attack"]) if "byzantine" in d else None,
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
            _opt_float(d["accuracy"]),
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
            return cls.from_dict(_read(Path(path), "a node summary"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RunDirError(f"{path}: not a node summary gossip wrote ({type(exc).__name__}: {exc})") from None

    @property
    def rounds_reached(self) -> int:
        """The round the node got to: the rounds it ran plus those it skipped."""
        return self.rounds_completed + (self.process.rounds_skipped if self.process else 0)


@dataclass(frozen=True)
class NodeOutcome:
    """One node's line of ``summary.json`` (``per_node``): its own summary and records, folded into final figures."""

    node: int
    status: str  # a node summary's status, or "dead" when the node left none
    rounds_completed: int
    diverged: Divergence | None
    accuracy: float | None  # the merged model's when the merge ran, else the last evaluation's
    accuracy_before_merge: float | None
    merge_members: tuple[int, ...] | None
    merge_views_agree: bool | None
    test_loss: float | None
    consensus_distance: float | None  # in the last round
    bytes_sent: int
    bytes_received: int
    rejected: Mapping[str, int]
    missed: int  # neighbour models that missed their round
    rounds_skipped: int
    link_dropped: int
    peers_were_down: tuple[int, ...]
    model_hash: str | None
    byzantine: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "status": self.status,
            "rounds_completed": self.rounds_completed,
            "diverged": self.diverged.to_dict() if self.diverged else None,
            "accuracy": self.accuracy,
            "accuracy_before_merge": self.accuracy_before_merge,
            "merge_members": list(self.merge_members) if self.merge_members is not None else None,
            "merge_views_agree": self.merge_views_agree,
            "test_loss": self.test_loss,
            "consensus_distance": self.consensus_distance,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "rejected": dict(self.rejected),
            "missed": self.missed,
            "rounds_skipped": self.rounds_skipped,
            "link_dropped": self.link_dropped,
            "peers_were_down": list(self.peers_were_down),
            "model_hash": self.model_hash,
            "byzantine": self.byzantine,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NodeOutcome:
        members = d["merge_members"]
        views = d["merge_views_agree"]
        return cls(
            node=int(d["node"]),
            status=str(d["status"]),
            rounds_completed=int(d["rounds_completed"]),
            diverged=Divergence.from_dict(d["diverged"]),
            accuracy=_opt_float(d["accuracy"]),
            accuracy_before_merge=_opt_float(d["accuracy_before_merge"]),
            merge_members=_ints(members) if members is not None else None,
            merge_views_agree=bool(views) if views is not None else None,
            test_loss=_opt_float(d["test_loss"]),
            consensus_distance=_opt_float(d["consensus_distance"]),
            bytes_sent=int(d["bytes_sent"]),
            bytes_received=int(d["bytes_received"]),
            rejected={str(k): int(v) for k, v in d["rejected"].items()},
            missed=int(d["missed"]),
            rounds_skipped=int(d["rounds_skipped"]),
            link_dropped=int(d["link_dropped"]),
            peers_were_down=_ints(d["peers_were_down"]),
            model_hash=None if d["model_hash"] is None else str(d["model_hash"]),
            byzantine=bool(d["byzantine"]),
        )


@dataclass(frozen=True)
class Attackers:
    """``byzantine`` in ``summary.json``: the attacker nodes (left out of the accuracy figures) and their attack."""

    nodes: tuple[int, ...]
    attack: str

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": list(self.nodes), "attack": self.attack}

    @classmethod
    def from_dict(cls, value: Any) -> Attackers | None:
        """``None`` for a run without attackers; anything but ``{"nodes": [ids], "attack": name}`` is refused."""
        if value is None:
            return None
        nodes = value.get("nodes") if isinstance(value, Mapping) else None
        if not isinstance(nodes, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in nodes) or "attack" not in value:
            raise RunDirError(f'summary.json: \'byzantine\' should be {{"nodes": [attacker ids], "attack": name}}, got {value!r}')
        return cls(tuple(nodes), str(value["attack"]))


@dataclass(frozen=True)
class MergeAgreement:
    """The global merge across nodes (``summary.json`` keys of runs with ``[merge] enabled``): did the merged nodes
    end with one model, averaged over the same members?"""

    agreed: bool
    model_hash: str | None  # the one merged model, when they agreed
    members: tuple[int, ...] | None
    nodes: tuple[int, ...]  # the nodes that merged
    accuracy: float | None  # of the merged model, when they agreed
    accuracy_before_mean: float | None  # mean over the merged nodes of their accuracy before the merge

    def to_dict(self) -> dict[str, Any]:
        return {
            "merge_agreed": self.agreed,
            "merged_model_hash": self.model_hash,
            "merge_members": list(self.members) if self.members is not None else None,
            "merged_nodes": list(self.nodes),
            "merged_accuracy": self.accuracy,
            "accuracy_before_merge_mean": self.accuracy_before_mean,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MergeAgreement | None:
        if "merge_agreed" not in d:
            return None
        members = d["merge_members"]
        return cls(
            bool(d["merge_agreed"]),
            None if d["merged_model_hash"] is None else str(d["merged_model_hash"]),
            _ints(members) if members is not None else None,
            _ints(d["merged_nodes"]),
            _opt_float(d["merged_accuracy"]),
            _opt_float(d["accuracy_before_merge_mean"]),
        )


@dataclass(frozen=True)
class RunSummary:
    """``summary.json``: the run's facts, its accuracy over honest nodes, and one :class:`NodeOutcome` per node."""

    run_dir: str
    nodes: int
    topology: str
    rounds: int
    dataset: str
    model: str
    aggregation: str
    wall_time_s: float
    accuracy_mean: float | None  # over honest nodes (and the next three)
    accuracy_std: float | None
    accuracy_min: float | None
    accuracy_max: float | None
    accuracy_mean_all_nodes: float | None  # attackers included
    consensus_distance_honest: float | None  # RMS distance of the honest final models to their average
    byzantine: Attackers | None
    dead_nodes: tuple[int, ...]  # nodes that left no summary
    missed_messages: int
    rounds_skipped: int
    link_dropped: int
    mode: str
    schedule: str
    merge: MergeAgreement | None  # None: the run had no global merge
    per_node: tuple[NodeOutcome, ...]
    restarts: Mapping[int, int] = field(default_factory=dict)  # node → times the launcher restarted it (only nodes it did)

    # the plain keys, and how each is read back: text, counts, and numbers that may be null
    _SCALARS: ClassVar[dict[str, Callable[[Any], Any]]] = {
        **dict.fromkeys(("run_dir", "topology", "dataset", "model", "aggregation", "mode", "schedule"), str),
        **dict.fromkeys(("nodes", "rounds", "missed_messages", "rounds_skipped", "link_dropped"), int),
        "wall_time_s": float,
        **dict.fromkeys(
            ("accuracy_mean", "accuracy_std", "accuracy_min", "accuracy_max", "accuracy_mean_all_nodes", "consensus_distance_honest"),
            _opt_float,
        ),
    }

    @property
    def attackers(self) -> frozenset[int]:
        """The Byzantine nodes, left out of every accuracy figure but ``accuracy_mean_all_nodes``."""
        return frozenset(self.byzantine.nodes) if self.byzantine else frozenset()

    def to_dict(self) -> dict[str, Any]:
        return {
            **{key: getattr(self, key) for key in self._SCALARS},
            "byzantine": self.byzantine.to_dict() if self.byzantine else None,
            "dead_nodes": list(self.dead_nodes),
            **(self.merge.to_dict() if self.merge else {}),
            "per_node": [n.to_dict() for n in self.per_node],
            "restarts": {str(node): times for node, times in self.restarts.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSummary:
        scalars = {key: read(d[key]) for key, read in cls._SCALARS.items()}
        return cls(
            **scalars,
            byzantine=Attackers.from_dict(d["byzantine"]),
            dead_nodes=_ints(d["dead_nodes"]),
            merge=MergeAgreement.from_dict(d),
            per_node=tuple(NodeOutcome.from_dict(n) for n in d["per_node"]),
            restarts={int(k): int(v) for k, v in d["restarts"].items()},
        )

    def write(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def read(cls, path: str | Path) -> RunSummary:
        """The summary in ``path``; RunDirError when it is not one the launcher wrote."""
        try:
            return cls.from_dict(_read(Path(path), "a run summary"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RunDirError(f"{path}: not a run summary gossip wrote ({type(exc).__name__}: {exc})") from None
