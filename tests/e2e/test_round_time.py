"""The round-time benchmark's workload through real node processes: the timing breakdown is recorded and adds up.

No speed is asserted (the machine is shared; bench/round_time.py reports the figures).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gossip.config import load_config
from gossip.results.rundir import records_by_node
from gossip.run.launch import launch

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

PHASES = ("train_s", "encode_s", "send_s", "wait_s", "aggregate_s", "eval_s")


def test_round_time_workload_records_a_breakdown_that_sums_within_the_round(tmp_path: Path) -> None:
    """8 processes on a ring, weights 1/3, one SGD step of batch 32, the 64-200-10 MLP on synthetic data:
    every round's record has each phase, the phases sum to at most the round's duration, the training
    CPU is part of the round's CPU, and the process CPU clock only moves forward."""
    rounds = 30
    cfg = load_config(
        env={},
        overrides={
            "run.nodes": 8,
            "topology.spec": "ring",
            "topology.weights": "uniform",
            "training.rounds": rounds,
            "training.local_steps": 1,
            "training.momentum": 0.0,
            "training.eval_every": rounds,
            "data.batch_size": 32,
            "data.dataset": "synthetic",
            "data.features": 64,
            "data.train_samples": 800,
            "data.test_samples": 100,
            "model.hidden": [200],
            "metrics.enabled": False,
        },
    )
    result = launch(cfg, run_dir=tmp_path / "run", progress=False, out=io.StringIO())
    assert result.exit_code == 0
    nodes = list(records_by_node(tmp_path / "run"))
    assert len(nodes) == 8
    for node, records in nodes:
        assert [r["round"] for r in records] == list(range(rounds))
        for r in records:
            assert r["arrived"] == 2 and r["missing"] == []
            assert all(r[p] >= 0 for p in PHASES), r
            assert sum(r[p] for p in PHASES) <= r["round_s"] + 1e-6, r
            assert 0 <= r["train_cpu_s"] <= r["cpu_s"] + 1e-6, r
        clocks = [r["cpu_clock_s"] for r in records]
        assert clocks == sorted(clocks)
        summary = json.loads((tmp_path / "run" / "nodes" / f"node-{node}.json").read_text())
        assert summary["parameters"] == 64 * 200 + 200 + 200 * 10 + 10
        assert summary["send_buffers_allocated"] == 0  # 60 kB: cloned, not pooled (see gossip.net.sendbuffers)
