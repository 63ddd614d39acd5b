"""``gossip simulate`` lands on the accuracy curve of the real multi-process run of the same config."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from gossip.config import load_config
from gossip.errors import ConfigError
from gossip.results.rundir import records_by_node
from gossip.run.launch import launch
from gossip.run.simulate import simulate
from tests.conftest import run_gossip

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _accuracy_by_round(run_dir: Path) -> np.ndarray:
    rows = []
    for _node, records in records_by_node(run_dir):
        rows.append([r["accuracy"] for r in records if r["accuracy"] is not None])
    return np.array(rows)


def test_simulation_matches_the_real_run(tmp_path: Path) -> None:
    """Same config (5-node ring, digits, mlp, momentum): per node and per evaluation, the
    simulated accuracy is within 1.5 points of the multi-process run's. The two differ only by float
    rounding in the mix (a matrix product vs the difference form), which the assertion bounds."""
    cfg = load_config(
        env={},
        overrides={
            "run.nodes": 5,
            "topology.spec": "ring",
            "training.rounds": 40,
            "data.dataset": "digits",
            "model.name": "mlp",
            "training.eval_every": 10,
            "training.lr": 0.05,
        },
    )
    real = launch(cfg, run_dir=tmp_path / "real", progress=False, out=io.StringIO())
    assert real.exit_code == 0
    sim = simulate(cfg, run_dir=tmp_path / "sim")
    a, b = _accuracy_by_round(tmp_path / "real"), _accuracy_by_round(tmp_path / "sim")
    assert a.shape == b.shape == (5, 4)
    assert a[:, -1].mean() > 0.5  # it learned
    assert np.abs(a - b).max() <= 0.015, (a, b)
    assert sim.accuracy.mean() == pytest.approx(b[:, -1].mean())


def test_simulate_cli_writes_a_run_directory(tmp_path: Path) -> None:
    """The console script runs a simulation and prints the mean accuracy."""
    r = run_gossip(
        "simulate",
        "-n",
        "4",
        "-t",
        "complete",
        "-r",
        "5",
        "--dataset",
        "digits",
        "--model",
        "logreg",
        "--run-dir",
        str(tmp_path / "s"),
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "mean accuracy" in r.stdout
    assert len(list((tmp_path / "s" / "nodes").glob("node-*.jsonl"))) == 4


def test_a_simulation_too_large_for_the_memory_is_refused_in_one_line(tmp_path: Path) -> None:
    """10 000 simulated nodes (the most a topology has) of a 16M-parameter MLP need 3.9 TB: one line, exit 2, no
    run directory, no traceback."""
    r = run_gossip(
        "simulate",
        "-n",
        "10000",
        "-t",
        "ring",
        "-r",
        "1",
        "--set",
        "model.hidden=[4000, 4000]",
        "--run-dir",
        str(tmp_path / "s"),
        timeout=300,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "simulating 10000 nodes" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "s").exists()


def test_models_with_batchnorm_are_refused() -> None:
    """Running statistics cannot be updated under vmap: a model with BatchNorm is refused with one line."""
    from torch import nn

    from gossip.learn.flat import flatten_
    from gossip.run.simulate import _check_supported

    cfg = load_config(env={})
    layout = flatten_(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))).layout
    with pytest.raises(ConfigError, match="normalisation"):
        _check_supported(cfg, layout)


@pytest.mark.parametrize(
    "overrides",
    [{"schedule.mode": "random"}, {"topology.spec": "one-peer-exponential"}, {"training.mode": "async"}, {"merge.enabled": True}],
)
def test_algorithms_it_does_not_model_are_refused(overrides: dict) -> None:
    """Schedules, the one-peer graph, async mode and the merge are not simulated: refused, not ignored."""
    from torch import nn

    from gossip.learn.flat import flatten_
    from gossip.run.simulate import _check_supported

    cfg = load_config(env={}, overrides=overrides)
    with pytest.raises(ConfigError, match="synchronous D-SGD"):
        _check_supported(cfg, flatten_(nn.Linear(4, 2)).layout)
