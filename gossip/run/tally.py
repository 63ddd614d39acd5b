"""The run's :class:`~gossip.results.summary.RunSummary`: the nodes' own files folded into final figures, and its table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gossip.config import RunConfig
from gossip.results.rundir import NodeFiles, read_jsonl
from gossip.results.summary import Attackers, MergeAgreement, MetricInfo, NodeOutcome, NodeSummary, RunSummary
from gossip.topology import Topology

__all__ = ["format_table", "honest_spread", "merge_agreement", "metric_info", "node_outcome", "rounds_skipped", "summarise"]


def summarise(path: Path, topology: Topology, cfg: RunConfig, wall_s: float, restarts: dict[int, int] | None = None) -> RunSummary:
    """The run summary: per-node final figures and their aggregate, from the nodes' own files.

    ``restarts``: node → times the launcher restarted it (only nodes it did).
    """
    byzantine = set(cfg.byzantine.nodes)
    nodes = [node_outcome(path, i, i in byzantine) for i in range(topology.n)]
    # Byzantine nodes are not part of the result: accuracy figures are over honest nodes only.
    accs = [n.accuracy for n in nodes if n.accuracy is not None and not n.byzantine]
    every = [n.accuracy for n in nodes if n.accuracy is not None]
    mean = sum(accs) / len(accs) if accs else None
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / len(accs)) if accs and mean is not None else None
    return RunSummary(
        run_dir=str(path),
        nodes=topology.n,
        topology=topology.name,
        rounds=cfg.training.rounds,
        dataset=cfg.data.dataset,
        model=cfg.model.name,
        aggregation=cfg.aggregation.rule,
        wall_time_s=wall_s,
        accuracy_mean=mean,
        accuracy_std=std,
        accuracy_min=min(accs) if accs else None,
        accuracy_max=max(accs) if accs else None,
        accuracy_mean_all_nodes=sum(every) / len(every) if every else None,
        consensus_distance_honest=honest_spread(path, [i for i in range(topology.n) if i not in byzantine]),
        byzantine=Attackers(tuple(sorted(byzantine)), cfg.byzantine.attack) if byzantine else None,
        dead_nodes=tuple(n.node for n in nodes if n.status == "dead"),
        missed_messages=sum(n.missed for n in nodes),
        rounds_skipped=sum(n.rounds_skipped for n in nodes),
        link_dropped=sum(n.link_dropped for n in nodes),
        mode=cfg.training.mode,
        schedule=cfg.schedule.mode,
        merge=merge_agreement(nodes) if cfg.merge.enabled else None,
        per_node=tuple(nodes),
        restarts=dict(restarts or {}),
        metric=metric_info(cfg),
    )


def metric_info(cfg: RunConfig) -> MetricInfo:
    """The configured metric's name and direction (a plug-in's own ``name`` / ``higher_is_better`` when it has them)."""
    from gossip.learn.objectives import build_metric

    scorer = build_metric(cfg.training)
    return MetricInfo(scorer.name, scorer.higher_is_better)


def node_outcome(path: Path, node: int, byzantine: bool) -> NodeOutcome:
    """One node's final figures: its own summary (if it wrote one) for how it ended, its records for what it did."""
    files = NodeFiles(path, node)
    records = read_jsonl(files.records)
    final = NodeSummary.read(files.summary) if files.summary.exists() else None
    process = final.process if final else None
    merge = process.merge if process else None
    last_eval: dict[str, Any] = next((r for r in reversed(records) if r.get("accuracy") is not None), {})
    return NodeOutcome(
        node=node,
        status=final.status if final else "dead",
        rounds_completed=len(records),  # the node's own count too: rounds it ran, one record each
        diverged=process.diverged if process else None,
        accuracy=final.accuracy if merge and final else last_eval.get("accuracy"),
        accuracy_before_merge=process.accuracy_before_merge if merge and process else None,
        merge_members=merge.members if merge else None,
        merge_views_agree=merge.views_agree if merge else None,
        test_loss=last_eval.get("test_loss"),
        consensus_distance=records[-1]["consensus_distance"] if records else None,
        bytes_sent=sum(r["bytes_sent"] for r in records),
        bytes_received=sum(r["bytes_received"] for r in records),
        rejected=dict(process.rejected) if process else {},
        missed=sum(len(r.get("missing", ())) for r in records),  # neighbour models that missed their round
        rounds_skipped=rounds_skipped(records),  # not run: skipped to the neighbours' round (resumed, or late)
        link_dropped=process.link_dropped if process else 0,  # messages this node's link emulation lost
        peers_were_down=process.peers_were_down if process else (),
        model_hash=final.model_hash if final else None,
        byzantine=byzantine,
        device=process.device if process else None,
    )


def rounds_skipped(records: Sequence[dict[str, Any]]) -> int:
    """Rounds a node's records jump over: a resume's skip to the run's round, and a late node's catch-up."""
    total = 0
    for r in records:
        for key, origin in (("resumed", "checkpoint_round"), ("skipped", "from_round")):
            jump = r.get(key)
            if jump:
                total += max(0, jump["joined_round"] - jump[origin])
    return total


def merge_agreement(nodes: Sequence[NodeOutcome]) -> MergeAgreement:
    """The merge's outcome across nodes: one hash if every merged node holds the same model."""
    merged = [n for n in nodes if n.merge_members is not None]
    hashes = {n.model_hash for n in merged}
    before = [n.accuracy_before_merge for n in merged if n.accuracy_before_merge is not None]
    agreed = bool(merged) and len(hashes) == 1 and len({n.merge_members for n in merged}) == 1
    return MergeAgreement(
        agreed=agreed,
        model_hash=next(iter(hashes)) if agreed else None,
        members=merged[0].merge_members if agreed else None,
        nodes=tuple(n.node for n in merged),
        accuracy=merged[0].accuracy if agreed else None,
        accuracy_before_mean=sum(before) / len(before) if before else None,
    )


def honest_spread(path: Path, honest: Sequence[int]) -> float | None:
    """RMS distance of the honest nodes' final models to their average: how far from consensus they ended.

    Read from the saved final vectors (``nodes/node-<i>.npy``); ``None`` if one is missing. Unlike
    the per-round ``consensus_distance`` (to the neighbourhood average, Byzantine payloads
    included), this looks at honest models only.
    """
    import numpy as np

    vectors = []
    for i in honest:
        model = NodeFiles(path, i).model
        if not model.exists():
            return None
        vectors.append(np.load(model, allow_pickle=False).astype(np.float64))
    if not vectors:
        return None
    stack = np.stack(vectors)
    return float(np.sqrt(((stack - stack.mean(axis=0)) ** 2).sum(axis=1).mean()))


def format_table(summary: RunSummary) -> str:
    """The summary as a fixed-width table for the terminal."""
    lines = [f"{'node':>4} {'rounds':>6} {summary.metric.name:>8} {'test loss':>9} {'consensus':>10} {'MB sent':>8} {'status':>8}"]
    for n in summary.per_node:
        acc = f"{n.accuracy:.4f}" if n.accuracy is not None else "-"
        loss = f"{n.test_loss:.4f}" if n.test_loss is not None else "-"
        cd = f"{n.consensus_distance:.3g}" if n.consensus_distance is not None else "-"
        lines.append(f"{n.node:>4} {n.rounds_completed:>6} {acc:>8} {loss:>9} {cd:>10} {n.bytes_sent / 1e6:>8.2f} {n.status:>8}")
    merge = summary.merge
    if merge is not None and merge.nodes:
        if merge.agreed and merge.members is not None:
            lines.append(
                f"global merge: {len(merge.members)} models averaged {list(merge.members)}, identical on every merged node "
                f"(model {merge.model_hash}); mean local accuracy before {_num(merge.accuracy_before_mean)}, merged model {_num(merge.accuracy)}"
            )
        else:
            lines.append("global merge: the nodes did NOT end with the same model (see merge_members per node in summary.json)")
    if summary.accuracy_mean is not None:
        lines.append(
            f"mean {summary.metric.name} {summary.accuracy_mean:.4f} ± {summary.accuracy_std:.4f} "
            f"(min {summary.accuracy_min:.4f}, max {summary.accuracy_max:.4f}) in {summary.wall_time_s:.1f} s"
        )
    if summary.byzantine:
        byz = summary.byzantine
        lines.append(f"byzantine nodes {', '.join(map(str, byz.nodes))} ({byz.attack}) are excluded from the mean")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"
