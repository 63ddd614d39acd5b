"""Render a SLURM batch script for a run: one ``srun`` job step whose tasks are the run's nodes.

Layout of the output directory (by default ``RUN_DIR/slurm``, so the whole run lives on the one shared
file system the job names)::

    gossip.sbatch     #SBATCH lines (tasks, hosts, CPUs, GPUs, time), then srun gossip node --id slurm
    config.toml       the run's config; its topology is the graph file beside it
    topology.json     the exact graph

Why this shape:
- one task per node, ``srun --distribution=block``: each task takes its id from ``$SLURM_PROCID`` and every
  node's address from the job step's node list and tasks per host (:mod:`gossip.node.slurm`), with the port
  rule ``base_port + local index``; nothing is known about the hosts when the script is rendered, so the
  addresses cannot be written into it;
- ``--resume`` always: a node without a checkpoint starts fresh, so the first submission and a resubmission
  after a failure (``sbatch`` the same script) are the same command, as ``gossip launch --resume`` is;
- before training, one task per host checks that it can read the config: a run directory that is not on a
  file system every host shares is refused in one line, exit 2;
- after the step, ``gossip deploy summary`` writes ``summary.json`` and prints the launcher's table, and
  ``gossip report`` the plots and ``report.md``, so a job leaves what ``gossip launch`` and its report leave;
  the job's exit code is the nodes' (srun's, the highest).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from gossip.config import RunConfig, config_to_toml
from gossip.errors import UsageError
from gossip.run.deploy.common import CONFIG_FILE, TOPOLOGY_FILE, prepare

__all__ = ["SCRIPT_FILE", "SlurmOptions", "render_slurm", "slurm_files"]

SCRIPT_FILE = "gossip.sbatch"
# SLURM's time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
_TIME = re.compile(r"[0-9]{1,6}(:[0-9]{2}){0,2}|[0-9]{1,3}-[0-9]{1,2}(:[0-9]{2}){0,2}")
_WORD = re.compile(r"[A-Za-z0-9_.,:+@%=/\-]{1,200}")  # partition, account, job name: what sbatch reads as one word


@dataclass(frozen=True)
class SlurmOptions:
    """Everything about the batch job that is not the run itself."""

    command: str  # the gossip command line that rendered the files, quoted in their headers
    run_dir: str  # absolute, on a file system every host of the job shares
    gossip: str = "gossip"  # how every host runs gossip (e.g. "/opt/venv/bin/python -m gossip")
    job_name: str = "gossip"
    time: str = "01:00:00"
    hosts: int = 0  # 0: as many as SLURM gives
    tasks_per_host: int = 0  # 0: as SLURM packs them
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    partition: str = ""
    account: str = ""
    overcommit: bool = False  # more nodes than CPUs on a host (a small cluster, a test): sbatch --overcommit
    port: int = 7000  # node i listens on port + its index on its host
    metrics_port: int = 9100  # and serves /metrics on metrics_port + that index; 0: no /metrics


def _check(options: SlurmOptions, n: int) -> None:
    """Refuse, before anything is written, what sbatch would refuse later or what would run wrong."""
    if not options.run_dir or not Path(options.run_dir).is_absolute():
        raise UsageError(f"--run-dir {options.run_dir!r}: give an absolute path on a file system every host of the job shares")
    if not _TIME.fullmatch(options.time):
        raise UsageError(f"--time {options.time!r}: expected minutes, HH:MM:SS or D-HH:MM:SS")
    for flag, value in (("--job-name", options.job_name), ("--partition", options.partition), ("--account", options.account)):
        if value and not _WORD.fullmatch(value):
            raise UsageError(f"{flag} {value[:60]!r}: letters, digits and _.,:+@%=/- only")
    try:
        words = shlex.split(options.gossip)
    except ValueError as exc:
        raise UsageError(f"--gossip {options.gossip[:60]!r}: {exc}") from None
    if not words:
        raise UsageError("--gossip: empty; give how every host runs gossip, e.g. 'gossip' or '/opt/venv/bin/python -m gossip'")
    for flag, count, lo in (
        ("--hosts", options.hosts, 0),
        ("--tasks-per-host", options.tasks_per_host, 0),
        ("--cpus-per-task", options.cpus_per_task, 1),
        ("--gpus-per-task", options.gpus_per_task, 0),
    ):
        if count < lo:
            raise UsageError(f"{flag} {count}: must be at least {lo}")
    if options.hosts and options.hosts > n:
        raise UsageError(f"--hosts {options.hosts}: more hosts than the run's {n} nodes (one task per node)")
    if options.hosts and options.tasks_per_host and options.hosts * options.tasks_per_host < n:
        raise UsageError(f"--hosts {options.hosts} x --tasks-per-host {options.tasks_per_host} cannot hold the run's {n} nodes")
    span = options.tasks_per_host or n  # the most tasks one host may run
    for flag, base in (("--port", options.port), ("--metrics-port", options.metrics_port)):
        if base and not 1 <= base <= 65535 - (span - 1):
            raise UsageError(f"{flag} {base}: node ports run up to {base} + {span - 1}, past 65535")
    if options.port < 1:
        raise UsageError(f"--port {options.port}: the nodes need a known port to find each other")


def slurm_files(cfg: RunConfig, out: Path, options: SlurmOptions) -> dict[str, str]:
    """The batch job of ``cfg`` to be written under ``out`` (which the config names by absolute path), relative path → text."""
    # The template is a placeholder that passes the config's checks: every node's address comes from SLURM.
    run = prepare(cfg, "tcp://localhost:{port}")
    _check(options, run.n)
    files_dir = out.resolve()
    job_cfg = dataclasses.replace(
        run.cfg,
        topology=dataclasses.replace(run.cfg.topology, spec=str(files_dir / TOPOLOGY_FILE)),
        transport=dataclasses.replace(run.cfg.transport, address_template="tcp://localhost:{port}", base_port=options.port, listen=""),
        metrics=dataclasses.replace(
            run.cfg.metrics, enabled=options.metrics_port > 0, host="0.0.0.0", base_port=options.metrics_port, port=0, ports=()
        ),
    )
    return render_slurm(config_to_toml(job_cfg), run.topology_json, run.n, files_dir, options)


def render_slurm(config_toml: str, topology_json: str, n: int, files_dir: Path, options: SlurmOptions) -> dict[str, str]:
    """The job's files, relative path → text; ``files_dir`` is where they will lie, as every host sees it."""
    header = (
        f"Generated by: {options.command}\nDo not edit by hand: change the config and run the command again (see docs/operate/deploy.md)."
    )
    return {
        SCRIPT_FILE: _script(n, files_dir, options, header),
        CONFIG_FILE: "".join(f"# {line}\n" for line in header.splitlines()) + config_toml,
        TOPOLOGY_FILE: topology_json,
    }


def _script(n: int, files_dir: Path, options: SlurmOptions, header: str) -> str:
    q = shlex.quote
    run_dir = options.run_dir
    sbatch = [f"--job-name={options.job_name}", f"--ntasks={n}", f"--cpus-per-task={options.cpus_per_task}", f"--time={options.time}"]
    if options.hosts:
        sbatch.append(f"--nodes={options.hosts}")
    if options.tasks_per_host:
        sbatch.append(f"--ntasks-per-node={options.tasks_per_host}")
    if options.gpus_per_task:
        sbatch.append(f"--gpus-per-task={options.gpus_per_task}")
    if options.partition:
        sbatch.append(f"--partition={options.partition}")
    if options.account:
        sbatch.append(f"--account={options.account}")
    if options.overcommit:
        sbatch.append("--overcommit")
    sbatch.append(f"--output={run_dir}/slurm-%j.out")
    lines = [
        "#!/bin/bash",
        *(f"# {line}" for line in header.splitlines()),
        "#",
        f"#   sbatch {q(str(files_dir / SCRIPT_FILE))}   # submit; after a failure, submit again: the nodes resume from their checkpoints",
        f"# Records, checkpoints, summary.json and the job's log (slurm-<job id>.out) go to {run_dir},",
        "# which must be on a file system every host of the job shares.",
        *(f"#SBATCH {s}" for s in sbatch),
        "set -euo pipefail",
        f"gossip=({shlex.join(shlex.split(options.gossip))})",
        f"run_dir={q(run_dir)}",
        f"config={q(str(files_dir / CONFIG_FILE))}",
        'mkdir -p "$run_dir"',
        "# every host must see the run directory: refuse in one line before any node starts",
        'if ! srun --ntasks-per-node=1 --ntasks="$SLURM_JOB_NUM_NODES" test -r "$config"; then',
        '  echo "gossip: error: $config is not readable on every host of the job; put the run directory on a file system they share" >&2',
        "  exit 2",
        "fi",
        "started=$(date +%s)",
        "code=0",
        'srun --distribution=block "${gossip[@]}" node --config "$config" --id slurm --run-dir "$run_dir" --resume || code=$?',
        '"${gossip[@]}" deploy summary --config "$config" --run-dir "$run_dir" --wall-s "$(($(date +%s) - started))" || true',
        '"${gossip[@]}" report "$run_dir" || true',
        'exit "$code"',
    ]
    return "\n".join(lines) + "\n"
