"""``gossip simulate`` of an open network under churn: the console script runs it, the records keep the links graph
connected among the live members, the models learn, and the report draws the neighbour graph over time."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from tests.conftest import run_gossip

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

OPEN = ("--set", "membership.enabled=true", "--set", "training.mode=async")


def test_a_simulated_open_network_under_churn_stays_connected_learns_and_is_reported(tmp_path: Path) -> None:
    """10 members on 8 shards, 20 % replaced every 20 steps (one leaving, one crashing): members left and crashed and newcomers joined; at the
    end the neighbour lists of the live members' last records form one connected graph, the mean accuracy of the
    members live at the end is well above chance (10 classes), and the report has membership.png."""
    run_dir = tmp_path / "open"
    proc = run_gossip(
        "simulate", "-n", "8", "-t", "ring", "--members", "10", "-r", "100", *OPEN, "--set", "training.eval_every=20",
        "--churn", "0.2", "--churn-every", "20", "--run-dir", str(run_dir), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    records = {
        int(f.stem.split("-")[1]): [json.loads(line) for line in f.read_text().splitlines()] for f in (run_dir / "nodes").glob("*.jsonl")
    }
    end = max(rs[-1]["time"] for rs in records.values() if rs)
    live = {i: rs[-1] for i, rs in records.items() if rs and rs[-1]["time"] == end}
    graph = nx.Graph()
    graph.add_nodes_from(live)
    graph.add_edges_from((i, j) for i, r in live.items() for j in r["neighbours"] if j in live)
    summary = json.loads((run_dir / "summary.json").read_text())
    statuses = {n["status"] for n in summary["per_node"]}

    assert len(records) > 10 and {"stopped", "dead", "finished"} <= statuses  # newcomers, leavers, crashes, survivors
    assert len(live) == 10 and nx.is_connected(graph)
    assert {"view", "joins", "leaves", "failures", "neighbour_changes"} <= set(live[min(live)])
    assert summary["accuracy_mean"] > 0.2
    assert (run_dir / "report" / "membership.png").is_file()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--churn", "0.1"], "--churn needs an open network: --set membership.enabled=true --set training.mode=async"),
        (["--churn", "1", *OPEN], "--churn is the fraction of members replaced per period, in [0, 1), not 1"),
        (["--churn", "0.1", "--churn-every", "0", *OPEN], "--churn-every is a number of rounds, at least 1, not 0"),
    ],
    ids=["closed-network", "churn-1", "every-0"],
)  # fmt: skip
def test_churn_that_makes_no_sense_is_one_line_exit_2_and_nothing_written(tmp_path: Path, flags: list[str], message: str) -> None:
    """Churn without an open network, or out of range: one line, exit 2, no run directory."""
    run_dir = tmp_path / "sim"
    proc = run_gossip("simulate", "-n", "6", "-t", "ring", "-r", "2", *flags, "--run-dir", str(run_dir), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"gossip: error: {message}"
    assert not run_dir.exists()
