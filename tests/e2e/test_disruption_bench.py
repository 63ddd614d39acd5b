"""bench/disruption.py's smoke run: real node processes killed at their round and a simulation, one table each."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_the_quick_run_kills_the_hubs_without_data_and_prints_both_tables() -> None:
    """``--quick --scenarios none,no-data-hubs``: 8 real nodes (2 hubs that hold no data SIGKILLed once they recorded
    round 5) and 24 simulated ones; each table has both rows, the survivors counted, the change against none and the
    quoted claim beside it. No figure is asserted: the bench measures, the test checks that it still runs."""
    r = subprocess.run(
        [sys.executable, "bench/disruption.py", "--quick", "--scenarios", "none,no-data-hubs"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Real processes: 8 nodes, 2 removed at round 5 of 20" in out and "Simulation: 24 nodes, 5 removed at round 5 of 20" in out
    rows = [line for line in out.splitlines() if line.startswith("| no-data-hubs |")]
    assert len(rows) == 2
    assert [row.split(" | ")[2] for row in rows] == ["6", "19"]  # survivors
    assert all("points" in row and "losing connectivity hurts accuracy more than losing data" in row for row in rows)
    # killed once they recorded round 5, within a poll of it (a round more on a loaded machine), before the end
    killed_at = re.search(r"Removed nodes had recorded rounds: (\d+)–(\d+) when they went", out)
    assert killed_at and 5 <= int(killed_at[1]) <= int(killed_at[2]) < 20, out
