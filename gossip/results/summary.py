"""The run directory's two summaries as types: ``nodes/node-<i>.json`` and ``summary.json``, each written and read here.

A node writes its :class:`NodeSummary` as it ends; the launcher reads them (with the records) into the run's
:class:`RunSummary`, writes that, prints it as a table, and ``gossip report`` reads it back. One class per file
owns the file's keys: its ``to_dict`` is what lands on disk (JSON has no NaN: a non-finite number is written as
``null`` and read back as ``None``), its ``from_dict`` is the only reader, and a file that does not fit it is a
:class:`~gossip.errors.RunDirError`, not a ``KeyError`` three calls later. Users and tests read the same JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from gossip.errors import RunDirError
from gossip.results.node_summary import Divergence, NodeMerge, NodeProcess, NodeSummary, Rejoin, ints, opt_float, read_object
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
    device: str | None = None  # where the node trained ("cpu", "cuda:1"); None: it left no summary

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
            "device": self.device,
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
            accuracy=opt_float(d["accuracy"]),
            accuracy_before_merge=opt_float(d["accuracy_before_merge"]),
            merge_members=ints(members) if members is not None else None,
            merge_views_agree=bool(views) if views is not None else None,
            test_loss=opt_float(d["test_loss"]),
            consensus_distance=opt_float(d["consensus_distance"]),
            bytes_sent=int(d["bytes_sent"]),
            bytes_received=int(d["bytes_received"]),
            rejected={str(k): int(v) for k, v in d["rejected"].items()},
            missed=int(d["missed"]),
            rounds_skipped=int(d["rounds_skipped"]),
            link_dropped=int(d["link_dropped"]),
            peers_were_down=ints(d["peers_were_down"]),
            model_hash=None if d["model_hash"] is None else str(d["model_hash"]),
            byzantine=bool(d["byzantine"]),
            device=None if d.get("device") is None else str(d["device"]),
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
class MetricInfo:
    """``metric`` in ``summary.json``: which metric the ``accuracy`` figures hold, and which way is better."""

    name: str = "accuracy"
    higher_is_better: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "higher_is_better": self.higher_is_better}

    @classmethod
    def from_dict(cls, value: Any) -> MetricInfo:
        """Absent: accuracy. Anything but ``{"name": str, "higher_is_better": bool}`` is refused."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping) or not isinstance(value.get("name"), str) or not isinstance(value.get("higher_is_better"), bool):
            raise RunDirError(f'summary.json: \'metric\' should be {{"name": str, "higher_is_better": bool}}, got {value!r}')
        return cls(value["name"], value["higher_is_better"])


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
            ints(members) if members is not None else None,
            ints(d["merged_nodes"]),
            opt_float(d["merged_accuracy"]),
            opt_float(d["accuracy_before_merge_mean"]),
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
    metric: MetricInfo = MetricInfo()  # what the accuracy figures measure ([training] metric)

    # the plain keys, and how each is read back: text, counts, and numbers that may be null
    _SCALARS: ClassVar[dict[str, Callable[[Any], Any]]] = {
        **dict.fromkeys(("run_dir", "topology", "dataset", "model", "aggregation", "mode", "schedule"), str),
        **dict.fromkeys(("nodes", "rounds", "missed_messages", "rounds_skipped", "link_dropped"), int),
        "wall_time_s": float,
        **dict.fromkeys(
            ("accuracy_mean", "accuracy_std", "accuracy_min", "accuracy_max", "accuracy_mean_all_nodes", "consensus_distance_honest"),
            opt_float,
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
            "metric": self.metric.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSummary:
        scalars = {key: read(d[key]) for key, read in cls._SCALARS.items()}
        return cls(
            **scalars,
            byzantine=Attackers.from_dict(d["byzantine"]),
            dead_nodes=ints(d["dead_nodes"]),
            merge=MergeAgreement.from_dict(d),
            per_node=tuple(NodeOutcome.from_dict(n) for n in d["per_node"]),
            restarts={int(k): int(v) for k, v in d["restarts"].items()},
            metric=MetricInfo.from_dict(d.get("metric")),
        )

    def write(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def read(cls, path: str | Path) -> RunSummary:
        """The summary in ``path``; RunDirError when it is not one the launcher wrote."""
        try:
            return cls.from_dict(read_object(Path(path), "a run summary"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RunDirError(f"{path}: not a run summary gossip wrote ({type(exc).__name__}: {exc})") from None
