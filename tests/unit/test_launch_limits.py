"""The launcher's preparation refuses what the config alone cannot show, before it writes anything.

The run directory stays inside out_dir whatever the topology file calls itself; ports are checked for the last
node; emulated links on which no model could arrive in time are refused; a run directory path that config.toml
could not hold is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gossip.config import load_config
from gossip.errors import ConfigError, TopologyError
from gossip.run.launch import prepare_run
from gossip.topology import Topology, save


def _topology_file(tmp_path: Path, name: str, edge_data: dict[str, object] | None = None) -> Path:
    """A 4-node ring as a gossip JSON topology file whose "name" is ``name`` and whose first edge carries ``edge_data``."""
    path = tmp_path / "graph.json"
    save(Topology.from_edges(4, [(0, 1, edge_data or {}), (1, 2), (2, 3), (3, 0)], "ring-4"), path)
    doc = json.loads(path.read_text())
    doc["name"] = name
    path.write_text(json.dumps(doc))
    return path


def _config(tmp_path: Path, **overrides: object) -> object:
    return load_config(
        env={}, overrides={"run.out_dir": str(tmp_path / "runs"), "metrics.enabled": False, "training.rounds": 2, **overrides}
    )


@pytest.mark.parametrize("name", ["../../z", "../../../../tmp/escaped", "a/../../b"])
def test_a_topology_file_cannot_name_its_run_directory_outside_out_dir(tmp_path: Path, name: str) -> None:
    """The default run directory is named after the topology; a file named "../../z" is refused in one line
    before anything is written (the run directory would otherwise leave out_dir)."""
    graph = _topology_file(tmp_path, name)
    with pytest.raises(TopologyError, match=r"cannot name a run directory") as refused:
        prepare_run(_config(tmp_path, **{"topology.spec": str(graph)}))  # type: ignore[arg-type]
    assert "\n" not in str(refused.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.json"]


def test_base_port_past_65535_for_the_last_node_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """`--base-port 65530 -n 8`: node ports 65530..65537 are not all ports; refused in one line, no run directory."""
    cfg = _config(tmp_path, **{"run.nodes": 8, "metrics.enabled": True})
    with pytest.raises(ConfigError, match=r"^--base-port 65530: 8 nodes and their metrics need ports 65530..65545, past 65535$"):
        prepare_run(cfg, base_port=65530)  # type: ignore[arg-type]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("edge", "error", "message"),
    [
        ({"bandwidth_mbit": 0.001}, ConfigError, r"^edge \(0, 1\): a model of at least \d+ bytes takes \d+ s to arrive"),
        ({"delay_ms": 40_000.0}, ConfigError, r"^edge \(0, 1\): .* takes 40 s to arrive .* transport.round_timeout_s = 30:"),
        ({"delay_ms": 1e300}, TopologyError, r"^edge \(0, 1\): delay_ms must be a number in \[0, 60000\], got 1e\+300$"),
        ({"bandwidth_mbit": 1e-9}, TopologyError, r"^edge \(0, 1\): bandwidth_mbit must be 0 \(unlimited\) or at least 0.001"),
        ({"loss": "nan"}, TopologyError, r"^edge \(0, 1\): loss must be a number in \[0, 1\], got nan$"),
    ],
)
def test_a_link_no_model_could_cross_in_time_is_refused(
    tmp_path: Path, edge: dict[str, object], error: type[Exception], message: str
) -> None:
    """Edge attributes get [links]' ranges, and in sync rounds a link slower than round_timeout_s for the smallest
    message is refused up front: every round would otherwise wait out its timeout for a model that never arrives."""
    cfg = _config(tmp_path, **{"topology.spec": str(_topology_file(tmp_path, "wan", edge))})
    with pytest.raises(error, match=message):
        prepare_run(cfg)  # type: ignore[arg-type]
    assert not (tmp_path / "runs").exists()


def test_a_link_that_is_merely_slow_is_accepted(tmp_path: Path) -> None:
    """A 5 s delay against a 30 s round timeout is an experiment, not a mistake."""
    cfg = _config(tmp_path, **{"topology.spec": str(_topology_file(tmp_path, "wan", {"delay_ms": 5000.0}))})
    _resolved, run_dir, _topology = prepare_run(cfg)  # type: ignore[arg-type]
    assert (run_dir / "config.toml").exists()


def test_a_run_dir_that_config_toml_could_not_hold_is_refused(tmp_path: Path) -> None:
    """--run-dir with a newline in it: refused before it is created (its path is written into config.toml)."""
    with pytest.raises(ConfigError, match=r"^--run-dir must not contain control characters"):
        prepare_run(_config(tmp_path, **{"run.nodes": 4}), run_dir=tmp_path / "a\nb")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == []
