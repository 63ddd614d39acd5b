"""The run directory's summaries: each file is written and read by one class, and reads back as what was written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gossip.errors import RunDirError
from gossip.results.summary import (
    Attackers,
    Divergence,
    MergeAgreement,
    NodeMerge,
    NodeOutcome,
    NodeProcess,
    NodeSummary,
    Rejoin,
    RunSummary,
)


def _process(**changes: object) -> NodeProcess:
    fields: dict[str, object] = {
        "rounds_skipped": 2,
        "diverged": None,
        "bytes_sent": 1000,
        "bytes_received": 900,
        "rejected": {"stale": 1},
        "neighbours": (1, 3),
        "parameters": 7850,
        "send_buffers_allocated": 0,
        "mode": "sync",
        "variance_layers": (),
        "accuracy_before_merge": 0.5,
        "merge": NodeMerge((0, 1, 2), (1, 2), True, "abc", 4, 0.25, {"collect_s": 0.1}),
        "peers_down": (),
        "peers_were_down": (3,),
        "resumed": Rejoin(4, 6),
        "link_dropped": 0,
        "checkpoints_written": 3,
        "send_path": "snapshot",
    }
    return NodeProcess(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_node_summary_reads_back_as_written(tmp_path: Path) -> None:
    """A node process's summary, attack and push-sum mass included, survives write → read unchanged."""
    summary = NodeSummary(0, "finished", 10, 0.75, "deadbeef", _process(mass=0.5, choco_dense_rounds=2, attack="sign-flip"))
    summary.write(tmp_path / "node-0.json")
    assert NodeSummary.read(tmp_path / "node-0.json") == summary
    assert summary.rounds_reached == 12


def test_a_node_summary_keeps_the_files_keys(tmp_path: Path) -> None:
    """The JSON is the flat object users read: the process facts beside node/status, the merge's phases beside its
    own keys, a non-finite loss as null, the attack under "byzantine", push-sum/CHOCO keys only when they apply."""
    process = _process(diverged=Divergence(5, float("nan")), attack="alie")
    NodeSummary(1, "diverged", 5, None, "x", process).write(tmp_path / "s.json")
    d = json.loads((tmp_path / "s.json").read_text())
    assert d["diverged"] == {"round": 5, "loss": None}
    assert d["byzantine"] == {"attack": "alie"}
    assert d["merge"]["collect_s"] == 0.1 and d["merge"]["members"] == [0, 1, 2]
    assert d["resumed"] == {"checkpoint_round": 4, "joined_round": 6}
    assert "mass" not in d and "choco_dense_rounds" not in d and "simulated" not in d


def test_a_simulated_node_summary_has_only_the_final_figures(tmp_path: Path) -> None:
    """gossip simulate's node summaries hold what a simulation knows, and say they are simulated."""
    summary = NodeSummary(2, "finished", 20, 0.9, "h", simulated=True)
    summary.write(tmp_path / "s.json")
    assert set(json.loads((tmp_path / "s.json").read_text())) == {
        "node",
        "status",
        "rounds_completed",
        "accuracy",
        "model_hash",
        "simulated",
    }
    assert NodeSummary.read(tmp_path / "s.json") == summary


def _run_summary(merge: MergeAgreement | None, byzantine: Attackers | None) -> RunSummary:
    node = NodeOutcome(0, "finished", 10, None, 0.8, None, None, None, 0.6, 0.01, 100, 90, {}, 0, 0, 0, (), "h", False)
    return RunSummary(
        "/runs/x", 1, "ring", 10, "digits", "mlp", "dsgd", 3.5, 0.8, 0.0, 0.8, 0.8, 0.8, 0.0,
        byzantine, (), 0, 0, 0, "sync", "static", merge, (node,), {0: 1},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("merge", "byzantine"),
    [(None, None), (MergeAgreement(True, "h", (0,), (0,), 0.8, 0.7), Attackers((0,), "sign-flip"))],
)
def test_a_run_summary_reads_back_as_written(tmp_path: Path, merge: MergeAgreement | None, byzantine: Attackers | None) -> None:
    """summary.json survives write → read unchanged, with and without a merge and attackers."""
    summary = _run_summary(merge, byzantine)
    summary.write(tmp_path / "summary.json")
    assert RunSummary.read(tmp_path / "summary.json") == summary
    d = json.loads((tmp_path / "summary.json").read_text())
    assert ("merge_agreed" in d) == (merge is not None) and d["restarts"] == {"0": 1}


def test_a_file_that_is_not_a_summary_is_a_run_dir_error(tmp_path: Path) -> None:
    """A summary with a key missing, or not JSON, is one clear RunDirError naming the file."""
    (tmp_path / "a.json").write_text('{"node": 0}')
    (tmp_path / "b.json").write_text("{")
    with pytest.raises(RunDirError, match=r"a\.json: not a node summary"):
        NodeSummary.read(tmp_path / "a.json")
    with pytest.raises(RunDirError, match=r"b\.json: not valid JSON"):
        RunSummary.read(tmp_path / "b.json")


@pytest.mark.parametrize("value", [[1, 3], {"attackers": [2]}, {"nodes": "three", "attack": "x"}, "node three"])
def test_attackers_are_read_in_the_shape_the_launcher_writes(value: object) -> None:
    """summary["byzantine"] is {"nodes": [ids], "attack": name}; anything else is refused, not read as an honest run."""
    with pytest.raises(RunDirError, match="byzantine"):
        Attackers.from_dict(value)
