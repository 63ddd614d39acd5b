"""The console script's smaller commands and its config-file path."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from tests.conftest import run_gossip

pytestmark = [pytest.mark.e2e]


def test_topology_show_prints_facts_and_draws(tmp_path: Path) -> None:
    """`gossip topology show` prints nodes, edges, degrees and the spectral gap, and writes a real PNG."""
    png = tmp_path / "torus.png"
    r = run_gossip("topology", "show", "torus:4x4", "-o", str(png), timeout=120)
    assert r.returncode == 0, r.stderr
    text = r.stdout.lower()
    for word in ("16", "32", "degree", "spectral gap"):
        assert word in text, r.stdout
    image = mpimg.imread(png)
    assert image.shape[0] >= 400 and image.shape[1] >= 400
    assert image[..., :3].std() > 0.05


def test_topology_show_reads_decentralizepy_files(tmp_path: Path) -> None:
    """The shipped decentralizepy adjacency file is read unchanged."""
    repo = Path(__file__).resolve().parents[2]
    r = run_gossip("topology", "show", str(repo / "topologies" / "ring-8.adjacency"), "--no-draw", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "8" in r.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("topology", "show", "ring", "-n", "8", "--out", "{bad}/ring.png"),
        ("keys", "--nodes", "2", "--out", "{bad}"),
        ("deploy", "compose", "-n", "4", "-t", "ring", "-r", "2", "--out", "{bad}"),
        ("launch", "-n", "4", "-t", "ring", "-r", "2", "--run-dir", "{bad}"),
        ("simulate", "-n", "4", "-t", "ring", "-r", "2", "--run-dir", "{bad}"),
        ("report", "{run}", "--out", "{file}"),
        ("dashboards", "--deploy-dir", "{bad}"),
    ],
    ids=lambda args: args[0],
)
def test_a_path_that_cannot_be_written_is_one_line_naming_it(tmp_path: Path, args: tuple[str, ...]) -> None:
    """An output path under /proc (nothing can be created there, even by root), or a file where a directory
    goes: one line naming the path, exit 2, no traceback — for every command that writes files."""
    run = tmp_path / "run"
    (run / "nodes").mkdir(parents=True)
    (run / "nodes" / "node-0.jsonl").write_text('{"node": 0, "round": 0, "loss": 1.0, "accuracy": 0.5}\n')
    afile = tmp_path / "a-file"
    afile.write_text("")
    bad = "/proc/gossip-no-such-dir"
    argv = [a.replace("{bad}", bad).replace("{run}", str(run)).replace("{file}", str(afile)) for a in args]
    if args[0] == "dashboards":
        argv = [a.replace(bad, "/proc") for a in argv]  # an existing directory nothing can be written under
    r = run_gossip(*argv, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gossip: error: "), r.stderr
    assert ("/proc" in lines[0] or str(afile) in lines[0]) and "Traceback" not in r.stderr


def test_topology_show_unknown_spec_is_one_line(tmp_path: Path) -> None:
    """A typo in a spec is one line and exit 2."""
    r = run_gossip("topology", "show", "torsu", "-n", "9", timeout=120)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "unknown topology 'torsu'" in r.stderr


@pytest.mark.slow
def test_launch_from_a_config_file(tmp_path: Path) -> None:
    """`gossip launch --config run.toml` runs what the file says; flags still override it."""
    config = tmp_path / "run.toml"
    config.write_text(
        '[run]\nnodes = 3\nseed = 5\n[topology]\nspec = "complete"\n[data]\ndataset = "digits"\n'
        '[model]\nname = "logreg"\n[training]\nrounds = 50\nlr = 0.1\n'
    )
    r = run_gossip("launch", "--config", str(config), "--rounds", "4", "--run-dir", str(tmp_path / "run"), "--no-progress", timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["nodes"] == 3 and summary["rounds"] == 4 and summary["dataset"] == "digits" and summary["model"] == "logreg"
