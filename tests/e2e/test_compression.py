"""Compressed gossip through the real path: `gossip launch`, node processes, ZeroMQ sockets.

8-node ring, IID MNIST-1D, the MLP, 200 rounds (bench/compression.py's setting: float32 reaches 0.546,
no communication at all 0.36). Bytes come from the per-round JSONL records.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from gossip.config import load_config
from gossip.results.rundir import NodeFiles
from gossip.run.launch import LaunchResult, launch

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

NODES, ROUNDS = 8, 200


def run(tmp_path: Path, **overrides: Any) -> LaunchResult:
    cfg = load_config(
        env={},
        overrides={
            "run.nodes": NODES,
            "topology.spec": "ring",
            "training.rounds": ROUNDS,
            "training.lr": 0.05,
            "training.momentum": 0.9,
            "training.eval_every": 50,
            "metrics.enabled": False,
            **overrides,
        },
    )
    result = launch(cfg, run_dir=tmp_path / "run", progress=False, out=io.StringIO())
    assert result.exit_code == 0
    return result


def share_of_float32(result: LaunchResult) -> float:
    """Bytes the nodes sent in their rounds, over what float32 models to both ring neighbours every round cost."""
    params = json.loads(NodeFiles(result.run_dir, 0).summary.read_text())["parameters"]
    sent = sum(n["bytes_sent"] for n in result.summary["per_node"])
    return sent / (NODES * ROUNDS * 2 * 4 * params)


def test_int8_trains_like_float32_on_a_quarter_of_the_bytes(tmp_path: Path) -> None:
    """int8 models on the wire: about 1/4 of the bytes, and the accuracy of float32 (0.546) within 2 points."""
    result = run(tmp_path, **{"transport.wire_dtype": "int8"})
    assert 0.25 < share_of_float32(result) < 0.26
    assert result.summary["accuracy_mean"] > 0.526
    assert not any(n["rejected"] for n in result.summary["per_node"])


def test_choco_top_k_trains_on_a_fraction_of_the_bytes_and_the_merge_stays_exact(tmp_path: Path) -> None:
    """CHOCO-gossip sending 10% of the entries: under a quarter of the bytes, it learns far beyond local
    training (0.36), and the global merge still averages the nodes' full float32 models into one model."""
    result = run(tmp_path, **{"compression.method": "topk", "compression.topk_fraction": 0.1, "merge.enabled": True})
    assert share_of_float32(result) < 0.25
    assert result.summary["accuracy_before_merge_mean"] > 0.48
    assert result.summary["merge_agreed"] and result.summary["merge_members"] == list(range(NODES))
    assert not any(n["rejected"] for n in result.summary["per_node"])


def test_choco_survives_lost_messages(tmp_path: Path) -> None:
    """With 5% of messages lost by the links (senders cannot tell), receivers leave the senders out until
    the next dense resync (every 10 rounds): losses happen, nothing malformed arrives, and the nodes still learn.
    A lost message costs its receiver a round timeout, hence the short one."""
    result = run(
        tmp_path,
        **{
            "compression.method": "topk",
            "compression.topk_fraction": 0.1,
            "compression.resync_every": 10,
            "links.loss": 0.05,
            "transport.round_timeout_s": 0.25,
        },
    )
    assert result.summary["link_dropped"] > 0 and result.summary["missed_messages"] > 0
    reasons = {reason for n in result.summary["per_node"] for reason in n["rejected"]}
    assert reasons <= {"stale_round", "future_round"}, (
        reasons
    )  # outside the round window (late, or from a neighbour ahead), never malformed
    assert result.summary["accuracy_mean"] > 0.45, result.summary["accuracy_mean"]
