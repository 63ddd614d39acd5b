"""``gossip report`` on run directories the tests write by hand: user mistakes, partial runs, edge cases.

Real runs are reported in tests/e2e/test_report.py; here the input files are written directly (in
the formats gossip.results.rundir defines) to reach cases a healthy run never produces.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gossip.cli import main
from gossip.errors import RunDirError
from gossip.results.report import FIGURE_DPI, FIGURE_SIZE_IN, attackers_of, write_report
from gossip.results.rundir import RecordWriter
from gossip.results.summary import NodeSummary
from tests.prom import assert_real_image, assert_real_plot, red_pixels

PLOT_SIZE = (int(FIGURE_SIZE_IN[0] * FIGURE_DPI), int(FIGURE_SIZE_IN[1] * FIGURE_DPI))


def _write_run(run_dir: Path, nodes: int, rounds: int, *, eval_every: int = 1, distance: float | None = None, wire: bool = True) -> None:
    """Per-node JSONL records of a made-up run (no summary.json, no topology: an interrupted launch)."""
    for node in range(nodes):
        writer = RecordWriter(run_dir / "nodes" / f"node-{node}.jsonl", truncate=True)
        for t in range(rounds):
            evaluated = (t + 1) % eval_every == 0
            writer.write(
                {
                    "node": node,
                    "round": t,
                    "time": 1000.0 + t,
                    "loss": 2.3 / (1 + t) + 0.01 * node,
                    "accuracy": 0.1 + 0.8 * t / rounds - 0.01 * node if evaluated else None,
                    "test_loss": 2.2 / (1 + t) if evaluated else None,
                    "consensus_distance": distance if distance is not None else math.exp(-t / 3) * (1 + node / 10),
                    "arrived": 2,
                    "missing": [],
                    "bytes_sent": (1000 + node) * wire,
                    "bytes_received": 1000 * wire,
                    "rejected": 0,
                }
            )
        writer.close()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: None, "run directory not found"),
        (lambda d: d.write_text("x"), "not a run directory (a file)"),
        (lambda d: d.mkdir(), "no nodes/node-<i>.jsonl"),
        (lambda d: (d / "nodes").mkdir(parents=True) or (d / "nodes" / "node-0.jsonl").write_text(""), "recorded a round"),
    ],
    ids=["missing", "a-file", "no-records", "empty-records"],
)
def test_report_user_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, message: str
) -> None:
    """A path that is not a run (or a run with nothing recorded yet): one line, exit 2, no traceback."""
    run_dir = tmp_path / "run"
    make(run_dir)  # type: ignore[operator]
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gossip: error: ") and message in err[0], err


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ({}, set()),
        ({"byzantine": {"nodes": [0, 5], "attack": "alie"}}, {0, 5}),
        ({"byzantine": None}, set()),
    ],
)
def test_attackers_are_read_from_the_launchers_shape(summary: dict[str, object], expected: set[int]) -> None:
    """summary["byzantine"] names attackers as gossip launch writes them, {"nodes": [...], "attack": ...}; absent or null means none."""
    assert attackers_of(summary) == expected


@pytest.mark.parametrize("byzantine", ["node three", [1, 3], {"attackers": [2], "attack": "sign_flip"}])
def test_an_unreadable_attacker_list_is_refused(byzantine: object) -> None:
    """Anything else under "byzantine" is an error, not a silently honest run."""
    with pytest.raises(RunDirError, match="byzantine"):
        attackers_of({"byzantine": byzantine})


@pytest.mark.slow
def test_partial_run_many_nodes_sparse_evaluations(tmp_path: Path) -> None:
    """No summary.json and no topology (an interrupted launch), 12 nodes, accuracy every 3rd round:
    the figures are still real plots, the topology figure is left out and the notes say why."""
    run_dir = tmp_path / "run"
    _write_run(run_dir, nodes=12, rounds=15, eval_every=3)
    paths = write_report(run_dir)
    assert [p.name for p in paths] == ["accuracy.png", "loss.png", "consensus.png", "bytes.png", "report.md"]
    for path in paths[:-1]:
        assert_real_plot(path, PLOT_SIZE)
        assert red_pixels(path) == 0
    text = paths[-1].read_text()
    assert "no readable topology.graphml" in text and "no summary.json" in text
    assert text.count("| honest | ? | - | 15 |") == 12  # no summary: the device is not known


@pytest.mark.slow
def test_consensus_at_exactly_zero_is_drawn_on_a_linear_axis(tmp_path: Path) -> None:
    """Nodes that agree exactly from the start have nothing a log axis can show: the figure says so
    instead of failing or coming out empty."""
    run_dir = tmp_path / "run"
    _write_run(run_dir, nodes=3, rounds=5, distance=0.0)
    write_report(run_dir)
    assert_real_plot(run_dir / "report" / "accuracy.png", PLOT_SIZE)
    assert_real_image(run_dir / "report" / "consensus.png", PLOT_SIZE)  # flat lines at 0 and a note: few coloured pixels


@pytest.mark.slow
def test_a_run_without_wire_or_summary_like_gossip_simulate(tmp_path: Path) -> None:
    """A run whose nodes sent nothing (gossip simulate's run directories): zero bytes are drawn without a
    warning (warnings are errors here), and each node's status comes from its own nodes/node-<i>.json."""
    run_dir = tmp_path / "run"
    _write_run(run_dir, nodes=3, rounds=4, wire=False)
    for node in range(3):
        NodeSummary(node, "finished", 4, 0.5, "h", simulated=True).write(
            run_dir / "nodes" / f"node-{node}.json"
        )  # as gossip simulate writes it
    paths = write_report(run_dir)
    assert_real_image(paths[3], PLOT_SIZE)
    assert paths[3].name == "bytes.png"
    assert paths[-1].read_text().count("| honest | finished | - | 4 |") == 3  # a simulated node has no device of its own


def test_the_image_check_rejects_an_empty_plot(tmp_path: Path) -> None:
    """assert_real_plot is not vacuous: axes with nothing drawn on them fail it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGURE_SIZE_IN, dpi=FIGURE_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title("nothing here")
    ax.set_xlabel("round")
    fig.savefig(tmp_path / "empty.png", format="png")
    with pytest.raises(AssertionError):
        assert_real_plot(tmp_path / "empty.png", PLOT_SIZE)
