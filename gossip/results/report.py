"""Run reports: a run directory → PNG plots and a short Markdown summary, after the fact.

Reads only the files a run leaves behind (``nodes/node-<i>.jsonl``, ``summary.json``, ``topology.graphml``; see
:mod:`gossip.results.rundir`), so it works on a finished run, on a run that was interrupted (the summary may be missing,
the last records torn), and on a run copied from another machine. Plots use matplotlib's object-oriented API on an Agg
canvas: no display, and pyplot's global state is never touched, so reports can be drawn from any thread or process.

Byzantine runs: ``summary.json``'s ``byzantine`` names the attacker nodes (:class:`~gossip.results.summary.Attackers`).
Attackers are drawn red and dashed, means are over honest nodes only, and an extra figure sets honest against attacker
accuracy. An open network's neighbour graph over time comes from its records (:mod:`gossip.results.overlay`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gossip.errors import RunDirError, TopologyError
from gossip.results.overlay import has_membership, plot_membership
from gossip.results.rundir import NodeFiles, read_jsonl
from gossip.results.summary import Attackers, NodeOutcome, NodeSummary, RunSummary

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from gossip.topology import Topology

__all__ = ["FIGURE_DPI", "FIGURE_SIZE_IN", "RunData", "attackers_of", "load_run", "write_report"]

FIGURE_SIZE_IN = (9.0, 5.0)
FIGURE_DPI = 100  # 900 x 500 pixels
ATTACKER_COLOUR = "tab:red"
MEAN_COLOUR = "black"
LEGEND_MAX_NODES = 8  # more nodes than this: one legend entry for all of them


@dataclass(frozen=True)
class RunData:
    """Everything a report reads from a run directory."""

    run_dir: Path
    summary: RunSummary | None  # summary.json; None when the launcher did not get to write it
    records: Mapping[int, list[dict[str, Any]]]  # node id → its per-round records
    attackers: frozenset[int]
    topology: Topology | None

    @property
    def nodes(self) -> list[int]:
        return sorted(self.records)

    @property
    def metric(self) -> str:
        """What the records' ``accuracy`` holds: summary.json's metric (accuracy when there is no summary)."""
        return self.summary.metric.name if self.summary else "accuracy"

    @property
    def honest(self) -> list[int]:
        return [i for i in self.nodes if i not in self.attackers]


def attackers_of(summary: Mapping[str, Any]) -> frozenset[int]:
    """Attacker node ids named by ``summary.json``'s ``byzantine`` (``{"nodes": [...], "attack": ...}``; absent or null: none)."""
    attackers = Attackers.from_dict(summary.get("byzantine"))
    return frozenset(attackers.nodes) if attackers else frozenset()


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory; raises RunDirError when there is no run to report on."""
    path = Path(run_dir)
    if not path.exists():
        raise RunDirError(f"run directory not found: {path}")
    if not path.is_dir():
        raise RunDirError(f"not a run directory (a file): {path}")
    files = sorted((path / "nodes").glob("node-*.jsonl"))
    ids = [int(f.stem.split("-", 1)[1]) for f in files if f.stem.split("-", 1)[1].isdigit()]
    if not ids:
        raise RunDirError(f"not a run directory (no nodes/node-<i>.jsonl records): {path}")
    records = {i: read_jsonl(path / "nodes" / f"node-{i}.jsonl") for i in sorted(ids)}
    if not any(records.values()):
        raise RunDirError(f"no node of {path} recorded a round yet; nothing to report")
    summary = RunSummary.read(path / "summary.json") if (path / "summary.json").is_file() else None
    topology = None
    if (path / "topology.graphml").is_file():
        from gossip.topology import load

        try:
            topology = load(path / "topology.graphml")
        except TopologyError:
            topology = None  # the plots that need it are skipped; the report says so
    return RunData(path, summary, records, summary.attackers if summary else frozenset(), topology)


# ------------------------------------------------------------------------------------------------
# data shaping


def _matrix(data: RunData, key: str) -> np.ndarray:
    """``(node, round)`` matrix of one record field, NaN where a node has no value for a round."""
    rounds = 1 + max((r["round"] for recs in data.records.values() for r in recs), default=-1)
    out = np.full((max(data.nodes) + 1, rounds), np.nan)
    for node, recs in data.records.items():
        for r in recs:
            value = r.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                out[node, r["round"]] = value
    return out


def _mean(rows: np.ndarray) -> np.ndarray:
    """Column means over the finite entries (NaN where a column has none), without empty-slice warnings."""
    finite = np.isfinite(rows)
    count = finite.sum(axis=0)
    total = np.where(finite, rows, 0.0).sum(axis=0)
    mean: np.ndarray = np.divide(total, count, out=np.full(rows.shape[1], np.nan), where=count > 0)
    return mean


def _last(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if finite.size else None


# ------------------------------------------------------------------------------------------------
# figures


def _figure(ncols: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGURE_SIZE_IN, dpi=FIGURE_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, k + 1) for k in range(ncols)]
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, axes


def _node_colours(data: RunData) -> dict[int, Any]:
    """Honest nodes along viridis (which holds no red), attackers red: the two never get confused."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    honest = data.honest
    colours: dict[int, Any] = {i: cmap(k / max(1, len(honest) - 1) * 0.9) for k, i in enumerate(honest)}
    colours.update({i: ATTACKER_COLOUR for i in data.attackers})
    return colours


def _per_node(ax: Axes, data: RunData, matrix: np.ndarray, *, mean_label: str = "mean") -> None:
    """One line per node (attackers red and dashed) and the honest nodes' mean, thick and black."""
    colours = _node_colours(data)
    rounds = np.arange(matrix.shape[1])
    few = len(data.nodes) <= LEGEND_MAX_NODES
    for node in data.nodes:
        row = matrix[node]
        ok = np.isfinite(row)
        if not ok.any():
            continue
        attacker = node in data.attackers
        label = (f"node {node}" + (" (attacker)" if attacker else "")) if few else None
        ax.plot(rounds[ok], row[ok], color=colours[node], lw=1.6 if attacker else 1.0, ls="--" if attacker else "-", alpha=0.9, label=label)
    mean = _mean(matrix[data.honest]) if data.honest else np.full(matrix.shape[1], np.nan)
    ok = np.isfinite(mean)
    ax.plot(rounds[ok], mean[ok], color=MEAN_COLOUR, lw=2.5, label=mean_label + (" (honest nodes)" if data.attackers else ""))
    if not few:
        from matplotlib.lines import Line2D

        handles = [
            Line2D([], [], color=_node_colours(data)[data.honest[0]] if data.honest else "0.5", lw=1.0, label=f"{len(data.honest)} nodes")
        ]
        if data.attackers:
            handles.append(Line2D([], [], color=ATTACKER_COLOUR, ls="--", lw=1.6, label=f"{len(data.attackers)} attackers"))
        handles.append(Line2D([], [], color=MEAN_COLOUR, lw=2.5, label=mean_label))
        ax.legend(handles=handles, fontsize=8)
    else:
        ax.legend(fontsize=8, ncols=2 if len(data.nodes) > 4 else 1)
    ax.set_xlabel("round")


def plot_accuracy(data: RunData, path: Path) -> None:
    """Test accuracy per round, per node, with the mean."""
    fig, (ax,) = _figure()
    _per_node(ax, data, _matrix(data, "accuracy"))
    ax.set(ylabel=f"test {data.metric}", title=f"Test {data.metric} per node")
    fig.savefig(path, format="png")


def plot_loss(data: RunData, path: Path) -> None:
    """Training and test loss per round, per node, with the means."""
    fig, (train, test) = _figure(2)
    _per_node(train, data, _matrix(data, "loss"))
    train.set_ylabel("training loss (last local steps)")
    train.set_title("Training loss")
    _per_node(test, data, _matrix(data, "test_loss"))
    test.set_ylabel("test loss")
    test.set_title("Test loss")
    fig.savefig(path, format="png")


def plot_consensus(data: RunData, path: Path) -> None:
    """Consensus distance per round on a log axis (zeros cannot be shown on it and are left out)."""
    fig, (ax,) = _figure()
    matrix = _matrix(data, "consensus_distance")
    positive = np.where(matrix > 0, matrix, np.nan)
    if np.isfinite(positive).any():
        _per_node(ax, data, positive)
        ax.set_yscale("log")
    else:  # every node agreed exactly from the start (e.g. lr 0 and a shared init): nothing to log
        _per_node(ax, data, matrix)
        ax.text(0.5, 0.75, "consensus distance is 0 throughout", transform=ax.transAxes, ha="center")
    ax.set_ylabel("distance to the neighbourhood average (L2)")
    ax.set_title("Consensus distance (before mixing)")
    fig.savefig(path, format="png")


def plot_bytes(data: RunData, path: Path) -> None:
    """Bytes on the wire: per round and node, and cumulated over the run."""
    fig, (per_round, total) = _figure(2)
    sent = _matrix(data, "bytes_sent")
    _per_node(per_round, data, sent / 1e3)
    per_round.set_ylabel("kB sent per round")
    if np.isfinite(sent).any() and np.nanmax(sent) > 0:  # the size barely varies: from 0 it reads as the constant it is
        per_round.set_ylim(0, float(np.nanmax(sent)) / 1e3 * 1.15)
    per_round.ticklabel_format(axis="y", useOffset=False)
    per_round.set_title("Sent per round")
    cumulative = np.nancumsum(np.nan_to_num(sent), axis=1) / 1e6
    _per_node(total, data, cumulative, mean_label="mean node")
    network = cumulative[data.nodes].sum(axis=0)
    total.plot(np.arange(network.size), network, color="tab:blue", lw=2.0, ls=":", label="all nodes")
    total.legend(fontsize=8)
    total.set_ylabel("MB sent, cumulative")
    total.set_title(f"On the wire: {network[-1]:.2f} MB in total")
    fig.savefig(path, format="png")


def plot_topology(data: RunData, path: Path) -> None:
    """The graph, nodes coloured by final accuracy, attackers ringed in red."""
    from gossip.topology import draw

    if data.topology is None:
        raise RunDirError(f"{data.run_dir}: no readable topology.graphml to draw")
    matrix = _matrix(data, "accuracy")
    finals = {i: v for i in data.nodes if (v := _last(matrix[i])) is not None and i < data.topology.n}
    title = f"{data.topology.name}: final test {data.metric}" + (" (attackers ringed red)" if data.attackers else "")
    draw(data.topology, path, node_values=finals, title=title, highlight=sorted(data.attackers & set(range(data.topology.n))))


def plot_byzantine(data: RunData, path: Path) -> None:
    """Honest against attacker nodes: accuracy over rounds (honest mean and range), and final accuracy per node."""
    fig, (curve, bars) = _figure(2)
    matrix = _matrix(data, "accuracy")
    rounds = np.arange(matrix.shape[1])
    if data.honest:
        honest = matrix[data.honest]
        mean = _mean(honest)
        lo = np.where(np.isfinite(honest), honest, np.inf).min(axis=0)
        hi = np.where(np.isfinite(honest), honest, -np.inf).max(axis=0)
        ok = np.isfinite(mean) & np.isfinite(lo) & np.isfinite(hi)
        curve.fill_between(rounds[ok], lo[ok], hi[ok], color="tab:blue", alpha=0.25, label="honest nodes (range)")
        curve.plot(rounds[ok], mean[ok], color="tab:blue", lw=2.5, label="honest nodes (mean)")
    for k, node in enumerate(sorted(data.attackers)):
        row = matrix[node] if node < matrix.shape[0] else np.full(rounds.size, np.nan)
        ok = np.isfinite(row)
        curve.plot(rounds[ok], row[ok], color=ATTACKER_COLOUR, ls="--", lw=1.6, label="attackers" if k == 0 else None)
    curve.set(xlabel="round", ylabel=f"test {data.metric}", title="Honest vs attacker nodes")
    curve.legend(fontsize=8)
    finals = [(_last(matrix[i]) or 0.0) for i in data.nodes]
    colours = [ATTACKER_COLOUR if i in data.attackers else "tab:blue" for i in data.nodes]
    bars.bar([str(i) for i in data.nodes], finals, color=colours)
    bars.set(xlabel="node", ylabel=f"final test {data.metric}", title=f"Final {data.metric} (attackers red)")
    fig.savefig(path, format="png")


# ------------------------------------------------------------------------------------------------
# the report


def _node_rows(data: RunData) -> list[dict[str, Any]]:
    """One row per node: from summary.json when the launcher wrote it, else from the records."""
    by_node: dict[int, NodeOutcome | NodeSummary] = {n.node: n for n in data.summary.per_node} if data.summary else {}
    for i in data.nodes:  # no run summary (interrupted launch, gossip simulate): each node's own, if it wrote one
        if i not in by_node and (own := NodeFiles(data.run_dir, i).summary).is_file():
            try:
                by_node[i] = NodeSummary.read(own)
            except RunDirError:
                pass
    accuracy, test_loss, distance = _matrix(data, "accuracy"), _matrix(data, "test_loss"), _matrix(data, "consensus_distance")
    rows = []
    for i in data.nodes:
        recs = data.records[i]
        rejected = _rejected(known := by_node.get(i))
        rows.append(
            {
                "node": i,
                "role": "attacker" if i in data.attackers else "honest",
                "status": known.status if known else "?",
                "rounds": len(recs),
                "accuracy": _last(accuracy[i]),
                "test_loss": _last(test_loss[i]),
                "consensus_distance": _last(distance[i]),
                "mb_sent": sum(r.get("bytes_sent") or 0 for r in recs) / 1e6,
                "mb_received": sum(r.get("bytes_received") or 0 for r in recs) / 1e6,
                "rejected": sum(rejected.values()) if rejected is not None else (recs[-1].get("rejected") if recs else None),
                "device": (known.device if known else None) or "-",  # a simulated node has none
            }
        )
    return rows


def _rejected(known: NodeOutcome | NodeSummary | None) -> Mapping[str, int] | None:
    """A node's rejected messages by reason, when a summary says (a simulated node's does not)."""
    if isinstance(known, NodeSummary):
        return known.process.rejected if known.process else None
    return known.rejected if known else None


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _stats(values: Sequence[float]) -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return f"{mean:.4f} ± {std:.4f} (min {min(values):.4f}, max {max(values):.4f})"


def markdown(data: RunData, rows: Sequence[Mapping[str, Any]], figures: Sequence[Path], notes: Sequence[str]) -> str:
    """The report's Markdown: run facts, accuracy, the per-node table, the figures."""
    s = data.summary
    honest = [r["accuracy"] for r in rows if r["role"] == "honest" and r["accuracy"] is not None]
    attackers = [r["accuracy"] for r in rows if r["role"] == "attacker" and r["accuracy"] is not None]
    topology = s.topology if s else (data.topology.name if data.topology else "?")
    facts = [
        ("topology", f"{topology} ({len(data.nodes)} nodes)"),
        ("rounds", f"{max(r['rounds'] for r in rows)} recorded" + (f" of {s.rounds}" if s else "")),
        ("data / model", f"{s.dataset} / {s.model}" if s else "? / ?"),
        ("aggregation", s.aggregation if s else "?"),
        ("wall time", f"{s.wall_time_s:.1f} s" if s else "-"),
        (f"test {data.metric}" + (" (honest nodes)" if data.attackers else ""), _stats(honest)),
    ]
    if data.attackers:
        facts.append(("attackers", f"{', '.join(map(str, sorted(data.attackers)))}: {data.metric} {_stats(attackers)}"))
    dead = s.dead_nodes if s else ()
    if dead:
        facts.append(("dead nodes", ", ".join(map(str, dead))))
    lines = [f"# Run report: {data.run_dir.name}", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in facts), ""]
    lines += [
        "## Nodes",
        "",
        f"| node | role | status | device | rounds | {data.metric} | test loss | consensus distance | MB sent | MB received | rejected |",
        "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['node']} | {r['role']} | {r['status']} | {r['device']} | {r['rounds']} | {_fmt(r['accuracy'], '.4f')} | {_fmt(r['test_loss'], '.4f')} "
            f"| {_fmt(r['consensus_distance'], '.3g')} | {r['mb_sent']:.2f} | {r['mb_received']:.2f} | {_fmt(r['rejected'], 'd')} |"
        )
    lines += ["", "## Figures", ""]
    lines += [f"![{f.stem}]({f.name})" for f in figures]
    if notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write the PNGs and ``report.md`` for a run (into ``RUN_DIR/report`` by default); return their paths."""
    data = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else data.run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    plots: list[tuple[str, Callable[[RunData, Path], None]]] = [("accuracy.png", plot_accuracy), ("loss.png", plot_loss)]
    plots += [("consensus.png", plot_consensus), ("bytes.png", plot_bytes)]
    notes = []
    if has_membership(data.records):  # an open network: its graph is in the records, not in topology.graphml
        plots.append(("membership.png", lambda d, p: plot_membership(d.records, p, d.metric)))
    elif data.topology is not None:
        plots.append(("topology.png", plot_topology))
    else:
        notes.append("no readable topology.graphml in the run directory: no topology figure")
    if data.attackers:
        plots.append(("byzantine.png", plot_byzantine))
    if data.summary is None:
        notes.append("no summary.json (the launcher did not finish): figures and table come from the node records alone")
    for name, plot in plots:
        plot(data, out / name)
    figures = [out / name for name, _plot in plots]
    report = out / "report.md"
    report.write_text(markdown(data, _node_rows(data), figures, notes), encoding="utf-8")
    return [*figures, report]
