"""``gossip launch``: N real node processes on this machine, a progress bar, a clean end, a run directory.

The launcher is not a coordinator: it prepares files (config, topology, data cache), starts one
``gossip node`` process per vertex, watches their JSONL records to draw progress, and stops them.
Nodes talk only to each other, over TCP on loopback. A node process is a fork of one fork server that
imported torch once (:mod:`gossip.run.forkserver`: nodes start without importing it again), or with
``spawn`` (``--spawn``) a fresh ``python -m gossip node``; either way it runs the same ``gossip node``.

Process hygiene (no orphans, no leaked ports):
- nodes run in their own session, so a terminal's Ctrl-C reaches only the launcher, which then
  sends SIGTERM to every node (they finish their phase, write their files, exit 0) and SIGKILL to
  any still alive after a grace period;
- every node asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``) — the launcher,
  or the fork server, which leaves when the launcher does — so even a ``kill -9`` of the launcher
  leaves no node behind;
- one thread per node process (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``): N processes on
  C cores then share the cores instead of oversubscribing them N×C times.

How a run ends (exit codes: :class:`gossip.errors.ExitCode`, read from the nodes' own codes):

- every node finished: 0;
- a node dies — crashes, is killed, fails at runtime (1), refuses its config (2), or is stopped by a
  SIGTERM or SIGINT that did not come from the launcher (143, 130) — and the whole run stops, exit 1,
  unless ``keep_going`` (``--keep-going``): then the launcher reports it and lets the others finish —
  gossip needs no node in particular, and the final merge excludes the dead ones; the exit code is then
  0 when every surviving node finished;
- a node diverges (its model is no longer finite; exit 3): the run stops at once, exit 3, even with
  ``keep_going`` — the configuration is at fault (usually the learning rate), and the neighbours that
  mixed its growing model are on the same road;
- the fork server dies: every node's exit status dies with it, so the launcher reports what each node's
  summary says (stopped at round t, finished, or lost), exit 1 (0 if every node had finished);
- the launcher itself gets SIGINT or SIGTERM: it stops every node, exit 130 or 143.

With ``restarts`` (``--restart``) a node that dies is first started again from its checkpoint (``gossip
node --resume``), like a container restart policy; ``summary.json`` lists the restarts. Not restarted:
a usage error (it would fail the same way), a divergence (it would diverge again from its checkpoint),
and a node stopped by SIGTERM or SIGINT (someone asked it to stop; a restart would undo that).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossip.config import RunConfig
from gossip.errors import ConfigError, ExitCode
from gossip.plugins import modules
from gossip.results.rundir import NodeFiles
from gossip.run.endings import STOPPED_BY_SIGNAL, divergence_text, ending_text, exit_text, log_tail, server_death_text
from gossip.run.forkserver import NODE_ENV, NodeProcess, server_death, start_node_process, warm_up
from gossip.run.forkserver import stop as stop_fork_server
from gossip.run.nodeimports import check_node_imports
from gossip.run.ports import wait_ports_free
from gossip.run.prepare import prepare_run
from gossip.run.processes import NodeHandle, die_with_parent
from gossip.run.progress import NodeProgress, ProgressBar
from gossip.run.promserver import beside_run
from gossip.run.tally import format_table, metric_info, summarise
from gossip.topology import Topology, parse_spec

__all__ = ["LaunchResult", "launch", "prepare_run", "resume", "run_prepared"]

GRACE_S = 15.0
Starter = Callable[[Path, int, Sequence[str]], NodeHandle]  # (run dir, node, extra ``gossip node`` args) → the started node
# a node's exit that a restart would not mend: a usage error or a divergence happens again; a stop by signal was asked for
NOT_RESTARTED = frozenset({ExitCode.USAGE, ExitCode.DIVERGED, *STOPPED_BY_SIGNAL})


@dataclass
class LaunchResult:
    """What a launch produced: ``summary`` is what ``summary.json`` holds (:class:`gossip.results.summary.RunSummary`'s keys)."""

    run_dir: Path
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)


def node_env() -> dict[str, str]:
    """Environment for node processes: one compute thread each, unbuffered logs, and the launcher's Python path.

    Why the path: a plug-in (``[aggregation] rule = "mylab.rules:GeoMedian"``) is imported by every node, and the
    launcher checked it imports with its own ``sys.path``. Forks of the fork server inherit that path; a spawned
    or restarted ``python -m gossip node`` would otherwise see only its own, so it gets it as ``PYTHONPATH``.
    """
    path = os.pathsep.join(p for p in sys.path if p)
    return {**os.environ, **NODE_ENV, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}


def start_node(run_dir: Path, node: int, extra_args: Sequence[str] = (), *, spawn: bool = False) -> subprocess.Popen[bytes] | NodeProcess:
    """Start one ``gossip node`` process of a prepared run; its output goes to ``nodes/node-<i>.log``.

    A fork of the warm fork server (:mod:`gossip.run.forkserver`), or with ``spawn`` a fresh interpreter.
    """
    files = NodeFiles(run_dir, node)
    argv = ["node", "--config", str(run_dir / "config.toml"), "--id", str(node), "--run-dir", str(run_dir), *extra_args]
    cmd = [sys.executable, "-m", "gossip", *argv]
    if not spawn:
        return start_node_process(argv, log=files.log, env=node_env(), title=cmd)
    with open(files.log, "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=node_env(),
            start_new_session=True,
            preexec_fn=die_with_parent,
        )


def launch(
    cfg: RunConfig,
    *,
    run_dir: str | Path | None = None,
    base_port: int | None = None,
    progress: bool | None = None,
    out: Any = None,
    prometheus: bool = False,
    prometheus_port: int = 0,
    keep_going: bool = False,
    restarts: int = 0,
    spawn: bool = False,
) -> LaunchResult:
    """Run a whole experiment: prepare, start N nodes, follow them, stop them, summarise.

    With ``prometheus``, a Prometheus server scrapes the nodes for the duration of the run (see
    :func:`gossip.run.promserver.beside_run`: it never fails the run). With ``keep_going``, a node that
    dies does not stop the others (see the module docstring). With ``spawn``, every node is a fresh
    ``python -m gossip node`` process instead of a fork of the warm fork server (:mod:`gossip.run.forkserver`).
    """
    check_node_imports(cfg, node_env())  # a plug-in the nodes would not import: refused before anything is written
    resolved, path, topology = prepare_run(cfg, run_dir=run_dir, base_port=base_port, spawn=spawn)
    if not spawn:
        warm_up(modules(resolved.plugin_names()))  # the server imports while Prometheus starts; only once the run is known to be valid
    if not prometheus:
        return run_prepared(resolved, path, topology, progress=progress, out=out, keep_going=keep_going, restarts=restarts, spawn=spawn)
    with beside_run(path, metrics_enabled=resolved.metrics.enabled, port=prometheus_port, out=out or sys.stderr):
        return run_prepared(resolved, path, topology, progress=progress, out=out, keep_going=keep_going, restarts=restarts, spawn=spawn)


def resume(
    run_dir: Path, *, progress: bool | None = None, out: Any = None, keep_going: bool = False, restarts: int = 0, spawn: bool = False
) -> LaunchResult:
    """Continue a run whose launcher died (``gossip launch --resume RUN_DIR``): every node restarts from its checkpoint.

    The launcher's own death took the nodes with it (SIGTERM from ``PR_SET_PDEATHSIG``; each wrote a
    checkpoint of its last round), or a SIGKILL of everything left checkpoints up to
    ``checkpoint_every`` rounds old. Either way the run directory holds all that is needed: the resolved
    config (same ports), the topology, the data, and per node a checkpoint and the records up to it.
    Each node cuts its JSONL back to its checkpoint (records after it are redone, a torn line is dropped)
    and appends from there. The run agrees on one start round, the latest checkpoint's (``gossip node
    --join-round``): a node whose checkpoint is older by more than ``max_rounds_ahead`` skips to it (its first
    record says ``resumed: {checkpoint_round, joined_round}``); one closer catches up in place.
    """
    out = out or sys.stderr
    path = Path(run_dir)
    topo_file = next(
        (path / name for name in ("topology.json", "topology.graphml") if (path / name).exists()), None
    )  # older runs: GraphML only
    missing = [name for name in ("config.toml", "nodes") if not (path / name).exists()] + (["topology"] if topo_file is None else [])
    if not (path / "data.npz").exists() and not (path / "shards.npz").exists():  # a lazy dataset's run has the split only
        missing.append("data.npz or shards.npz")
    if missing:
        raise ConfigError(f"{path} is not a run directory gossip launch prepared (no {', '.join(missing)}); nothing to resume")
    path = path.resolve()
    from gossip.config import load_config
    from gossip.node.checkpoint import load as load_checkpoint

    resolved = load_config(path / "config.toml")
    check_node_imports(resolved, node_env())
    assert topo_file is not None
    topology = parse_spec(str(topo_file.resolve()), n=resolved.run.nodes or None, seed=resolved.run.seed)
    wait_ports_free(resolved, topology.n, GRACE_S + 5)
    rounds = []
    for i in range(topology.n):
        ckpt = NodeFiles(path, i).checkpoint
        rounds.append(load_checkpoint(ckpt).round if ckpt.exists() else 0)
    # One start round for all: the latest checkpoint. A node further behind it than its inbox window skips there
    # (gossip.node.node); asking the neighbours instead splits the ring when a neighbourhood resumes from the same older round.
    agreed = min(max(rounds, default=0), resolved.training.rounds)
    print(f"gossip: resuming {path}: checkpoints at rounds {rounds}; the run continues at round {agreed}", file=out, flush=True)
    node_args = ("--resume", "--join-round", str(agreed))
    return run_prepared(
        resolved, path, topology, progress=progress, out=out, keep_going=keep_going, node_args=node_args, restarts=restarts, spawn=spawn
    )


def run_prepared(
    resolved: RunConfig,
    path: Path,
    topology: Topology,
    *,
    progress: bool | None = None,
    out: Any = None,
    keep_going: bool = False,
    node_args: Sequence[str] = (),
    restarts: int = 0,
    spawn: bool = False,
    starter: Starter | None = None,
) -> LaunchResult:
    """Start the nodes of a prepared run directory and follow them to the end.

    ``starter`` starts a node somewhere else than here (:mod:`gossip.run.hosts`: over ssh); by default :func:`start_node`.

    ``restarts``: a node that dies (crash, SIGKILL, OOM, a runtime failure — not a usage error, a
    divergence or a stop by signal: see the module docstring) is started again with ``--resume`` up to
    this many times; it continues from its checkpoint and rejoins at the current round.
    """
    out = out or sys.stderr
    _announce(resolved, path, topology, out)
    started = time.time()
    bar = ProgressBar(resolved.training.rounds, topology.n, progress, out, metric_info(resolved).name)
    run = _Supervisor(resolved, path, out, keep_going=keep_going, restarts=restarts, spawn=spawn, starter=starter)
    run.start(topology.n, node_args)
    try:
        ending = run.follow(bar)
    finally:
        run.stop(bar)
    summary = summarise(path, topology, resolved, time.time() - started, {i: k for i, k in run.restarted.items() if k})
    summary.write(path / "summary.json")
    print(format_table(summary), file=out)
    failure = ending.failure
    if ending.server_died is not None and not all(n.status == "finished" for n in summary.per_node):
        failure = server_death_text(ending.server_died, summary, path)
    if failure:
        print(f"gossip: error: {failure}", file=out)
        return LaunchResult(path, ending.code, summary.to_dict())
    if ending.interrupted:
        print("gossip: interrupted; every node was stopped. Partial results are in the run directory.", file=out)
        return LaunchResult(path, ExitCode.stopped_by(ending.interrupted), summary.to_dict())
    return LaunchResult(path, ExitCode.FINISHED, summary.to_dict())


def _announce(resolved: RunConfig, path: Path, topology: Topology, out: Any) -> None:
    print(f"gossip: run directory {path}", file=out)
    print(
        f"gossip: {topology.n} nodes on {topology.name}, {resolved.training.rounds} rounds, nodes on {resolved.transport.addresses[0]} …",
        file=out,
    )
    if resolved.metrics.enabled:
        print(
            f"gossip: metrics on http://{resolved.metrics.host}:{resolved.metrics.ports[0]}/metrics … :{resolved.metrics.ports[-1]}",
            file=out,
        )


@dataclass
class _Child:
    """One node process of the run, and how far its records say it got."""

    node: int
    proc: NodeHandle
    seen: NodeProgress


@dataclass(frozen=True)
class _Ending:
    """Why the launcher stopped following the nodes: all ended (nothing set), a failure, a signal, or the fork server's death."""

    failure: str | None = None
    code: int = ExitCode.FAILED  # the exit code that goes with ``failure``
    interrupted: int | None = None  # the signal that stopped the launcher
    server_died: str | None = None  # how the fork server ended mid-run


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[list[int]]:
    """Within the block SIGINT and SIGTERM raise KeyboardInterrupt, and the list yielded gets the signal's number.

    SIGINT too, explicitly: a process started in the background by a shell without job control
    inherits SIGINT ignored, and Python then leaves it ignored — `kill -INT` would not stop the run.
    """
    caught: list[int] = []

    def _on_signal(signum: int, _frame: Any) -> None:
        caught.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, _on_signal)
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Supervisor:
    """The run's node processes: started, restarted by the restart policy, watched until the run ends, stopped."""

    def __init__(
        self, resolved: RunConfig, path: Path, out: Any, *, keep_going: bool, restarts: int, spawn: bool, starter: Starter | None
    ) -> None:
        self.cfg = resolved
        self.path = path
        self.out = out
        self.keep_going = keep_going
        self.restarts = restarts
        self.spawn = spawn
        self.starter: Starter = starter or (lambda run_dir, node, args: start_node(run_dir, node, args, spawn=spawn))
        self.children: list[_Child] = []
        self.restarted: dict[int, int] = {}  # node → times restarted
        self.dead: set[int] = set()  # nodes reported dead (keep_going)

    def start(self, n: int, node_args: Sequence[str]) -> None:
        join = ("--join", f"0@{self.cfg.transport.address_of(0)}") if self.cfg.membership.enabled else ()  # open: all join through node 0
        self.children = [_Child(i, self.starter(self.path, i, (*node_args, *(join if i else ()))), NodeProgress(i)) for i in range(n)]
        self.restarted = {i: 0 for i in range(n)}

    def follow(self, bar: ProgressBar) -> _Ending:
        """Watch the nodes until the run ends; a SIGINT or SIGTERM to the launcher ends it too."""
        with _signals_interrupt() as caught:
            try:
                while True:
                    server_died = None if self.spawn else server_death()
                    if server_died is not None:  # its nodes' exit codes died with it: what they did is in their files
                        return _Ending(server_died=server_died)
                    self._draw(bar)
                    ending = self._ending(self._restart_the_dead([c.proc.poll() for c in self.children]))
                    if ending is not None:
                        return ending
                    time.sleep(0.2)
            except KeyboardInterrupt:
                return _Ending(interrupted=caught[0] if caught else signal.SIGINT)

    def stop(self, bar: ProgressBar) -> None:
        """Stop every node and the fork server, then draw the last progress from the records the nodes left."""
        _stop_all(self.children)
        stop_fork_server(kill=True)  # every node has exited: nothing to wait for but the teardown of its torch
        self._draw(bar)
        bar.close()

    def _draw(self, bar: ProgressBar) -> None:
        for c in self.children:
            c.seen.follow(self.path)
        shown = [c for c in self.children if not self.cfg.byzantine.is_byzantine(c.node)] or self.children  # progress = honest nodes
        if bar.enabled:
            bar.update([c.seen for c in shown], [c.seen for c in shown if c.proc.poll() in (None, 0)])

    def _restart_the_dead(self, codes: list[int | None]) -> list[int | None]:
        """Start again each node that died of what a restart may mend, while it has restarts left; its code becomes None."""
        for k, (c, code) in enumerate(zip(self.children, codes, strict=True)):
            if code not in (None, 0) and code not in NOT_RESTARTED and self.restarted[c.node] < self.restarts:
                self.restarted[c.node] += 1
                print(
                    f"gossip: node {c.node} died ({exit_text(code)}); restarting it from its checkpoint "
                    f"({self.restarted[c.node]} of {self.restarts})",
                    file=self.out,
                    flush=True,
                )
                c.proc = self.starter(self.path, c.node, ("--resume",))
                c.seen.restart()
                codes[k] = None
        return codes

    def _ending(self, codes: list[int | None]) -> _Ending | None:
        """How the run ends given the nodes' exit codes, or None while it goes on (see the module docstring)."""
        bad = [(c, code) for c, code in zip(self.children, codes, strict=True) if code is not None and code != 0]
        diverged = next((c for c, code in bad if code == ExitCode.DIVERGED), None)
        if diverged is not None:
            return _Ending(divergence_text(self.path, diverged.node), ExitCode.DIVERGED)
        rounds = self.cfg.training.rounds
        if bad and not self.keep_going:
            child, code = bad[0]
            return _Ending(f"node {child.node} {ending_text(self.path, child.node, code, rounds, child.seen.round)}")
        for child, code in bad:
            if child.node not in self.dead:
                self.dead.add(child.node)
                told = ending_text(self.path, child.node, code, rounds, child.seen.round, tail=False)
                print(f"gossip: node {child.node} {told}; the others carry on", file=self.out, flush=True)
        if len(self.dead) == len(self.children):
            return _Ending("every node died" + log_tail(self.path, self.children[0].node))
        if all(code is not None for code in codes):
            return _Ending()
        return None


def _stop_all(children: list[_Child]) -> None:
    """SIGTERM every live node, wait, then SIGKILL the stragglers: nothing outlives the launcher."""
    for c in children:
        if c.proc.poll() is None:
            c.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    for c in children:
        try:
            c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()
