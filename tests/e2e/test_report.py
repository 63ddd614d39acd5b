"""Run reports from a real run: ``gossip launch`` writes one by default, ``gossip report`` on demand.

The PNGs are opened and checked for what a reader would see: the expected size, varied pixels,
many colours, coloured marks (data was drawn), and red exactly where attackers are drawn.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gossip.results.report import FIGURE_DPI, FIGURE_SIZE_IN
from tests.conftest import run_gossip
from tests.prom import assert_real_plot, red_pixels

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

NODES = 4
ROUNDS = 12
PLOT_SIZE = (int(FIGURE_SIZE_IN[0] * FIGURE_DPI), int(FIGURE_SIZE_IN[1] * FIGURE_DPI))
TOPOLOGY_SIZE = (600, 600)  # gossip.topology.graph.draw's fixed size
FIGURES = ("accuracy.png", "loss.png", "consensus.png", "bytes.png")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A real 4-node ring run, launched with the defaults (so with its report)."""
    run_dir = tmp_path_factory.mktemp("report") / "run"
    result = run_gossip(
        "launch", "--run-dir", str(run_dir), "--no-progress", "-n", str(NODES), "-t", "ring", "-r", str(ROUNDS), "--seed", "1", timeout=900
    )
    assert result.returncode == 0, result.stderr
    return run_dir, result


def test_launch_writes_the_report_by_default(finished_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    """Without --no-report, the launcher ends with RUN_DIR/report: every figure a real plot of its
    size, and report.md with one table row per node and a link to each figure."""
    run_dir, result = finished_run
    report = run_dir / "report"
    assert f"gossip: report {report / 'report.md'}" in result.stderr
    for name in FIGURES:
        assert_real_plot(report / name, PLOT_SIZE)
    assert_real_plot(report / "topology.png", TOPOLOGY_SIZE)
    assert not (report / "byzantine.png").exists()
    text = (report / "report.md").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    for node in summary["per_node"]:
        assert f"| {node['node']} | honest | finished | cpu | {ROUNDS} | {node['accuracy']:.4f} |" in text
    for name in (*FIGURES, "topology.png"):
        assert f"]({name})" in text
    assert f"{summary['accuracy_mean']:.4f} ±" in text
    for name in FIGURES:  # no attackers: nothing is drawn in the attackers' red
        assert red_pixels(report / name) == 0, name


def test_report_command_on_a_byzantine_run_draws_attackers_apart(
    finished_run: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    """With summary["byzantine"] naming node 2, `gossip report` adds the honest-vs-attacker figure,
    draws node 2 in red in the per-node plots, and marks it in the table."""
    source, _ = finished_run
    run_dir = tmp_path / "byzantine-run"
    shutil.copytree(source, run_dir, ignore=shutil.ignore_patterns("report"))
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["byzantine"] = {"nodes": [2], "attack": "sign_flip"}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "out"
    result = run_gossip("report", str(run_dir), "-o", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(out / n) for n in (*FIGURES, "topology.png", "byzantine.png", "report.md")]
    assert_real_plot(out / "byzantine.png", PLOT_SIZE)
    assert red_pixels(out / "byzantine.png") > 200
    for name in ("accuracy.png", "loss.png", "consensus.png"):
        assert red_pixels(out / name) > 100, f"{name}: the attacker is not drawn in red"
    text = (out / "report.md").read_text()
    assert "| 2 | attacker |" in text and "| 1 | honest |" in text
    assert "attackers | 2: accuracy" in text


def test_launch_without_prometheus_carries_on_and_no_report_writes_none(tmp_path: Path) -> None:
    """--prometheus with no prometheus binary on PATH: one line saying how to get one, and the run goes
    on to the end. --no-report: RUN_DIR/report is not written."""
    run_dir = tmp_path / "run"
    empty = tmp_path / "bin"
    empty.mkdir()
    result = run_gossip(
        "launch",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--no-report",
        "--prometheus",
        "-n",
        "2",
        "-t",
        "complete",
        "-r",
        "2",
        timeout=600,
        env={"PATH": str(empty)},
    )
    assert result.returncode == 0, result.stderr
    about = [line for line in result.stderr.replace(str(tmp_path), "<tmp>").splitlines() if "prometheus" in line.lower()]
    assert len(about) == 1, result.stderr
    assert "not starting Prometheus" in about[0] and "apt-get install prometheus" in about[0]
    assert json.loads((run_dir / "summary.json").read_text())["dead_nodes"] == []
    assert not (run_dir / "report").exists()
    assert "gossip: report" not in result.stderr
