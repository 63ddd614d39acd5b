"""Start node processes as forks of one warm process that has already imported torch.

Why: a fresh ``python -m gossip node`` spends seconds of CPU importing torch (and gossip's modules)
before it reads its config; N of them on a machine with few cores take longer to start than most runs
train (bench/scale.py measures it). The launcher instead asks a fork server —
Python's own ``multiprocessing`` forkserver, with gossip's node modules preloaded — for each node: the
import is paid once per launch, a node has nothing left to import when it starts, and the nodes share
torch's pages copy-on-write.

A forked node is the same program as ``gossip node``: it runs the node daemon
(:func:`gossip.node.daemon.main`) with the same arguments, in its own session (a terminal's Ctrl-C reaches only the launcher), with its output
in the node's log, the launcher's environment (passed with every start, not the one the server was
started with), and the command line it would have had as its process title (``ps``, ``/proc/PID/cmdline``).
It dies with the fork server (``PR_SET_PDEATHSIG``), which leaves when the launcher does, so a
``kill -9`` of the launcher still stops every node. A node's exit status reaches the launcher through
the server (which reaps it); if the server itself dies, the status dies with it — multiprocessing then
says 255, which no node ever exits with — so :class:`NodeProcess` follows its node by a pidfd instead, and
:func:`server_death` tells the launcher what happened to the server. ``gossip launch --spawn`` starts every node as its
own ``python -m gossip node`` process instead. The command starts the server as soon as its flags and
config are valid, before the launcher itself imports torch, so that the two imports run side by side.

What the fork server must not do: create threads (OpenMP, ZeroMQ I/O) or sockets before it forks —
it only imports. Compose and Kubernetes run ``gossip node`` as the container's command and never
use it.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from multiprocessing import spawn
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

from gossip.errors import ExitCode

__all__ = ["NodeProcess", "server_death", "start_node_process", "stop", "warm_up"]

# Imported once by the fork server: everything a node process needs before its first round.
# The run's plug-in modules come last (gossip.run.preload), named by warm_up for the moment the server starts.
PRELOAD = (
    "gossip.run.forkserver",
    "gossip.node.daemon",
    "gossip.node.node",
    "gossip.ops.metrics",
    "gossip.data",
    "gossip.run.capacity",
    "gossip.run.preload",
)
# Every node process's environment (spawned or forked, and the fork server's, where libraries read it as
# they load): one compute thread per process, no display; a node sets torch's threads itself too.
NODE_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}

# What multiprocessing reports for a forked process whose status it could not read (the server's pipe
# closed without one: the server died); never a node's own code (gossip.errors.ExitCode)
STATUS_LOST = 255

_context: ForkServerContext | None = None
_preparation_data = spawn.get_preparation_data


def warm_up(plugin_modules: Sequence[str] = ()) -> None:
    """Start the fork server now: it imports torch while the launcher finishes starting (its Prometheus, if asked for).

    ``plugin_modules``: the run's plug-in modules, imported by the server too, so its forks share them.
    """
    _server(plugin_modules)


def _server_state() -> Any:
    """multiprocessing's fork-server object: private, read for its pid and pipe (typeshed does not declare it)."""
    from multiprocessing import forkserver

    return forkserver._forkserver


def stop(*, kill: bool = False) -> None:
    """Stop the fork server once a run is over: a launch owns one, so the next launch in this process (a
    notebook, a benchmark, the tests) starts afresh like a new ``gossip launch`` would, and no idle process
    holding torch's memory outlives the run. Nodes still running get their parent-death signal.

    The server notices it should leave only between requests, so one still importing torch would finish
    first: ``kill`` (a launch that was refused) ends it at once instead.
    """
    global _context
    if _context is None:
        return
    server = _server_state()
    if kill and server._forkserver_pid is not None:
        try:
            os.kill(server._forkserver_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    stop_server = getattr(server, "_stop", None)  # multiprocessing's own (for its tests), 3.8+
    if stop_server is not None:
        stop_server()
    _context = None


def server_death() -> str | None:
    """How the fork server of this launch died ("killed by SIGKILL", "exit code 1"), or None while it runs (or none was started).

    Read with ``WNOWAIT``: the server stays a zombie for :func:`stop` (multiprocessing's own stop) to reap.
    """
    if _context is None:
        return None
    server = _server_state()
    pid = server._forkserver_pid
    if pid is None:
        return None
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped already: multiprocessing noticed first
        return "gone"
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return f"exit code {info.si_status}"
    try:
        return f"killed by {signal.Signals(info.si_status).name}"
    except ValueError:
        return f"killed by signal {info.si_status}"


def _server(plugin_modules: Sequence[str] = ()) -> ForkServerContext:
    global _context
    if _context is None:
        from gossip.run.preload import PLUGIN_MODULES

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(PRELOAD))
        server_env = {**NODE_ENV, PLUGIN_MODULES: ",".join(plugin_modules)}
        saved = {k: os.environ.get(k) for k in server_env}
        os.environ.update(server_env)  # the server inherits the environment of this moment
        try:
            from multiprocessing import forkserver

            forkserver.ensure_running()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        _context = context
    return _context


class NodeProcess:
    """A forked node, with the part of :class:`subprocess.Popen`'s interface the launcher uses.

    ``returncode`` follows Popen: the exit code, or minus the signal that killed the process — or
    :data:`STATUS_LOST` once the node ended after its fork server died (nobody could tell its status).
    The node is also held by a pidfd: after the server's death it tells whether the node still runs
    (it got SIGTERM from the kernel and is writing its files), and signals reach the node, never a
    process that took its pid since.
    """

    def __init__(self, process: multiprocessing.process.BaseProcess, args: Sequence[str]) -> None:
        self._process = process
        self.args = list(args)
        self.pid = int(process.pid or 0)
        self.returncode: int | None = None
        self.orphaned = False  # the fork server died while the node ran: its status is lost
        try:
            self._pidfd: int | None = os.pidfd_open(self.pid)
        except (OSError, AttributeError):  # gone already (its status comes through the server), or no pidfd here
            self._pidfd = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        if not self.orphaned:
            if self._process.is_alive():
                return None
            code = self._process.exitcode
            if code != STATUS_LOST or self._pidfd is None or server_death() is None:
                return self._ended(code)
            self.orphaned = True
        return None if self._running() else self._ended(STATUS_LOST)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        self._process.join(timeout)
        code = self.poll()
        if code is None and self.orphaned and self._pidfd is not None:
            select.select([self._pidfd], [], [], None if deadline is None else max(0.0, deadline - time.monotonic()))
            code = self.poll()
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                if self._pidfd is not None:
                    signal.pidfd_send_signal(self._pidfd, sig)
                else:
                    os.kill(self.pid, sig)
            except ProcessLookupError:  # ended (and was reaped) since the poll
                pass

    def _running(self) -> bool:
        assert self._pidfd is not None
        return not select.select([self._pidfd], [], [], 0)[0]  # a pidfd reads ready once its process ended

    def _ended(self, code: int | None) -> int | None:
        self.returncode = code
        if code is not None and self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        return code

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def start_node_process(argv: Sequence[str], *, log: Path, env: Mapping[str, str], title: Sequence[str]) -> NodeProcess:
    """Fork ``gossip node`` with ``argv`` (the arguments after ``gossip``) from the warm server."""
    process = _server().Process(target=_node_main, args=(list(argv), str(log), dict(env), " ".join(title)), daemon=False)
    original = spawn.get_preparation_data
    spawn.get_preparation_data = _without_main  # read by multiprocessing's start of the process, just below
    try:
        process.start()
    finally:
        spawn.get_preparation_data = original
    return NodeProcess(process, title)


def _without_main(name: str) -> dict[str, object]:
    """What multiprocessing sends a new process about its parent, minus the parent's main module.

    multiprocessing runs the parent's ``__main__`` script again in every child (as ``__mp_main__``) so
    that pickled functions defined there resolve. A node's function lives in this module, and running
    the launcher's script again would be wrong: a user's script that calls ``gossip.run.launch.launch`` at
    top level, without an ``if __name__ == "__main__"`` guard, would launch again inside every node.
    """
    data = _preparation_data(name)
    data.pop("init_main_from_path", None)
    data.pop("init_main_from_name", None)
    return data


def _node_main(argv: list[str], log: str, env: dict[str, str], title: str) -> None:  # pragma: no cover - runs in the fork
    """The forked node: its own session, its log as stdout and stderr, the launcher's environment, then ``gossip node``."""
    try:
        import setproctitle  # before the environment changes: it needs argv and environ where the kernel put them
    except ImportError:  # installed without its dependencies: the node runs all the same, under the server's title
        pass
    else:
        setproctitle.setproctitle(title)
        setproctitle.setthreadtitle("gossip node")  # the short name (ps -o comm, top)
    os.setsid()
    server = os.getppid()
    from gossip.run.processes import die_with_parent

    # multiprocessing gives every fork a copy of the write end of the server's "a client is alive" pipe;
    # the server leaves (and its forks get their parent-death signal) only once every copy is closed
    server_state = _server_state()
    alive = server_state._forkserver_alive_fd
    if alive is not None:
        os.close(alive)
        server_state._forkserver_alive_fd = None
    die_with_parent()  # with the fork server, which leaves when the launcher does
    if os.getppid() != server:  # it left before the kernel knew to tell us: nobody will stop this node
        os._exit(1)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # as PYTHONUNBUFFERED for a spawned node
    os.environ.clear()
    os.environ.update(env)
    from gossip.node import daemon
    from gossip.run.capacity import check_node_config_fits

    try:
        if argv[:1] != ["node"]:
            raise ValueError(f"the fork server starts nodes only, not {argv[:1]}")
        code = daemon.main(argv[1:], check_fits=check_node_config_fits)
    except SystemExit as exc:  # argparse's way out
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        traceback.print_exc()
        code = ExitCode.FAILED
    daemon.exit_without_teardown(code)  # the node's files are written; skip finalising torch's modules
