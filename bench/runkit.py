"""Shared by the algorithm benchmarks: run one configuration with `gossip launch`, read its curves, plot.

Every arm is a real run: N node processes on loopback, exactly what `gossip launch` does.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gossip.config import load_config
from gossip.results.rundir import records_by_node
from gossip.run.launch import launch

OUT = Path(__file__).resolve().parent / "out"


def run_arm(name: str, overrides: Mapping[str, Any], keep: bool = False) -> dict[str, Any]:
    """Launch one configuration; returns its summary, mean-accuracy curve and mean layer-variance curve."""
    cfg = load_config(env={}, overrides=dict(overrides))
    tmp = Path(tempfile.mkdtemp(prefix="gossip-bench-"))
    t0 = time.perf_counter()
    with open("/dev/null", "w") as sink:
        result = launch(cfg, run_dir=tmp / "run", progress=False, out=sink)
    wall = time.perf_counter() - t0
    if result.exit_code != 0:
        raise SystemExit(f"{name}: launch failed ({result.exit_code}); see {tmp}")
    accuracy: dict[int, list[float]] = {}
    variance: dict[int, list[float]] = {}
    sent = 0
    for _node, records in records_by_node(result.run_dir):
        for r in records:
            sent += r["bytes_sent"]
            if r["accuracy"] is not None:
                accuracy.setdefault(r["round"] + 1, []).append(r["accuracy"])
            lv = r.get("layer_var")
            if lv:
                variance.setdefault(r["round"] + 1, []).append(lv["after"][0])
    row = {
        "name": name,
        "summary": result.summary,
        "curve": sorted((k, statistics.mean(v)) for k, v in accuracy.items()),
        "variance": sorted((k, statistics.mean(v)) for k, v in variance.items()),
        "mb_sent_per_node": sent / 1e6 / max(1, cfg.run.nodes),
        "wall_s": wall,
    }
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return row


def rounds_to(curve: Sequence[tuple[int, float]], target: float) -> int | None:
    """The first evaluated round at which the mean accuracy reaches ``target`` (None if never)."""
    return next((k for k, acc in curve if acc >= target), None)


def plot(
    series: Mapping[str, Sequence[tuple[int, float]]],
    path: Path,
    *,
    title: str,
    ylabel: str,
    logy: bool = False,
    hline: float | None = None,
) -> None:
    """One PNG with a line per series."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, points in series.items():
        if points:
            ax.plot(*zip(*points, strict=True), label=label)
    if hline is not None:
        ax.axhline(hline, color="grey", linestyle=":", linewidth=1)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    OUT.mkdir(exist_ok=True)
    fig.savefig(path)
