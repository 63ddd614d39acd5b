"""GPU requests through the real console script on a machine without a CUDA GPU (this test suite's machines).

A launch that asks for a GPU this machine does not have is refused before anything starts: one line, exit 2,
nothing written. ``auto`` runs on the CPU and says so in the run's files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_gossip

pytestmark = [pytest.mark.e2e]


@pytest.fixture(autouse=True)
def no_gpu_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    """The refusals below describe a machine without a GPU: CUDA sees none in the processes these tests start,
    whatever this machine has, so they run (and mean the same) everywhere."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


LAUNCH = ("launch", "-n", "3", "-t", "ring", "-r", "2", "--no-progress", "--no-report")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("--gpus", "0"), "[training] device = 'cuda' but this machine has no CUDA GPU", id="gpus-0"),
        pytest.param(("--gpus", "all"), "--gpus all but this machine has no CUDA GPU", id="gpus-all"),
        pytest.param(("--set", "training.device=cuda"), "[training] device = 'cuda' but this machine has no CUDA GPU", id="cuda"),
        pytest.param(("--set", "training.device=cuda:1"), "[training] device = 'cuda:1' but this machine has no CUDA GPU", id="cuda-1"),
        pytest.param(("--gpus", "0,x"), "argument --gpus: 'x' is not an integer", id="gpus-not-a-number"),
    ],
)
def test_a_launch_asking_for_a_missing_gpu_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    """From an empty directory: exit 2, one `gossip: error:` line naming what was asked, and no runs/ appears."""
    r = run_gossip(*LAUNCH, *args, cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gossip: error: "), r.stderr
    assert message in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_a_node_asking_for_a_missing_gpu_is_refused_in_one_line(tmp_path: Path) -> None:
    """`gossip node` alone (as Compose and Kubernetes run it) with GOSSIP_TRAINING_DEVICE=cuda: exit 2, one line."""
    r = run_gossip("node", "--id", "0", "--set", "run.nodes=3", env={"GOSSIP_TRAINING_DEVICE": "cuda"}, cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.strip().splitlines() if line.startswith("gossip: error: ")]
    assert len(lines) == 1 and "device = 'cuda' but this machine has no CUDA GPU" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_auto_runs_on_the_cpu_and_the_run_says_so(tmp_path: Path) -> None:
    """device = auto without a GPU: the run finishes, its config says cpu, every node's summary says cpu (and fp32,
    not deterministic: the defaults), summary.json and the report too."""
    run_dir = tmp_path / "run"
    r = run_gossip(*LAUNCH, "--set", "training.device=auto", "--run-dir", str(run_dir), timeout=300)
    assert r.returncode == 0, r.stderr
    assert 'device = "cpu"' in (run_dir / "config.toml").read_text()
    for i in range(3):
        node = json.loads((run_dir / "nodes" / f"node-{i}.json").read_text())
        assert (node["device"], node["precision"], node["deterministic"]) == ("cpu", "fp32", False)
    assert [n["device"] for n in json.loads((run_dir / "summary.json").read_text())["per_node"]] == ["cpu"] * 3


@pytest.mark.slow
def test_bf16_deterministic_runs_are_recorded_and_repeat_bit_for_bit(tmp_path: Path) -> None:
    """precision = bf16 and deterministic = true through real node processes: each node says it ran with
    both (deterministic read back from torch), learns, and a second run of the same seed ends on the same models."""
    hashes = []
    for k in range(2):
        run_dir = tmp_path / f"run{k}"
        flags = (
            "--set",
            "training.precision=bf16",
            "--set",
            "training.deterministic=true",
            "--dataset",
            "digits",
            "--local-steps",
            "5",
            "-r",
            "4",
        )
        r = run_gossip(*LAUNCH[:-4], *flags, "--no-progress", "--no-report", "--run-dir", str(run_dir), timeout=300)
        assert r.returncode == 0, r.stderr
        nodes = [json.loads((run_dir / "nodes" / f"node-{i}.json").read_text()) for i in range(3)]
        assert all(n["precision"] == "bf16" and n["deterministic"] is True and n["device"] == "cpu" for n in nodes)
        assert all("gpu_memory_peak_bytes" not in n for n in nodes)
        assert all(n["accuracy"] > 0.3 for n in nodes)  # 10 classes: well above chance after 20 steps
        hashes.append([n["model_hash"] for n in nodes])
    assert hashes[0] == hashes[1]


def test_simulate_refuses_what_it_would_not_reproduce(tmp_path: Path) -> None:
    """gossip simulate trains float32 on the CPU: a bf16 config would give other models than launch's, so it is refused."""
    r = run_gossip("simulate", "-n", "3", "-r", "2", "--set", "training.precision=bf16", "--run-dir", str(tmp_path / "sim"), timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "gossip: error: simulate trains float32 on the CPU; training.precision and a cuda device are for gossip launch"
    ]
