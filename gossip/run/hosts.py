"""``gossip launch --hosts FILE``: the nodes of one run on several machines, each started over SSH.

The hosts file names one machine a line, ``[user@]host`` and optionally ``slots=K`` (or ``nodes=K``: at most K
nodes there); ``#`` starts a comment. Placement is block-wise, like SLURM's ``--distribution=block``: the nodes
are dealt out evenly (one at a time, in file order, skipping full hosts) and then numbered host by host, so
host 0 runs nodes 0..k-1, host 1 the next ones, and so on — a ring's neighbours mostly share a host.

Why it works the way it does:
- addresses follow SLURM's port rule: node i is reached at ``tcp://HOST:base_port + local index`` (its rank on
  its host) and binds that port on every interface (``--set transport.listen``: a host name need not be
  bindable); ``/metrics`` is on ``[metrics] base_port + local index`` on the host's ``[metrics] host``;
- the run directory must be on a file system every host sees (NFS, or the one machine of a test): nodes read
  the config and their data there and write their records, summaries and a pid file there, and the launcher
  draws progress and writes ``summary.json`` from it exactly as in a local run;
- one ``ssh -o BatchMode=yes HOST -- cd CWD && exec env ... PYTHON -m gossip.run.remote PIDFILE ...`` per node,
  with the launcher's working directory, interpreter (``sys.executable``) and ``PYTHONPATH`` named explicitly (ssh
  carries no environment); :mod:`gossip.run.remote` starts ``gossip node``, writes its pid to
  ``nodes/node-<i>.pid``, and stops it when the ssh connection ends (the launcher was killed outright);
- stopping (the end of the run, Ctrl-C, a failure) is ``ssh HOST kill -TERM PID``, then after the grace period
  ``kill -KILL``: a node stops as a local one does, writing its files;
- refused in one line before anything is written or started: an unreadable, empty or malformed hosts file, a
  host named twice, more hosts than nodes (every host runs one at least), too few slots, a host that fails a
  quick ``ssh HOST`` check (BatchMode, ConnectTimeout) or lacks the launcher's directory or interpreter; a run
  directory the hosts cannot read is refused once written, and removed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gossip.config import MetricsConfig, RunConfig
from gossip.errors import ConfigError, ExitCode
from gossip.inputs import quote, read_capped
from gossip.results.rundir import NodeFiles
from gossip.run.forkserver import NODE_ENV
from gossip.run.launch import LaunchResult, node_env, run_prepared
from gossip.run.nodeimports import check_node_imports
from gossip.run.prepare import prepare_run
from gossip.run.processes import die_with_parent

__all__ = ["Host", "RemoteNode", "host_layout", "launch_on_hosts", "place", "read_hosts", "ssh_options"]

SSH = ("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10")
CHECK_TIMEOUT_S = 30.0
MAX_HOSTS_FILE = 1 << 20
_TARGET = re.compile(r"(?:[A-Za-z0-9._-]{1,64}@)?[A-Za-z0-9][A-Za-z0-9.\-_]{0,252}")  # never '-…': no ssh option sneaks in
_SLOTS = re.compile(r"(?:slots|nodes)=([0-9]{1,6})")
_OPTION = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}=[^\n\r\0]{1,1000}")
_ENV_PASSED = (*NODE_ENV, "PYTHONUNBUFFERED", "PYTHONPATH", "GOSSIP_LOG_LEVEL")


@dataclass(frozen=True)
class Host:
    """One line of a hosts file: what ssh is given, and the most nodes it runs (0: no cap)."""

    target: str
    slots: int = 0

    @property
    def address(self) -> str:
        """The host's name or address as the other nodes reach it (the target without ``user@``)."""
        return self.target.rpartition("@")[2]


def read_hosts(path: str | Path) -> list[Host]:
    """The hosts of ``path``; ConfigError naming the file (and the line) when it cannot be used."""
    raw = read_capped(path, MAX_HOSTS_FILE, ConfigError, "hosts file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"hosts file {path} is not UTF-8 text") from None
    hosts: list[Host] = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        slots = _SLOTS.fullmatch(words[1]) if len(words) == 2 else None
        if not _TARGET.fullmatch(words[0]) or len(words) > 2 or (len(words) == 2 and (slots is None or int(slots.group(1)) < 1)):
            raise ConfigError(
                f"hosts file {path}, line {number}: {quote(line.strip())}: expected '[user@]host' or '[user@]host slots=K' (K >= 1)"
            )
        host = Host(words[0], int(slots.group(1)) if slots else 0)
        if any(h.address == host.address for h in hosts):
            raise ConfigError(f"hosts file {path}, line {number}: host {host.address} is listed twice; give it slots=K instead")
        hosts.append(host)
    if not hosts:
        raise ConfigError(f"hosts file {path} names no host (one '[user@]host [slots=K]' a line)")
    return hosts


def place(hosts: Sequence[Host], n: int) -> tuple[tuple[int, int], ...]:
    """Where each node runs: ``(host index, local index)`` for node 0..n-1 (block-wise, even shares within slots)."""
    if len(hosts) > n:
        raise ConfigError(
            f"the hosts file names {len(hosts)} hosts for {n} nodes: every host runs one node at least; list fewer hosts or run more nodes"
        )
    if all(h.slots for h in hosts) and sum(h.slots for h in hosts) < n:
        raise ConfigError(f"the hosts file has {sum(h.slots for h in hosts)} slots for {n} nodes; raise slots=K or add hosts")
    counts, left = [0] * len(hosts), n
    while left:
        for k, host in enumerate(hosts):
            if left and (not host.slots or counts[k] < host.slots):
                counts[k] += 1
                left -= 1
    return tuple((k, j) for k, count in enumerate(counts) for j in range(count))


def ssh_options(options: Sequence[str]) -> tuple[str, ...]:
    """``--ssh-option KEY=VALUE`` as ssh arguments (``-o KEY=VALUE`` each); UsageError-style ConfigError otherwise."""
    for option in options:
        if not _OPTION.fullmatch(option):
            raise ConfigError(
                f"--ssh-option {quote(option)}: expected KEY=VALUE, an ssh_config option (e.g. IdentityFile=~/.ssh/id_cluster)"
            )
    return tuple(word for option in options for word in ("-o", option))


def _ssh(host: Host, options: Sequence[str], command: str) -> list[str]:
    return [*SSH, *options, "--", host.target, command]


def _on_every_host(hosts: Sequence[Host], options: Sequence[str], command: str, meaning: Mapping[int, str]) -> None:
    """Run ``command`` on every host at once; ConfigError naming the first host where it failed (``meaning`` by exit code)."""
    try:
        running = [
            (h, subprocess.Popen(_ssh(h, options, command), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            for h in hosts
        ]
    except FileNotFoundError:
        raise ConfigError("--hosts needs the ssh client (ssh on PATH)") from None
    try:
        for host, proc in running:
            try:
                _, err = proc.communicate(timeout=CHECK_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise ConfigError(f"host {host.target}: ssh did not answer in {CHECK_TIMEOUT_S:g} s") from None
            if proc.returncode in meaning:
                raise ConfigError(f"host {host.target} {meaning[proc.returncode]}")
            if proc.returncode != 0:
                said = (err.decode("utf-8", "replace").strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                raise ConfigError(f"cannot reach host {host.target} over ssh (ssh -o BatchMode=yes {host.target} true): {said[:200]}")
    finally:
        for _, proc in running:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _as_local(code: int) -> int:
    """A remote node's code as a local one's: ``128 + SIG`` (what :mod:`gossip.run.remote` reports for a node killed by a
    signal) becomes ``-SIG``, as Popen says it; a node's own 130 and 143 (stopped by SIGINT, SIGTERM) and ssh's 255 stay."""
    if 128 < code < 255 and code not in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
        return 128 - code
    return code


class RemoteNode:
    """A node on another host, as the launcher's supervisor sees a local one: its ssh session, signals sent by ssh."""

    def __init__(self, host: Host, options: Sequence[str], proc: subprocess.Popen[bytes], pid_file: Path) -> None:
        self.host = host
        self.options = tuple(options)
        self.proc = proc
        self.pid_file = pid_file
        self._signallers: list[subprocess.Popen[bytes]] = []

    def poll(self) -> int | None:
        """The node's exit code once its ssh session ended, as :class:`subprocess.Popen` gives a local one's."""
        code = self.proc.poll()
        return None if code is None else _as_local(code)

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self._signallers = [s for s in self._signallers if s.poll() is None]
        return _as_local(code)

    def send_signal(self, sig: int) -> None:
        """``kill -SIG PID`` on the node's host, not waited for (every node is signalled at once)."""
        pid = self._pid()
        if pid is None:
            self.proc.send_signal(sig)  # never got to start the node: ending ssh is all there is
            return
        self._signallers.append(self._remote(f"kill -{int(sig)} {pid}"))

    def kill(self) -> None:
        """SIGKILL the node on its host, then its ssh session here."""
        pid = self._pid()
        if pid is not None:
            killer = self._remote(f"kill -{int(signal.SIGKILL)} {pid}")
            try:
                killer.wait(CHECK_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                killer.kill()
                killer.wait()
        self.proc.kill()

    def _remote(self, command: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            _ssh(self.host, self.options, command), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _pid(self, wait_s: float = 10.0) -> int | None:
        """The node's pid on its host, from the pid file :mod:`gossip.run.remote` writes (waited for while ssh connects)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                text = self.pid_file.read_text().strip()
                if text.isdigit():
                    return int(text)
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return None
            time.sleep(0.05)


def host_layout(hosts: Sequence[Host], base_port: int) -> Callable[[RunConfig, int], tuple[tuple[str, ...], MetricsConfig]]:
    """The addresses and metrics ports of ``n`` nodes on ``hosts`` (for :func:`prepare_run`, before it writes anything)."""

    def layout(cfg: RunConfig, n: int) -> tuple[tuple[str, ...], MetricsConfig]:
        where = place(hosts, n)
        top = max(j for _, j in where)
        metrics = cfg.metrics
        if metrics.enabled and metrics.base_port and not metrics.port:
            metrics = dataclasses.replace(metrics, ports=tuple(metrics.base_port + j for _, j in where))
        for what, base in (("--base-port", base_port), ("[metrics] base_port", metrics.base_port if metrics.ports else 0)):
            if base + top > 65535:
                raise ConfigError(f"{what} {base} + {top} (the most nodes after the first on one host) is past port 65535")
        return tuple(f"tcp://{hosts[k].address}:{base_port + j}" for k, j in where), metrics

    return layout


def _starter(
    hosts: Sequence[Host], where: Sequence[tuple[int, int]], options: Sequence[str], base_port: int
) -> Callable[[Path, int, Sequence[str]], RemoteNode]:
    """Starts node ``i`` of a prepared run on its host: one ssh session whose remote shell execs ``gossip node``."""
    cwd, env = os.getcwd(), {k: v for k, v in node_env().items() if k in _ENV_PASSED}

    def start(run_dir: Path, node: int, extra_args: Sequence[str]) -> RemoteNode:
        host, local = hosts[where[node][0]], where[node][1]
        files = NodeFiles(run_dir, node)
        pid_file = files.log.with_name(f"node-{node}.pid")
        pid_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "gossip.run.remote", str(pid_file), "--config", str(run_dir / "config.toml"), "--id", str(node)]
        argv += ["--run-dir", str(run_dir)]
        argv += ["--set", f"transport.listen=tcp://0.0.0.0:{base_port + local}", *extra_args]
        assigns = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
        command = f"cd {shlex.quote(cwd)} && exec env {assigns} {shlex.join(argv)}"
        with open(files.log, "ab") as log:  # ssh carries the node's output back into its log, as a local node writes it
            proc = subprocess.Popen(
                _ssh(host, options, command),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE,  # held open, never written: its end on the host tells the node the launcher is gone
                start_new_session=True,  # Ctrl-C reaches the launcher only; it stops the nodes in order
                preexec_fn=die_with_parent,
            )
        return RemoteNode(host, options, proc, pid_file)

    return start


def launch_on_hosts(
    cfg: RunConfig,
    hosts_file: str | Path,
    *,
    ssh_option: Sequence[str] = (),
    run_dir: str | Path | None = None,
    base_port: int | None = None,
    progress: bool | None = None,
    out: Any = None,
    keep_going: bool = False,
    restarts: int = 0,
) -> LaunchResult:
    """``gossip launch --hosts``: check the hosts, prepare the run directory, start every node over ssh, follow, stop, summarise."""
    out = out or sys.stderr
    hosts, options = read_hosts(hosts_file), ssh_options(ssh_option)
    if cfg.transport.address_template.startswith("ipc://"):
        raise ConfigError("--hosts runs nodes on several machines: they talk over TCP, not ipc://")
    cwd, python = os.getcwd(), sys.executable
    _on_every_host(
        hosts,
        options,
        f"test -d {shlex.quote(cwd)} || exit 3; test -x {shlex.quote(python)} || exit 4",
        {
            3: f"has no directory {cwd}: every host needs the launcher's working directory",
            4: f"has no {python}: every host needs the launcher's Python",
        },
    )
    check_node_imports(cfg, node_env())
    port = base_port or cfg.transport.base_port
    resolved, path, topology = prepare_run(cfg, run_dir=run_dir, spawn=True, layout=host_layout(hosts, port))
    try:
        _on_every_host(
            hosts,
            options,
            f"test -r {shlex.quote(str(path / 'config.toml'))} || exit 5",
            {5: f"cannot read {path / 'config.toml'}: the run directory must be on a file system every host shares (--run-dir)"},
        )
    except ConfigError:
        shutil.rmtree(path, ignore_errors=True)
        raise
    where = place(hosts, topology.n)
    for k, host in enumerate(hosts):
        mine = [i for i, (h, _) in enumerate(where) if h == k]
        print(f"gossip: {host.target} runs nodes {mine[0]}..{mine[-1]} on ports {port}..{port + len(mine) - 1}", file=out)
    return run_prepared(
        resolved,
        path,
        topology,
        progress=progress,
        out=out,
        keep_going=keep_going,
        restarts=restarts,
        spawn=True,
        starter=_starter(hosts, where, options, port),
    )
