"""`gossip launch --resume` and `--restart` refuse what cannot work with one line and exit 2, before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossip.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["launch", "--resume", "{tmp}/nothing-here"], "is not a run directory gossip launch prepared"),
        (["launch", "--resume", "{tmp}", "--rounds", "5"], "--resume takes the run's own config; drop --rounds"),
        (["launch", "--resume", "{tmp}", "--set", "training.lr=1"], "drop --set"),
        (["launch", "--restart", "-1", "-n", "4"], "argument --restart: -1 is not in 0..1000"),
        (["node", "--id", "0", "--resume", "--set", "run.nodes=4"], "--resume needs --run-dir"),
        (["node", "--id", "0", "--join-round", "5", "--run-dir", "{tmp}", "--set", "run.nodes=4"], "--join-round needs --resume"),
        (
            ["node", "--id", "0", "--resume", "--join-round", "999", "--run-dir", "{tmp}", "--set", "run.nodes=4"],
            "--join-round 999 is outside",
        ),
    ],
)
def test_resume_mistakes_are_one_line_and_exit_2(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing run directory, run flags next to --resume, a negative --restart, a node --resume without a run
    directory, and a --join-round without --resume or outside the run are user errors: `gossip: error: ...` on one line, exit code 2, no traceback."""
    try:
        code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    except SystemExit as exc:  # argparse errors exit from inside main
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("gossip: error:") and message in err, err
