"""Consensus math on real processes: with lr 0 the network average is preserved, and the consensus
distance contracts each round by the second-largest eigenvalue modulus of W, as theory predicts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from gossip.config import load_config
from gossip.node.plan import build_flat_model, plan_node
from gossip.results.rundir import load_vector, read_jsonl
from gossip.topology import parse_spec
from tests.conftest import run_gossip

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROUNDS = 24


@pytest.mark.parametrize(("spec", "nodes"), [("ring", 8), ("torus:4x4", 16)])
def test_average_preserved_and_contraction_matches_lambda2(tmp_path: Path, spec: str, nodes: int) -> None:
    """Random initial vectors (independent init), no training: the mean of the nodes' vectors stays
    put to 1e-6 and the measured per-round contraction of the consensus distance equals |λ2(W)|.

    Tolerance: after t rounds the next eigen-mode's share of the distance is (|λ3|/|λ2|)^t; from
    round 8 on that is below 2e-4 on the ring (0.333/0.805) and 0 on the torus (the 0.2-modes are
    gone by (1/3)^8), so the only error left is float32 rounding (~1e-7 relative per round). We
    allow 1 % — far tighter than any other plausible contraction (e.g. |λ2|² or the spectral gap).
    """
    run_dir = tmp_path / "run"
    result = run_gossip(
        "launch",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "-n",
        str(nodes),
        "-t",
        spec,
        "-r",
        str(ROUNDS),
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
    assert result.returncode == 0, result.stderr
    cfg = load_config(run_dir / "config.toml", env={})

    initial = np.stack([build_flat_model(plan_node(cfg, i, run_dir)).vector.numpy() for i in range(nodes)])
    final = np.stack([load_vector(run_dir / "nodes" / f"node-{i}.npy") for i in range(nodes)])
    assert np.std(initial, axis=0).min() > 0.1  # the nodes really started apart
    assert np.abs(final.mean(axis=0) - initial.mean(axis=0)).max() < 1e-6
    assert np.abs(final - final.mean(axis=0)).max() < np.abs(initial - initial.mean(axis=0)).max() * 0.2

    per_round = np.zeros(ROUNDS)
    for i in range(nodes):
        records = read_jsonl(run_dir / "nodes" / f"node-{i}.jsonl")
        assert [r["round"] for r in records] == list(range(ROUNDS))
        per_round += np.array([r["consensus_distance"] for r in records]) ** 2
    distance = np.sqrt(per_round)
    ratios = distance[9:] / distance[8:-1]
    measured = math.exp(np.log(ratios).mean())

    topology = parse_spec(spec, n=nodes)
    lambda2 = topology.second_eigenvalue("metropolis")
    assert measured == pytest.approx(lambda2, rel=0.01), (measured, lambda2, ratios)
