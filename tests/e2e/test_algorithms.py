"""The algorithms of issue 4 through the real path: `gossip launch`, one OS process per node, ZeroMQ sockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gossip.algorithms.merge import exact_average
from gossip.config import load_config
from gossip.ids import NodeId
from gossip.node.plan import build_flat_model, plan_node
from gossip.results.rundir import load_vector, read_jsonl
from tests.conftest import run_gossip
from tests.procs import node_pids

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def launch(run_dir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = run_gossip("launch", "--run-dir", str(run_dir), "--no-progress", *args, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result


def initial_vectors(run_dir: Path, nodes: int) -> np.ndarray:
    cfg = load_config(run_dir / "config.toml", env={})
    return np.stack([build_flat_model(plan_node(cfg, i, run_dir)).vector.numpy() for i in range(nodes)])


def final_vectors(run_dir: Path, nodes: list[int] | range, suffix: str = "npy") -> np.ndarray:
    return np.stack([load_vector(run_dir / "nodes" / f"node-{i}.{suffix}") for i in nodes])


@pytest.mark.parametrize("rounds", [3])
def test_one_peer_exponential_is_the_exact_average_after_log2n_rounds(tmp_path: Path, rounds: int) -> None:
    """8 processes, lr 0, random independent initial vectors: after log2 8 = 3 one-peer rounds (and
    after 6) every node holds the network average to float32 precision — REFERENCES §8 row 4."""
    run_dir = tmp_path / "run"
    launch(
        run_dir,
        "-n",
        "8",
        "-t",
        "one-peer-exponential",
        "-r",
        str(rounds),
        "--model",
        "vector",
        "--lr",
        "0",
        "--local-steps",
        "0",
        "--set",
        "model.init=independent",
        "--set",
        "training.eval_every=1000",
    )
    start, end = initial_vectors(run_dir, 8), final_vectors(run_dir, range(8))
    assert np.abs(start - start.mean(0)).max() > 1.0
    assert np.abs(end - start.mean(0)).max() < 1e-5
    records = read_jsonl(run_dir / "nodes" / "node-0.jsonl")
    assert all(r["comm"] == "one-peer" and r["arrived"] == 1 and r["bytes_sent"] > 0 for r in records)


def test_variance_corrected_run_hits_the_target_every_round(tmp_path: Path) -> None:
    """6 processes, independent init, rule = variance: each round's record shows the averaged layer
    variance below the target and the corrected one equal to it; the run learns."""
    run_dir = tmp_path / "run"
    launch(
        run_dir,
        "-n",
        "6",
        "-t",
        "ring",
        "-r",
        "20",
        "--lr",
        "0.05",
        "--set",
        "aggregation.rule=variance",
        "--set",
        "model.init=independent",
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["aggregation"] == "variance" and summary["accuracy_mean"] > 0.15
    node_summary = json.loads((run_dir / "nodes" / "node-0.json").read_text())
    assert node_summary["variance_layers"] == ["hidden.0.weight", "hidden.1.weight", "out.weight"]
    for i in range(6):
        for r in read_jsonl(run_dir / "nodes" / f"node-{i}.jsonl"):
            lv = r["layer_var"]
            assert np.allclose(lv["after"], lv["target"], rtol=1e-4)
            if r["round"] == 0:
                assert all(b < 0.5 * t for b, t in zip(lv["before"], lv["target"], strict=True))


def test_async_gossip_then_merge(tmp_path: Path) -> None:
    """4 processes in async mode (150 pushes, one every 20 ms: seconds of overlap even on a loaded machine; merge on receipt, variance-corrected, lr 0), then
    the global merge: the models came closer without rounds, and all end bit-identical."""
    run_dir = tmp_path / "run"
    launch(
        run_dir,
        "-n",
        "4",
        "-t",
        "ring",
        "-r",
        "150",
        "--model",
        "vector",
        "--lr",
        "0",
        "--local-steps",
        "0",
        "--set",
        "model.init=independent",
        "--set",
        "training.mode=async",
        "--set",
        "training.period_s=0.02",
        "--set",
        "merge.enabled=true",
        "--set",
        "aggregation.rule=variance",
        "--set",
        "variance.self_weight=mixing",
        "--set",
        "variance.layers=all",
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["mode"] == "async" and summary["merge_agreed"] and summary["merge_members"] == [0, 1, 2, 3]
    start, pre = initial_vectors(run_dir, 4), final_vectors(run_dir, range(4), "premerge.npy")
    spread = lambda x: float(np.linalg.norm(x - x.mean(0)))  # noqa: E731
    assert spread(pre) < 0.5 * spread(start)
    merged = final_vectors(run_dir, range(4))
    assert all(np.array_equal(merged[0], m) for m in merged)
    merges = sum(r["arrived"] for i in range(4) for r in read_jsonl(run_dir / "nodes" / f"node-{i}.jsonl"))
    assert merges > 20
    assert all(r["comm"] == "push" for r in read_jsonl(run_dir / "nodes" / "node-0.jsonl"))


def test_merge_excludes_a_node_killed_mid_run_and_the_rest_agree(tmp_path: Path) -> None:
    """6 processes on a ring; node 2 is killed with SIGKILL after its third round. The five others finish
    training (waiting out node 2's timeout), then merge: all five hold bit-identical models, equal to the
    exact average (float64 sum in id order) of the five models they ended training with; the summary
    has one merged hash, the members, and node 2 as dead."""
    run_dir = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    args = [
        "-n",
        "6",
        "-t",
        "ring",
        "-r",
        "10",
        "--lr",
        "0.05",
        "--set",
        "transport.round_timeout_s=1.0",
        "--set",
        "merge.enabled=true",
        "--set",
        "merge.timeout_s=6",
        "--keep-going",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gossip", "launch", "--run-dir", str(run_dir), "--no-progress", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and len(read_jsonl(run_dir / "nodes" / "node-2.jsonl")) < 3:
            time.sleep(0.05)
        pid = node_pids(run_dir).get(2)
        assert pid is not None, "node 2 is not running"
        os.kill(pid, signal.SIGKILL)
        _out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert "node 2 died (killed by SIGKILL)" in err
    survivors = [0, 1, 3, 4, 5]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["dead_nodes"] == [2]
    assert summary["merge_agreed"] is True and summary["merge_members"] == survivors
    assert summary["merged_nodes"] == survivors
    hashes = {n["model_hash"] for n in summary["per_node"] if n["node"] in survivors}
    assert hashes == {summary["merged_model_hash"]}
    pre = {NodeId(i): torch.from_numpy(v) for i, v in zip(survivors, final_vectors(run_dir, survivors, "premerge.npy"), strict=True)}
    merged = final_vectors(run_dir, survivors)
    assert np.array_equal(merged[0], exact_average(pre).numpy())
    assert all(np.array_equal(merged[0], m) for m in merged)
    assert len({v.numpy().tobytes() for v in pre.values()}) == 5  # they really differed before the merge
    assert len(read_jsonl(run_dir / "nodes" / "node-2.jsonl")) < 10
    assert "global merge: 5 models averaged" in err


def test_merge_over_curve_reaches_non_neighbours(tmp_path: Path) -> None:
    """With CURVE on, a node admits only known keys: the merge (all-to-all on a ring, so between
    non-neighbours too) still completes and every node ends with the same model."""
    run_dir = tmp_path / "run"
    launch(run_dir, "-n", "4", "-t", "ring", "-r", "3", "--set", "security.curve=true", "--set", "merge.enabled=true")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["merge_agreed"] and summary["merge_members"] == [0, 1, 2, 3]
    assert all(sum(n["rejected"].values()) == 0 for n in summary["per_node"])
