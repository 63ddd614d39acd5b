"""Disruptions in ``gossip simulate``: nodes removed at a round, and a node without data, against the real run."""

from __future__ import annotations

import io
import json
import math
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gossip.config import RunConfig, load_config
from gossip.errors import ConfigError
from gossip.results.node_summary import NodeSummary
from gossip.results.rundir import NodeFiles, load_vector, read_jsonl, records_by_node
from gossip.run.launch import launch
from gossip.run.simulate import simulate

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

RELAY = """
import numpy as np


def relay_first(num_samples, labels, nodes, seed):
    rest = np.random.default_rng(seed).permutation(num_samples)
    return [[]] + [part.tolist() for part in np.array_split(rest, nodes - 1)]


relay_first.allows_empty = True
"""


def _config(**overrides: object) -> RunConfig:
    base = {"run.nodes": 5, "topology.spec": "ring", "training.rounds": 10, "data.dataset": "digits", "training.eval_every": 5}
    return load_config(env={}, overrides={**base, **overrides})


def test_a_removed_node_stops_recording_at_its_round_and_is_not_counted(tmp_path: Path) -> None:
    """``removed={5: [1]}``: node 1 records rounds 0..4 and its summary says stopped after 5 rounds without an accuracy;
    the others run all 10 rounds, and the result's accuracy is NaN for node 1 only."""
    sim = simulate(_config(), run_dir=tmp_path, removed={5: [1]})
    rounds = {node: [r["round"] for r in records] for node, records in records_by_node(tmp_path)}
    assert rounds[1] == list(range(5)) and all(rounds[i] == list(range(10)) for i in (0, 2, 3, 4))
    summary = NodeSummary.from_dict(json.loads(NodeFiles(tmp_path, 1).summary.read_text()))
    assert (summary.status, summary.rounds_completed, summary.accuracy) == ("stopped", 5, None)
    assert math.isnan(sim.accuracy[1]) and not np.isnan(sim.accuracy[[0, 2, 3, 4]]).any()


def test_a_removed_nodes_model_is_the_one_it_had_when_removed(tmp_path: Path) -> None:
    """Removed at round 5 of 10, node 1's final model is bit for bit the model of a 5-round run: it took no step and no mix since."""
    simulate(_config(**{"training.rounds": 5}), run_dir=tmp_path / "five")
    simulate(_config(), run_dir=tmp_path / "removed", removed={5: [1]})
    assert np.array_equal(load_vector(NodeFiles(tmp_path / "five", 1).model), load_vector(NodeFiles(tmp_path / "removed", 1).model))


def test_removing_nodes_changes_the_survivors_models(tmp_path: Path) -> None:
    """A neighbour of a removed node mixes without it from that round on: its final model differs from the undisturbed run's."""
    simulate(_config(), run_dir=tmp_path / "plain")
    simulate(_config(), run_dir=tmp_path / "removed", removed={5: [1]})
    assert not np.array_equal(load_vector(NodeFiles(tmp_path / "plain", 2).model), load_vector(NodeFiles(tmp_path / "removed", 2).model))


def test_an_empty_removal_schedule_is_the_undisturbed_run_bit_for_bit(tmp_path: Path) -> None:
    """``removed={}`` takes the same path as no argument: every final model is the same, bit for bit."""
    simulate(_config(), run_dir=tmp_path / "plain")
    simulate(_config(), run_dir=tmp_path / "empty", removed={})
    for i in range(5):
        assert np.array_equal(load_vector(NodeFiles(tmp_path / "plain", i).model), load_vector(NodeFiles(tmp_path / "empty", i).model))


@pytest.mark.parametrize(
    ("removed", "message"),
    [
        ({0: [1]}, "nodes can be removed at rounds 1..9, not at round 0"),
        ({3: [7]}, "node 7 cannot be removed at round 3"),
        ({3: [1], 4: [1]}, "node 1 cannot be removed at round 4"),
        ({3: [0, 1, 2, 3, 4]}, "removing all 5 nodes leaves nothing to train"),
    ],
    ids=["round-0", "unknown-node", "twice", "everyone"],
)
def test_a_removal_schedule_that_cannot_happen_is_refused(removed: dict[int, list[int]], message: str) -> None:
    """One ConfigError line, before any model is trained."""
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        simulate(_config(), removed=removed)


def test_a_node_without_data_only_mixes_and_simulate_matches_the_real_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A split marked ``allows_empty`` gives node 0 of a 5-node ring no data: in real node processes and in the
    simulation it takes no local steps (loss null in every record) and still learns by mixing; per node and per
    evaluation the two accuracies are within 1.5 points (they differ only by float rounding in the mix)."""
    (tmp_path / "relaysplit.py").write_text(textwrap.dedent(RELAY))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}")
    cfg = _config(**{"training.rounds": 40, "training.eval_every": 10, "data.partition": "relaysplit:relay_first", "training.lr": 0.05})
    real = launch(cfg, run_dir=tmp_path / "real", progress=False, out=io.StringIO())
    assert real.exit_code == 0
    simulate(cfg, run_dir=tmp_path / "sim")
    acc = {}
    for name in ("real", "sim"):
        node0 = read_jsonl(NodeFiles(tmp_path / name, 0).records)
        assert len(node0) == 40 and all(r["loss"] is None for r in node0)
        acc[name] = np.array([[r["accuracy"] for r in recs if r["accuracy"] is not None] for _n, recs in records_by_node(tmp_path / name)])
    assert acc["real"].shape == acc["sim"].shape == (5, 4)
    assert acc["real"][0, -1] > 0.5  # node 0 learned from its neighbours alone
    assert np.abs(acc["real"] - acc["sim"]).max() <= 0.015, acc
