"""A real one-host SLURM cluster (munged, slurmctld, slurmd of the test's own) runs the script ``gossip deploy slurm`` renders.

The cluster is set up once per session by ``tests/slurm/cluster.sh`` (every file in a temporary directory, its
own munge socket and ports) and stopped by its pid files at the end. Needs root and slurm-wlm + munge, which
``deploy/system-deps.sh`` installs. The machine has 2 cores: the 8 nodes share them (``--overcommit``).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossip.run.ports import free_port_range, port_free
from tests.conftest import REPO, free_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.slurm, pytest.mark.e2e]

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
JOB_TIMEOUT_S = 300  # the 8-node jobs take about 30 s here; several times that on a loaded machine


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment that submits to the session's cluster: SLURM_CONF, and PYTHONPATH so every srun task runs this tree."""
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(
        ["bash", str(CLUSTER), "start", str(state), str(free_port()), str(free_port())], capture_output=True, text=True, timeout=120
    )
    try:
        assert started.returncode == 0, started.stderr
        yield dict(os.environ, SLURM_CONF=started.stdout.strip(), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop", str(state)], timeout=60, check=False)


def _ports(count: int) -> int:
    """A base port whose next ``count`` ports are free (nodes on one host listen on base + local index)."""
    low, high = free_port_range()  # the worker's own slice under pytest-xdist
    for _ in range(200):
        base = random.randrange(low, high - count)
        if all(port_free("0.0.0.0", base + i) for i in range(count)):
            return base
    raise AssertionError("no run of free ports")


def _render(run_dir: Path, *extra: str) -> Path:
    args = [sys.executable, "-m", "gossip", "deploy", "slurm", "-t", "ring", "-n", "8", "--dataset", "synthetic"]
    args += ["--run-dir", str(run_dir), "--overcommit", "--port", str(_ports(8)), "--metrics-port", "0", "--time", "10"]
    args += ["--gossip", f"{sys.executable} -m gossip", *extra]
    subprocess.run(args, check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    return run_dir / "slurm" / "gossip.sbatch"


def _submit(script: Path, env: dict[str, str]) -> str:
    return subprocess.run(["sbatch", "--parsable", str(script)], check=True, capture_output=True, text=True, env=env).stdout.strip()


def _job_state(job: str, env: dict[str, str]) -> tuple[str, str]:
    out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, env=env).stdout
    fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
    return fields.get("JobState", "?"), fields.get("ExitCode", "?")


def _wait(job: str, env: dict[str, str], timeout_s: float = JOB_TIMEOUT_S) -> tuple[str, str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state, code = _job_state(job, env)
        if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            return state, code
        time.sleep(0.25)  # scontrol is cheap; a second per poll adds half a second to every wait
    subprocess.run(["scancel", job], env=env, check=False)
    raise AssertionError(f"job {job} still {state} after {timeout_s} s")


def _records(run_dir: Path, node: int) -> list[dict[str, object]]:
    """Every line of the node's records, each a whole JSON object (a torn line fails the test)."""
    text = (run_dir / "nodes" / f"node-{node}.jsonl").read_text(encoding="utf-8")
    assert text.endswith("\n"), f"node {node}: torn last record"
    return [json.loads(line) for line in text.splitlines()]


def test_an_8_node_ring_runs_as_one_sbatch_job_and_leaves_records_summary_and_one_merged_model(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    """sbatch the rendered script: 8 srun tasks on one host find each other, train 3 rounds, merge, and the job's
    last step writes summary.json; every node ends with the same merged model hash (bounded by JOB_TIMEOUT_S)."""
    run_dir = tmp_path / "run"
    script = _render(run_dir, "-r", "3", "--set", "merge.enabled=true")
    started = time.monotonic()
    job = _submit(script, slurm)
    state, code = _wait(job, slurm)
    log = (run_dir / f"slurm-{job}.out").read_text(encoding="utf-8")
    assert (state, code) == ("COMPLETED", "0:0"), log[-3000:]
    print(f"job {job}: {time.monotonic() - started:.1f} s from sbatch to done")
    for i in range(8):
        assert [r["round"] for r in _records(run_dir, i)] == [0, 1, 2]
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["nodes"] == 8 and [n["status"] for n in summary["per_node"]] == ["finished"] * 8
    hashes = {json.loads((run_dir / "nodes" / f"node-{i}.json").read_text(encoding="utf-8"))["model_hash"] for i in range(8)}
    assert len(hashes) == 1, hashes
    assert summary["merge_agreed"] is True and summary["merged_model_hash"] == hashes.pop()
    assert (run_dir / "report" / "report.md").is_file()


def test_a_job_cancelled_mid_run_and_submitted_again_resumes_from_checkpoints(slurm: dict[str, str], tmp_path: Path) -> None:
    """scancel while the nodes train, sbatch the same script again: every node resumes from its checkpoint (a
    'resumed' record), no round is recorded twice after it, every record is whole, and the run finishes."""
    run_dir = tmp_path / "run"
    # Checkpoints from round 2 on (no minimum interval), and an emulated 80 ms link delay that every round waits
    # for: the run takes at least 3.2 s however fast the machine is, while the cancel comes within about a
    # second of every node's first checkpoint. (Paced by the CPU alone, a fast idle machine ran every round
    # before the default 5 s between checkpoints had passed.)
    rounds = 40
    settings = ["training.checkpoint_every=2", "training.checkpoint_interval_s=0", "links.delay_ms=80"]
    script = _render(run_dir, "-r", str(rounds), *(a for s in settings for a in ("--set", s)))
    job = _submit(script, slurm)
    submitted = time.monotonic()
    ckpts = [run_dir / "nodes" / f"node-{i}.ckpt.npz" for i in range(8)]

    def running() -> None:
        assert _job_state(job, slurm)[0] in ("PENDING", "RUNNING", "CONFIGURING"), "the job ended before it could be cancelled"

    wait_until(
        lambda: all(p.exists() for p in ckpts), timeout_s=JOB_TIMEOUT_S, what="no checkpoint from every node", still=running, every_s=0.5
    )
    subprocess.run(["scancel", job], env=slurm, check=True)
    state, _ = _wait(job, slurm)
    assert state == "CANCELLED"
    cut = {i: len(_records(run_dir, i)) for i in range(8)}
    assert all(0 < k < rounds for k in cut.values()), cut
    print(f"job {job} cancelled after {time.monotonic() - submitted:.1f} s, records per node {cut}")

    again = _submit(script, slurm)
    state, code = _wait(again, slurm)
    log = (run_dir / f"slurm-{again}.out").read_text(encoding="utf-8")
    assert (state, code) == ("COMPLETED", "0:0"), log[-3000:]
    for i in range(8):
        records = _records(run_dir, i)
        resumed = [k for k, r in enumerate(records) if "resumed" in r]
        assert resumed, f"node {i} did not resume from a checkpoint"
        after = [int(r["round"]) for r in records[resumed[0] :]]  # type: ignore[call-overload]
        assert after == sorted(set(after)) and after[-1] == rounds - 1, f"node {i}: rounds after resuming {after}"
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert [n["status"] for n in summary["per_node"]] == ["finished"] * 8


def test_a_job_step_with_fewer_tasks_than_nodes_is_refused_in_one_line_with_exit_2(slurm: dict[str, str], tmp_path: Path) -> None:
    """srun of 2 tasks for an 8-node run: every task says so in one line and exits 2 before any data is loaded."""
    _render(tmp_path / "run", "-r", "3")
    done = subprocess.run(
        [
            "srun",
            "-n",
            "2",
            "--overcommit",
            sys.executable,
            "-m",
            "gossip",
            "node",
            "--config",
            str(tmp_path / "run" / "slurm" / "config.toml"),
        ]
        + ["--id", "slurm"],
        capture_output=True,
        text=True,
        env=slurm,
        timeout=JOB_TIMEOUT_S,
    )
    assert done.returncode == 2
    said = [line for line in done.stderr.splitlines() if line.startswith("gossip: error:")]
    assert said == ["gossip: error: --id slurm: the job step has 2 tasks but the topology has 8 nodes; run one task per node"] * 2


def test_a_run_directory_a_host_cannot_read_is_refused_in_one_line_with_exit_2_before_any_node_starts(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    """The job's first step checks, on one task per host, that the config under the run directory is readable (on one
    host a missing config stands in for a directory that is not shared): one line, exit 2, no node record."""
    run_dir = tmp_path / "run"
    script = _render(run_dir, "-r", "3")
    (run_dir / "slurm" / "config.toml").unlink()
    job = _submit(script, slurm)
    state, code = _wait(job, slurm)
    assert (state, code) == ("FAILED", "2:0")
    log = (run_dir / f"slurm-{job}.out").read_text(encoding="utf-8")
    assert [line for line in log.splitlines() if line.startswith("gossip: error:")] == [
        f"gossip: error: {run_dir / 'slurm' / 'config.toml'} is not readable on every host of the job; "
        "put the run directory on a file system they share"
    ]
    assert not (run_dir / "nodes").exists()
