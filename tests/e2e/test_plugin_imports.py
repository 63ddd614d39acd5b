"""``gossip launch`` asks a fresh interpreter with a node's environment whether the nodes import the run's plug-ins,
so a plug-in only the launcher can import is one line, exit 2, before anything is written or started."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

RULE = """
class Mean:
    def aggregate(self, local, received, weights):
        return (local + sum(received.values())) / (1 + len(received))
"""
CONSOLE_SCRIPT = (
    Path(sys.executable).parent / "gossip"
)  # not ``python -m gossip``: that would put the working directory on the launcher's path
SMALL = ["--nodes", "3", "--topology", "complete", "--rounds", "2", "--set", "metrics.enabled=false", "--no-report"]


@pytest.mark.parametrize("mode", [[], ["--spawn"]], ids=["forked", "spawned"])
def test_a_plug_in_shadowed_in_the_nodes_working_directory_is_refused_before_anything_starts(tmp_path: Path, mode: list[str]) -> None:
    """The real way a launcher and its nodes disagree: the ``gossip`` console script has no working directory on
    its path, a node has it first (``python -m gossip node``, or the fork server's ``python -c``). The user's rule
    ``labrule.py`` is on PYTHONPATH; the directory the user runs from holds another project's ``labrule.py``.
    The launcher imports the right one; without the check every node imports the other, exits 2 with
    "'labrule' has no attribute 'Mean'", and the run directory is left behind. With it: one line naming the
    plug-in, the file the nodes would import and what to do, exit 2, no run directory, no node log."""
    lab, work = tmp_path / "lab", tmp_path / "work"
    lab.mkdir()
    work.mkdir()
    (lab / "labrule.py").write_text(textwrap.dedent(RULE))
    (work / "labrule.py").write_text('"""Another project\'s labrule: no Mean here."""\n')
    run_dir = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), str(lab)]))
    argv = [str(CONSOLE_SCRIPT), "launch", *SMALL, *mode, "--set", "aggregation.rule=labrule:Mean", "--run-dir", str(run_dir)]
    proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "gossip: error: [aggregation] rule = 'labrule:Mean': the launcher imports it but a node process does not: "
        f"AttributeError: module 'labrule' has no attribute 'Mean' (it finds 'labrule' at {work / 'labrule.py'}); "
        "nodes import from their working directory first: run gossip from a directory without a module of that name, "
        "with the plug-in's package installed or its directory on PYTHONPATH"
    )
    assert not run_dir.exists()
