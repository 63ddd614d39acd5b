"""SLURM without SLURM: the node list and task layout a job step's environment describes, and the rendered batch script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gossip.config import RunConfig, load_config
from gossip.errors import UsageError
from gossip.node.daemon import node_id_of
from gossip.node.slurm import expand_hostlist, expand_tasks_per_node, slurm_config, slurm_layout
from gossip.run.deploy import SlurmOptions, slurm_files

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {"SLURM_PROCID": "0", "SLURM_NTASKS": "5", "SLURM_STEP_NODELIST": "cn[01-02],gpu7", "SLURM_STEP_TASKS_PER_NODE": "2(x2),1"}
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("text", "hosts"),
    [
        ("vm", ["vm"]),
        ("cn[01-03]", ["cn01", "cn02", "cn03"]),
        ("cn[1,3-4],gpu[08-10]", ["cn1", "cn3", "cn4", "gpu08", "gpu09", "gpu10"]),
        ("rack[1-2]-n[1-2]", ["rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"]),
        ("a.example,b-1", ["a.example", "b-1"]),
    ],
)
def test_a_compressed_host_list_expands_in_slurms_order(text: str, hosts: list[str]) -> None:
    """SLURM's host list syntax: ranges keep their zero padding, several bracket groups multiply out."""
    assert expand_hostlist(text) == hosts


@pytest.mark.parametrize("text", ["", "cn[01-03", "cn01-03]", "cn[3-1]", "cn[a-b]", "cn[[1]]", "c n1", "cn[0-99999999]"])
def test_a_host_list_that_cannot_be_read_is_one_usage_error(text: str) -> None:
    """An unreadable node list is refused naming it, never guessed at."""
    with pytest.raises(UsageError, match="node list"):
        expand_hostlist(text)


def test_tasks_per_node_expand_their_repeat_counts() -> None:
    """``2(x3),1`` is three hosts with two tasks and one with one."""
    assert expand_tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    with pytest.raises(UsageError, match="tasks per node"):
        expand_tasks_per_node("2(x),1")


def test_a_block_layout_puts_consecutive_tasks_on_a_host_and_ports_count_from_the_base_per_host() -> None:
    """Tasks 0,1 on cn01, 2,3 on cn02, 4 on gpu7; each host's ports start at base_port."""
    layout = slurm_layout(_env(SLURM_PROCID="3", SLURMD_NODENAME="cn02", SLURM_LOCALID="1"))
    assert layout.hosts == ("cn01", "cn01", "cn02", "cn02", "gpu7")
    assert layout.local == (0, 1, 0, 1, 0)
    cfg = slurm_config(RunConfig(), layout, 3)
    assert cfg.transport.address_of(0) == "tcp://cn01:7000"
    assert cfg.transport.address_of(3) == "tcp://cn02:7001"
    assert cfg.transport.address_of(4) == "tcp://gpu7:7000"
    assert cfg.transport.listen_address(3) == "tcp://0.0.0.0:7001"
    assert cfg.metrics.port_of(3) == 9101


def test_a_task_placed_other_than_by_block_is_refused() -> None:
    """A cyclic distribution would give every node wrong addresses: the task that sees it says how to start them."""
    with pytest.raises(UsageError, match="--distribution=block"):
        slurm_layout(_env(SLURM_PROCID="1", SLURMD_NODENAME="cn02", SLURM_LOCALID="0"))


def test_a_task_count_that_disagrees_with_the_tasks_per_node_is_refused() -> None:
    """$SLURM_NTASKS and the per-host counts must describe the same step."""
    with pytest.raises(UsageError, match="add up to 5"):
        slurm_layout(_env(SLURM_NTASKS="6"))


def test_node_id_slurm_is_the_task_rank_and_needs_srun(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--id slurm`` reads $SLURM_PROCID; outside a job it says to use srun."""
    monkeypatch.setenv("SLURM_PROCID", "6")
    assert node_id_of("slurm") == 6
    monkeypatch.delenv("SLURM_PROCID")
    with pytest.raises(UsageError, match="srun"):
        node_id_of("slurm")


def _ring(n: int = 16) -> RunConfig:
    return load_config(env={}, overrides={"run.nodes": n, "topology.spec": "ring", "training.rounds": 5})


def _render(tmp_path: Path, **options: object) -> dict[str, str]:
    cfg = _ring()
    opts = SlurmOptions(command="gossip deploy slurm", run_dir=str(tmp_path / "run"), **options)  # type: ignore[arg-type]
    return slurm_files(cfg, tmp_path / "out", opts)


def test_the_script_asks_one_task_per_node_and_starts_them_blockwise_resuming(tmp_path: Path) -> None:
    """#SBATCH lines for tasks, CPUs, GPUs, time; srun --distribution=block gossip node --id slurm --resume; the summary last."""
    files = _render(tmp_path, gpus_per_task=1, hosts=2, tasks_per_host=8, time="00:20:00", gossip="/opt/v/bin/python -m gossip")
    script = files["gossip.sbatch"]
    for line in ("#SBATCH --ntasks=16", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-task=1"):
        assert line in script.splitlines()
    assert "#SBATCH --time=00:20:00" in script
    assert "gossip=(/opt/v/bin/python -m gossip)" in script
    assert 'srun --distribution=block "${gossip[@]}" node --config "$config" --id slurm --run-dir "$run_dir" --resume' in script
    assert script.rstrip().splitlines()[-3].startswith('"${gossip[@]}" deploy summary')
    assert script.rstrip().splitlines()[-2] == '"${gossip[@]}" report "$run_dir" || true'
    assert f'spec = "{(tmp_path / "out" / "topology.json").resolve()}"' in files["config.toml"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"run_dir": "runs/x"}, "absolute path"),
        ({"time": "soon"}, "--time"),
        ({"hosts": 17}, "more hosts"),
        ({"hosts": 2, "tasks_per_host": 4}, "cannot hold"),
        ({"port": 65530}, "past 65535"),
        ({"gossip": "'unclosed"}, "--gossip"),
    ],
)
def test_bad_job_settings_are_refused_before_anything_is_written(tmp_path: Path, options: dict[str, object], message: str) -> None:
    """What sbatch would refuse later, or what would run wrong, is one UsageError now."""
    cfg = _ring()
    base: dict[str, object] = {"command": "c", "run_dir": str(tmp_path / "run")}
    with pytest.raises(UsageError, match=message):
        slurm_files(cfg, tmp_path / "out", SlurmOptions(**{**base, **options}))  # type: ignore[arg-type]


def test_the_cli_refuses_a_relative_run_dir_in_one_line_with_exit_2(tmp_path: Path) -> None:
    """``gossip deploy slurm --run-dir relative`` is a user mistake: one line, exit 2, nothing written."""
    done = subprocess.run(
        [sys.executable, "-m", "gossip", "deploy", "slurm", "-t", "ring", "-n", "4", "--run-dir", "rel/run", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("gossip: error: --run-dir")
    assert not (tmp_path / "o").exists()
