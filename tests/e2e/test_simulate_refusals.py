"""``gossip simulate`` refuses, in one line, every setting a launched run honours and its one-process math leaves
out, instead of simulating another run than the config describes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_gossip

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["byzantine.nodes=[3]", "byzantine.attack=sign-flip", "aggregation.rule=dsgd"],
         "simulate does not model [byzantine] nodes = [3] (attackers)"),
        (["compression.method=topk"], "simulate does not model [compression] method = 'topk'"),
        (["transport.wire_dtype=int8"], "simulate does not model [transport] wire_dtype = 'int8' (models rounded on the wire)"),
        (["faults.slow_nodes=[1]", "faults.step_delay_s=0.5"], "simulate does not model [faults] slow_nodes = [1]"),
        (["links.loss=0.1"], "simulate does not model emulated links (edge (0, 1): loss = 0.1)"),
    ],
    ids=["byzantine", "compression", "wire-dtype", "stragglers", "links"],
)  # fmt: skip
def test_a_setting_the_simulation_would_ignore_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, settings: list[str], message: str
) -> None:
    """Each setting that changes what a launched run computes or receives (attackers, compressed or narrowed models,
    stragglers, lossy links) ends ``gossip simulate`` with one line saying so and what to do, exit 2, no
    run directory."""
    run_dir = tmp_path / "sim"
    overrides = [arg for setting in settings for arg in ("--set", setting)]
    proc = run_gossip("simulate", "-n", "6", "-t", "ring", "-r", "2", *overrides, "--run-dir", str(run_dir), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"gossip: error: {message}; run this config with gossip launch, or " + (
        "set [links] enabled = false and its values to 0" if "links" in message else "drop the setting"
    )
    assert not run_dir.exists()
