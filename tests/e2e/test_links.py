"""Link emulation on real processes: an emulated delay lengthens rounds, emulated loss shows up as missed models."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from gossip.results.rundir import read_jsonl
from tests.conftest import run_gossip

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

N = 4
ROUNDS = 20


def _launch(run_dir: Path, *sets: str) -> dict:
    r = run_gossip(
        "launch",
        "-n",
        str(N),
        "-t",
        "ring",
        "-r",
        str(ROUNDS),
        "--dataset",
        "digits",
        "--model",
        "logreg",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--no-report",
        "--set",
        "transport.round_timeout_s=1.5",
        *(x for s in sets for x in ("--set", s)),
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((run_dir / "summary.json").read_text())


def test_emulated_delay_and_loss_show_in_round_times_and_missed_models(tmp_path: Path) -> None:
    """Same run twice, plain and with [links] delay_ms = 100, loss = 0.25 on every edge. With emulation the mean
        round takes at least the 100 ms a model needs to arrive; about a quarter of the messages are dropped by the
        senders' emulation (link_dropped), each lost model is a `missing` entry in the receiver's JSONL, and the summary
        totals them. Without emulation nothing is missed (that run waits up to 10 s a round, so a loaded machine cannot
        make a model late: only a lost one could be missed). The shaped run waits 0.75 s, 7.5 times the delay: nearly half of
    its node-rounds lose a model and wait that long."""
    plain = _launch(tmp_path / "plain", "transport.round_timeout_s=10")
    shaped = _launch(tmp_path / "shaped", "links.delay_ms=100", "links.loss=0.25", "transport.round_timeout_s=0.75")

    def rounds(run: str) -> list[dict]:
        return [r for i in range(N) for r in read_jsonl(tmp_path / run / "nodes" / f"node-{i}.jsonl")]

    plain_s = statistics.median(r["round_s"] for r in rounds("plain"))
    shaped_s = statistics.median(r["round_s"] for r in rounds("shaped"))
    # a model needs 100 ms to arrive, so on average a round cannot be shorter (a single round can: a model buffered
    # while its receiver waited out a timeout is there at once); the delay alone is measured in test_netfaults.py
    mean_s = statistics.mean(r["round_s"] for r in rounds("shaped"))
    complete_s = statistics.median(r["round_s"] for r in rounds("shaped") if not r["missing"])
    assert mean_s >= 0.1, (plain_s, shaped_s, mean_s)

    expected = N * 2 * ROUNDS  # every node waits for its two ring neighbours every round
    missed = sum(len(r["missing"]) for r in rounds("shaped"))
    assert 0.1 <= shaped["link_dropped"] / expected <= 0.4, shaped["link_dropped"]  # hellos and byes are lost too, a few
    # every lost model is missed (a round that waited out the timeout can make a neighbour's model late too)
    assert 0.1 <= missed / expected <= 0.5 and missed >= 0.7 * shaped["link_dropped"], (missed, shaped["link_dropped"])
    assert shaped["missed_messages"] == missed and plain["missed_messages"] == 0 and plain["link_dropped"] == 0
    print(
        f"plain median round {plain_s:.3f} s, delay 100 ms + loss 0.25: {shaped_s:.3f} s ({complete_s:.3f} s in rounds with nothing lost), "
        f"missed {missed}/{expected} models, link_dropped {shaped['link_dropped']}"
    )


def test_emulated_bandwidth_cap_serialises_each_model_on_its_link(tmp_path: Path) -> None:
    """[links] bandwidth_mbit = 0.5: a model of logreg on digits (650 floats, 2.6 kB with its header) occupies each
    link for about 42 ms, so the median round takes at least that long, and nothing is lost."""
    shaped = _launch(tmp_path / "capped", "links.bandwidth_mbit=0.5")
    records = [r for i in range(N) for r in read_jsonl(tmp_path / "capped" / "nodes" / f"node-{i}.jsonl")]
    bits = 8 * (650 * 4 + 80)  # payload plus a msgpack header of well under 100 bytes
    floor_s = bits / 0.5e6
    median_s = statistics.median(r["round_s"] for r in records if r["round"] > 0)
    assert median_s >= 0.9 * floor_s, (median_s, floor_s)
    assert shaped["missed_messages"] == 0 and shaped["link_dropped"] == 0
    print(f"bandwidth 0.5 Mbit/s: median round {median_s:.3f} s (serialisation of one model {floor_s:.3f} s)")
