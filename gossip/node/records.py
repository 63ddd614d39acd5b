"""What a node leaves behind: its round records and log lines, how its run ended, and its summary.

Every round's record goes to the node's JSONL; its log gets a line a person reads when one is due
(:mod:`gossip.node.roundlog`). The summary (``node-<i>.json``) is written last, when the run ends: its
presence means the node's other files are whole.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from gossip.learn.device import gpu_memory
from gossip.learn.trainer import Evaluation, StepResult
from gossip.node.merge import MergeOutcome
from gossip.node.roundlog import RoundLines
from gossip.ops.metrics import NodeMetrics
from gossip.results.rundir import RecordWriter
from gossip.results.summary import Divergence, NodeMerge, NodeProcess, NodeSummary, Rejoin

if TYPE_CHECKING:
    from gossip.node.member import MemberNode
    from gossip.node.node import Node

__all__ = ["Diverged", "NodeResult", "Recorder", "all_finite", "fmt", "node_merge", "node_summary"]

log = logging.getLogger("gossip.node")  # the name log readers grep for (gossip.node node=3 round=...)


class Diverged(Exception):
    """The node's model stopped being finite in round ``round`` (training ``loss``): the round ends there, and the run."""

    def __init__(self, round_: int, loss: float) -> None:
        super().__init__(f"diverged at round {round_} (loss {loss})")
        self.round = round_
        self.loss = loss


@dataclass(frozen=True)
class NodeResult:
    """How a node's run ended."""

    node_id: int
    status: str  # "finished" | "stopped" | "diverged"
    rounds_completed: int  # rounds this node ran to the end, one record each (across restarts; skipped rounds not counted)
    accuracy: float  # of the final model (the merged one when the merge ran)
    model_hash: str
    accuracy_before_merge: float | None = None
    merge_members: tuple[int, ...] | None = None
    rounds_skipped: int = (
        0  # rounds skipped to catch up with the neighbours (a resume, a pause, a lag) (rounds_completed + rounds_skipped = rounds reached)
    )
    diverged_round: int | None = None  # the round after which the model was no longer finite (status "diverged")


def all_finite(vector: torch.Tensor) -> bool:
    """Whether every value is finite, in one read with no scratch: the sum, and only a sum that is not finite — a NaN
    or an infinity, or finite values large enough to overflow float32 together — gets the exact (slower) check."""
    return math.isfinite(float(vector.sum())) or bool(torch.isfinite(vector).all())


class Recorder:
    """The round records of one node: their common head, the metrics they feed, and the log lines among them."""

    def __init__(self, node_id: int, metrics: NodeMetrics, log_interval_s: float) -> None:
        self.node_id = node_id
        self.metrics = metrics
        self._round_lines = RoundLines(log_interval_s)

    def write(self, writer: RecordWriter | None, record: dict[str, Any]) -> None:
        """Append a record to the node's JSONL and, when one is due (gossip.node.roundlog), log a line a person reads."""
        if writer:
            writer.write(record)
        if log.isEnabledFor(logging.INFO) and self._round_lines.due(record):
            _log_round(record)

    def log_last_round(self) -> None:
        """Log the last round's line if it was held back: the log ends where the run ended."""
        held = self._round_lines.take_held()
        if held is not None and log.isEnabledFor(logging.INFO):
            _log_round(held)

    def head(self, t: int, step: StepResult, evaluation: Evaluation | None) -> dict[str, Any]:
        """The fields every per-round JSONL record starts with, sync or async."""
        return {
            "node": self.node_id,
            "round": t,
            "time": time.time(),
            "loss": step.loss,
            "accuracy": evaluation.accuracy if evaluation else None,
            "test_loss": evaluation.loss if evaluation else None,
        }

    def observe(self, step: StepResult | None, evaluation: Evaluation | None) -> None:
        """Report a round's training loss and an evaluation (when there was one) to the metrics."""
        if step is not None and math.isfinite(step.loss):
            self.metrics.train_loss.set(step.loss)
        if evaluation is not None:
            self.metrics.test_accuracy.set(evaluation.accuracy)
            self.metrics.test_loss.set(evaluation.loss)


# -------------------------------------------------------------------------------------------
# the summary (node-<i>.json)


def node_summary(node: Node, result: NodeResult) -> NodeSummary:
    """What ``nodes/node-<i>.json`` says of this node's run (:class:`~gossip.results.summary.NodeSummary` owns the keys)."""
    process = NodeProcess(
        rounds_skipped=result.rounds_skipped,
        diverged=Divergence(node.diverged["round"], node.diverged["loss"]) if node.diverged is not None else None,
        bytes_sent=node.bytes_sent,
        bytes_received=node.bytes_received,
        rejected=dict(node.rejected),
        neighbours=tuple(int(j) for j in node.neighbours),
        parameters=node.flat.layout.numel,
        send_buffers_allocated=node.snapshots.allocations,
        mode=node.cfg.training.mode,
        variance_layers=tuple(node.layers.names),
        accuracy_before_merge=result.accuracy_before_merge,
        merge=node_merge(node.merge_outcome, result.model_hash),
        peers_down=tuple(sorted(node.liveness.down)),  # DOWN_AFTER rounds in a row
        peers_were_down=tuple(sorted(node.liveness.ever_down)),
        resumed=Rejoin(**node.resumed) if node.resumed is not None else None,
        link_dropped=node.transport.dropped,
        shared_memory=node.transport.in_memory,
        checkpoints_written=node.checkpoints_written,
        send_path=node.send_path.value,
        mass=node.async_gossip.mass if node.cfg.training.push_sum else None,
        choco_dense_rounds=node.choco.dense_sent if node.choco is not None else None,
        device=str(node.device),
        precision=node.cfg.training.precision,
        deterministic=torch.are_deterministic_algorithms_enabled(),  # what torch ran with, not what was asked
        gpu_memory_peak_bytes=peak[1] if (peak := gpu_memory(node.device)) is not None else None,
    )
    return NodeSummary(result.node_id, result.status, result.rounds_completed, result.accuracy, result.model_hash, process)


def node_merge(outcome: MergeOutcome | None, final_hash: str) -> NodeMerge | None:
    """What this node's global merge produced, for its summary (None: it did not merge)."""
    if outcome is None:
        return None
    return NodeMerge(
        outcome.members, outcome.heard, outcome.views_agree, final_hash, outcome.calibration_batches, outcome.seconds, outcome.phase_seconds
    )


# -------------------------------------------------------------------------------------------
# the per-round log line: what `docker logs` / `kubectl logs` readers look for; the JSONL record has the rest

_LOGGED = (
    "node",
    "round",
    "loss",
    "accuracy",
    "consensus_distance",
    "comm",
    "pushed_to",
    "arrived",
    "missing",
    "rejected",
    "mass",
    "round_s",
)


def _log_round(record: Mapping[str, Any]) -> None:
    log.info("%s", " ".join(f"{k}={fmt(record[k])}" for k in _LOGGED if record.get(k) not in (None, [])))


def fmt(value: Any) -> str:
    """A record's value as a log line shows it: floats to 4 significant digits, lists comma-separated."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def member_summary(node: MemberNode, result: NodeResult) -> NodeSummary:
    """``nodes/node-<i>.json`` of a member of an open network: the common keys, and what its membership saw."""
    counts = node.membership.counts
    process = NodeProcess(
        rounds_skipped=0,
        diverged=None,
        bytes_sent=node.link.bytes_out,
        bytes_received=node.link.bytes_in,
        rejected=dict(node.link.rejects),
        neighbours=tuple(sorted(node.membership.neighbours)),
        parameters=node.flat.layout.numel,
        send_buffers_allocated=node.snapshots.allocations,
        mode=node.cfg.training.mode,
        variance_layers=(),
        accuracy_before_merge=None,
        merge=None,
        peers_down=(),
        peers_were_down=(),
        resumed=None,
        link_dropped=0,
        checkpoints_written=0,
        send_path="snapshot",
        mass=node.mass if node.cfg.training.push_sum else None,
        membership={
            "address": node.me.address,
            "joined_through": node.contact,
            "synced_from": list(node.synced_from),
            "view": [m.id for m in node.membership.view.members()],
            **{k: int(counts[k]) for k in ("joins", "leaves", "failures", "neighbour_changes", "links_refused")},
        },
    )
    return NodeSummary(result.node_id, result.status, result.rounds_completed, result.accuracy, result.model_hash, process)
