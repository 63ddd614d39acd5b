"""bench/fuzz.py, small: a live node survives a flood of malformed messages and accounts for every one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_fuzz_bench_accounts_for_every_message_and_the_node_keeps_training(tmp_path: Path) -> None:
    """5 000 mutated messages at a real `gossip node`: the bench exits 0, which it only does when every message
    sent is counted by the node as rejected (by reason) or accepted, rounds advanced during and after the flood,
    and the node exited cleanly on SIGTERM (143: stopped before its last round); its RSS grew by less than 20 MiB."""
    out = tmp_path / "fuzz.json"
    r = subprocess.run(
        [sys.executable, "bench/fuzz.py", "--messages", "5000", "--seed", "1", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["unaccounted"] == 0 and result["messages_fuzz"] == 5000
    assert result["rejected_total"] + result["accepted_from_node_1"] == 5000 + result["messages_legit"]
    assert len(result["rejected_by_reason"]) >= 8  # the mutations reach many different checks
    assert result["rss_kib"]["end"] - result["rss_kib"]["start"] < 20 * 1024
