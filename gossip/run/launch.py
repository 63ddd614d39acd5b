"""``gossip launch``: N real node processes on this machine, a progress bar, a clean end, a run directory.

The launcher is not a coordinator: it prepares files (config, topology, data cache), starts one
``gossip node`` process per vertex, watches their JSONL records to draw progress, and stops them.
Nodes talk only to each other, over TCP on loopback. A node process is a fork of one fork server that
imported torch once (:mod:`gossip.run.forkserver`: 32 nodes start in ~4.5 s instead of ~38 s here), or with
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

import dataclasses
import json
import math
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossip.algorithms.tolerance import check_tolerance
from gossip.config import RunConfig, check_path_text, config_to_toml
from gossip.data import load_dataset, save_npz, save_parts
from gossip.data.datasets import dataset_shape
from gossip.data.split import shard_key, split_training_set
from gossip.errors import ConfigError, ExitCode, TransportError
from gossip.learn.models import parameter_count
from gossip.net.linkemu import link_specs
from gossip.ops.prometheus import write_run_config
from gossip.results.rundir import NodeFiles, atomic_write_text, iter_new_records, write_json
from gossip.run.capacity import check_launch_fits, dataset_bytes
from gossip.run.forkserver import NODE_ENV, NodeProcess, server_death, start_node_process, warm_up
from gossip.run.forkserver import stop as stop_fork_server
from gossip.run.processes import die_with_parent
from gossip.run.promserver import beside_run
from gossip.topology.graph import Topology, parse_spec, save

__all__ = ["LaunchResult", "launch", "prepare_run", "resume", "run_prepared"]

GRACE_S = 15.0
# a node's exit that a restart would not mend: a usage error or a divergence happens again; a stop by signal was asked for
NOT_RESTARTED = frozenset({ExitCode.USAGE, ExitCode.DIVERGED, ExitCode.INTERRUPTED, ExitCode.TERMINATED, -signal.SIGINT, -signal.SIGTERM})


@dataclass
class LaunchResult:
    """What a launch produced."""

    run_dir: Path
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Child:
    node: int
    proc: subprocess.Popen[bytes] | NodeProcess
    offset: int = 0
    round: int = 0
    accuracy: float | None = None
    distance: float | None = None


def prepare_run(
    cfg: RunConfig, *, run_dir: str | Path | None = None, base_port: int | None = None, spawn: bool = False
) -> tuple[RunConfig, Path, Topology]:
    """Validate everything a user can get wrong, then write the run directory. Starts no process.

    ``spawn``: the nodes will each be their own interpreter, not forks (the memory check counts them so).

    Returns the resolved config (topology file, node count, addresses and ports filled in).

    Nothing is written, and nothing proportional to a size in the config is allocated, before every check
    has passed: the memory check runs on the config's numbers first (a graph, a dataset or a model of a
    mistyped size is never built), then on the graph's degrees.
    """
    if run_dir is not None:
        check_path_text("--run-dir", str(run_dir))
    shape, classes, train, test = dataset_shape(cfg.data.dataset, **cfg.data.dataset_options())
    data = dataset_bytes(shape, train + test)
    params = parameter_count(cfg.model.name, shape, classes, **cfg.model.options())
    check_launch_fits(max(cfg.run.nodes, 1), params, 0, spawn=spawn, data=data)  # a lower bound: degrees only add
    topology = parse_spec(cfg.topology.spec, n=cfg.run.nodes or None, seed=cfg.run.seed)
    topology.check_weights(cfg.topology.weights)  # refuses e.g. uniform weights on an irregular graph
    check_launch_fits(topology.n, params, max(topology.degrees(), default=0), spawn=spawn, data=data)
    check_tolerance(cfg, topology)  # attackers outside the graph, or more than the rule withstands at some node
    dataset = load_dataset(cfg.data.dataset, root=cfg.data.root or None, seed=cfg.run.seed, **cfg.data.dataset_options())
    check_links(cfg, topology, params)
    _check_base_port(base_port, topology.n, cfg.metrics.enabled)
    parts = split_training_set(cfg, topology.n, dataset.y_train)

    out = Path(run_dir) if run_dir else cfg.run.directory(f"{time.strftime('%Y%m%d-%H%M%S')}-{topology.name}")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"run directory {out} already exists and is not empty; choose another --run-dir or --name")
    check_path_text("run directory", str(out.resolve()))  # it is written into config.toml, so it must be writable there

    host = _host_of(cfg.transport.address_template)
    if cfg.transport.address_template.startswith("ipc://"):
        ports = []
        addresses = ipc_addresses(topology.n)
    else:
        ports = _ports(host, topology.n, base_port, "node")
        addresses = tuple(f"tcp://{host}:{p}" for p in ports)
    metrics = cfg.metrics
    if metrics.enabled:
        mports = _ports(metrics.host, topology.n, (base_port + topology.n) if base_port else None, "metrics", avoid=set(ports))
        metrics = dataclasses.replace(metrics, ports=tuple(mports))
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()

    security = cfg.security
    if security.curve and not security.keys_dir:
        from gossip.net.zeromq import generate_keys

        generate_keys(out / "keys", topology.n)
        security = dataclasses.replace(security, keys_dir=str(out / "keys"))
    # The nodes read the JSON (no NetworkX in a node process: ~12 MiB each); the GraphML is for people and tools.
    topo_path = out / "topology.json"
    save(topology, topo_path)
    save(topology, out / "topology.graphml")
    resolved = dataclasses.replace(
        cfg,
        run=dataclasses.replace(cfg.run, nodes=topology.n),
        topology=dataclasses.replace(cfg.topology, spec=str(topo_path)),
        transport=dataclasses.replace(cfg.transport, addresses=addresses),
        metrics=metrics,
        security=security,
    )
    atomic_write_text(out / "config.toml", config_to_toml(resolved))
    if metrics.enabled:
        write_run_config(out, resolved)  # RUN_DIR/prometheus/: scrape config and rules for this run
    save_npz(dataset, out / "data.npz")
    save_parts(parts, shard_key(resolved, topology.n, len(dataset.y_train)), out / "shards.npz")  # nodes read their part, not recompute it
    (out / "nodes").mkdir(exist_ok=True)
    return resolved, out, topology


def _check_base_port(base_port: int | None, n: int, metrics: bool) -> None:
    """``--base-port B``: the nodes get ports B..B+n-1 and their metrics the n after those; every one must be a port."""
    if not base_port:
        return  # free ports, picked below
    last = base_port + (2 * n if metrics else n) - 1
    if base_port < 1 or last > 65535:
        raise ConfigError(
            f"--base-port {base_port}: {n} nodes {'and their metrics ' if metrics else ''}need ports {base_port}..{last}, past 65535"
        )


# bytes per value on the wire, for the smallest message a node sends (int8 adds block scales; compressed rounds send deltas)
_WIRE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}


def check_links(cfg: RunConfig, topology: Topology, params: int) -> None:
    """Refuse emulated links (``[links]`` or edge attributes) on which no model could arrive within its round.

    Every edge's attributes are checked against ``[links]``' ranges first (a TopologyError names the edge).
    In sync rounds a model later than ``round_timeout_s`` is never mixed: a link whose delay (less its
    jitter) plus the time to serialise the smallest message a node sends is that long would only make
    every round wait out its timeout. A lower bound, like the memory check: a run it refuses could not work.
    """
    smallest = params * _WIRE_BYTES[cfg.transport.wire_dtype]
    if cfg.compression.method != "none":
        smallest = max(1, int(params * cfg.compression.topk_fraction)) * 8
    timeout = cfg.transport.round_timeout_s
    for i in range(topology.n):
        for j, spec in link_specs(i, topology, cfg.links).items():
            wire_s = smallest * 8 / (spec.bandwidth_mbit * 1e6) if spec.bandwidth_mbit else 0.0
            seconds = max(0.0, spec.delay_ms - spec.jitter_ms) / 1000 + wire_s
            if cfg.training.mode == "sync" and seconds >= timeout:
                raise ConfigError(
                    f"edge ({i}, {j}): a model of at least {smallest} bytes takes {seconds:.3g} s to arrive (delay_ms = {spec.delay_ms:g}, "
                    f"bandwidth_mbit = {spec.bandwidth_mbit:g}) but transport.round_timeout_s = {timeout:g}: no model would arrive in its round"
                )


def ipc_addresses(count: int) -> tuple[str, ...]:
    """Unix-domain socket addresses for ``count`` nodes on this machine, unique to this run.

    Linux's abstract namespace (``ipc://@name``): no socket file to clean up after a crash, no
    108-byte path limit, and a restarted node binds the same name again. ZeroMQ over ipc moves a
    4 MB model for about two thirds of the CPU that loopback TCP takes (bench/transport.py), so a
    one-machine run gossips cheaper; TCP stays the default because it is what a real network does.
    """
    token = secrets.token_hex(4)
    return tuple(f"ipc://@gossip-{token}-{i}" for i in range(count))


def _host_of(template: str) -> str:
    rest = template.split("://", 1)[-1]
    host = rest.rsplit(":", 1)[0]
    return host if host and "{" not in host else "127.0.0.1"


def _ports(host: str, count: int, base: int | None, what: str, avoid: Collection[int] = ()) -> list[int]:
    """``count`` ports: ``base..base+count-1`` checked free, or free ones picked below the kernel's
    ephemeral range.

    Why not ``bind(0)``: the kernel hands out ports from its ephemeral range to every outgoing
    connection and every ``bind(0)`` on the machine, so a port it gave us and we released can be
    taken again before our node binds it. Below that range nobody gets a port without asking for
    it by number, so a port that is free now stays free until the node binds it. ``avoid``: ports
    already picked for this run but not bound yet (they still test free).
    """
    if base:
        for i in range(count):
            if not _port_free(host, base + i):
                raise TransportError(
                    f"{what} port {base + i} (node {i}) is already in use on {host}; choose another --base-port, or 0 for free ports"
                )
        return [base + i for i in range(count)]
    low, _high = _ephemeral_range()
    candidates = list(range(max(1024, low - 12_000), low))
    random.SystemRandom().shuffle(candidates)
    picked: list[int] = []
    for port in candidates:
        if port not in avoid and _port_free(host, port):
            picked.append(port)
            if len(picked) == count:
                return picked
    raise TransportError(f"no {count} free {what} ports below {low} on {host}; pass --base-port")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as libzmq does: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def node_env() -> dict[str, str]:
    """Environment for node processes: one compute thread each, unbuffered logs."""
    return {**os.environ, **NODE_ENV, "PYTHONUNBUFFERED": "1"}


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
    resolved, path, topology = prepare_run(cfg, run_dir=run_dir, base_port=base_port, spawn=spawn)
    if not spawn:
        warm_up()  # the server imports while Prometheus starts; only once the run is known to be valid
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
    missing = [name for name in ("config.toml", "data.npz", "nodes") if not (path / name).exists()] + (
        ["topology"] if topo_file is None else []
    )
    if missing:
        raise ConfigError(f"{path} is not a run directory gossip launch prepared (no {', '.join(missing)}); nothing to resume")
    path = path.resolve()
    from gossip.config import load_config
    from gossip.node.checkpoint import load as load_checkpoint

    resolved = load_config(path / "config.toml")
    assert topo_file is not None
    topology = parse_spec(str(topo_file.resolve()), n=resolved.run.nodes or None, seed=resolved.run.seed)
    _wait_ports_free(resolved, topology.n)
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


def _wait_ports_free(cfg: RunConfig, n: int, timeout_s: float = GRACE_S + 5) -> None:
    """Wait until the run's node and metrics ports are free: the previous nodes may still be writing their last files."""
    wanted = [(_host_of(a), int(a.rsplit(":", 1)[1])) for a in cfg.transport.addresses if a.startswith("tcp://")]  # ipc names have no port
    if cfg.metrics.enabled:
        wanted += [(cfg.metrics.host, cfg.metrics.port_of(i)) for i in range(n)]
    deadline = time.monotonic() + timeout_s
    while True:
        busy = [f"{h}:{p}" for h, p in wanted if p and not _port_free(h, p)]
        if not busy:
            return
        if time.monotonic() > deadline:
            raise TransportError(
                f"port(s) {', '.join(busy)} of this run are still in use after {timeout_s:g} s: are its nodes still running?"
            )
        time.sleep(0.2)


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
) -> LaunchResult:
    """Start the nodes of a prepared run directory and follow them to the end.

    ``restarts``: a node that dies (crash, SIGKILL, OOM, a runtime failure — not a usage error, a
    divergence or a stop by signal: see the module docstring) is started again with ``--resume`` up to
    this many times; it continues from its checkpoint and rejoins at the current round.
    """
    out = out or sys.stderr
    rounds = resolved.training.rounds
    print(f"gossip: run directory {path}", file=out)
    print(f"gossip: {topology.n} nodes on {topology.name}, {rounds} rounds, nodes on {resolved.transport.addresses[0]} …", file=out)
    if resolved.metrics.enabled:
        print(
            f"gossip: metrics on http://{resolved.metrics.host}:{resolved.metrics.ports[0]}/metrics … :{resolved.metrics.ports[-1]}",
            file=out,
        )

    started = time.time()
    children = [_Child(i, start_node(path, i, node_args, spawn=spawn)) for i in range(topology.n)]
    shown = [c for c in children if not resolved.byzantine.is_byzantine(c.node)] or children  # progress = honest nodes
    interrupted: int | None = None  # the signal that stopped the launcher
    failure: str | None = None
    failure_code = ExitCode.FAILED
    server_died: str | None = None
    bar = _Progress(rounds, topology.n, progress, out)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _on_signal(signum: int, _frame: Any) -> None:
        nonlocal interrupted
        interrupted = signum
        raise KeyboardInterrupt

    # SIGINT too, explicitly: a process started in the background by a shell without job control
    # inherits SIGINT ignored, and Python then leaves it ignored — `kill -INT` would not stop the run
    for sig in previous:
        signal.signal(sig, _on_signal)
    dead: set[int] = set()
    restarted = {c.node: 0 for c in children}
    try:
        while True:
            server_died = None if spawn else server_death()
            if server_died is not None:  # its nodes' exit codes died with it: what they did is in their files, read below
                break
            _poll_records(path, children)
            bar.update(shown)
            codes = [c.proc.poll() for c in children]
            for k, (c, code) in enumerate(zip(children, codes, strict=True)):
                if code not in (None, 0) and code not in NOT_RESTARTED and restarted[c.node] < restarts:
                    restarted[c.node] += 1
                    print(
                        f"gossip: node {c.node} died ({_exit_text(code)}); restarting it from its checkpoint "
                        f"({restarted[c.node]} of {restarts})",
                        file=out,
                        flush=True,
                    )
                    c.proc = start_node(path, c.node, ("--resume",), spawn=spawn)
                    c.offset = 0  # the node cuts its records back to its checkpoint
                    codes[k] = None
            bad = [(c, code) for c, code in zip(children, codes, strict=True) if code not in (None, 0)]
            diverged = next((c for c, code in bad if code == ExitCode.DIVERGED), None)
            if diverged is not None:
                failure, failure_code = _divergence_text(path, diverged.node), ExitCode.DIVERGED
                break
            if bad and not keep_going:
                child, code = bad[0]
                failure = f"node {child.node} {_ending_text(path, child, code, rounds)}"
                break
            for child, code in bad:
                if child.node not in dead:
                    dead.add(child.node)
                    print(
                        f"gossip: node {child.node} {_ending_text(path, child, code, rounds, tail=False)}; the others carry on",
                        file=out,
                        flush=True,
                    )
            if len(dead) == len(children):
                failure = "every node died" + _log_tail(path, children[0].node)
                break
            if all(code is not None for code in codes):
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        interrupted = interrupted or signal.SIGINT
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_all(children)
        stop_fork_server()
        _poll_records(path, children)
        bar.update(shown)
        bar.close()

    summary = summarise(path, topology, resolved, time.time() - started)
    summary["restarts"] = {str(i): k for i, k in restarted.items() if k}
    write_json(path / "summary.json", summary)
    print(format_table(summary), file=out)
    if server_died is not None and not all(n["status"] == "finished" for n in summary["per_node"]):
        failure = _server_death_text(server_died, summary, path)
    if failure:
        print(f"gossip: error: {failure}", file=out)
        return LaunchResult(path, failure_code, summary)
    if interrupted:
        print("gossip: interrupted; every node was stopped. Partial results are in the run directory.", file=out)
        return LaunchResult(path, ExitCode.stopped_by(interrupted), summary)
    return LaunchResult(path, ExitCode.FINISHED, summary)


_EXIT_MEANING: dict[int | None, str] = {
    ExitCode.FAILED: "a runtime failure",
    ExitCode.USAGE: "a usage error",
    ExitCode.DIVERGED: "diverged",
}


def _exit_text(code: int | None) -> str:
    """A node's exit status in words, after ``died (...)``."""
    if code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
        return f"stopped by {signal.Signals(code - 128).name}"
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    meaning = _EXIT_MEANING.get(code)
    return f"exit code {code}" + (f": {meaning}" if meaning else "")


def _ending_text(path: Path, child: _Child, code: int, rounds: int, *, tail: bool = True) -> str:
    """How a node that ended early ended, after ``node i``: a stop by signal with its round, else its exit and the tail of its log."""
    if code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED, -signal.SIGINT, -signal.SIGTERM):
        name = signal.Signals(code - 128 if code > 0 else -code).name
        final = _node_final(path, child.node)
        reached = final["rounds_completed"] + final.get("rounds_skipped", 0) if "rounds_completed" in final else child.round
        return f"was stopped by {name} at round {reached} of {rounds}, not by the launcher"
    if code < 0:
        ended = f"died ({_exit_text(code)})"
    else:
        meaning = _EXIT_MEANING.get(code)
        ended = f"exited with code {code}" + (f" ({meaning})" if meaning else "")
    return ended + (_log_tail(path, child.node) if tail else "")


def _divergence_text(path: Path, node: int) -> str:
    """``node i diverged at round t (loss x)``, from the node's summary."""
    diverged = _node_final(path, node).get("diverged") or {}
    if "round" not in diverged:
        return f"node {node} diverged: its model is no longer finite; try a lower learning rate (--lr)"
    loss = diverged.get("loss")
    said = f"loss {loss:.4g}" if isinstance(loss, (int, float)) else "loss not finite"
    return f"node {node} diverged at round {diverged['round']} ({said}): its model is no longer finite; try a lower learning rate (--lr)"


def _server_death_text(how: str, summary: dict[str, Any], path: Path) -> str:
    """What became of every node after the fork server died: its exit statuses died with it, the nodes' summaries did not."""
    fates = []
    for n in summary["per_node"]:
        if n["status"] == "stopped":
            fates.append(f"node {n['node']} stopped at round {n['rounds_completed'] + (n['rounds_skipped'] or 0)}")
        elif n["status"] == "diverged":
            fates.append(f"node {n['node']} diverged at round {n['diverged']['round']}")
        elif n["status"] == "dead":
            fates.append(f"node {n['node']} was lost (it left no summary)")
        else:
            fates.append(f"node {n['node']} {n['status']}")
    died = f"was {how}" if how.startswith("killed") else f"ended ({how})"
    return (
        f"the fork server {died} mid-run, and its nodes got SIGTERM with it: {', '.join(fates)}; "
        f"continue from their checkpoints with: gossip launch --resume {path}"
    )


def _node_final(path: Path, node: int) -> dict[str, Any]:
    """A node's own summary (``nodes/node-<i>.json``), or {} if it wrote none."""
    try:
        return dict(json.loads(NodeFiles(path, node).summary.read_text()))
    except (OSError, ValueError):
        return {}


def _poll_records(path: Path, children: list[_Child]) -> None:
    for c in children:
        records, c.offset = iter_new_records(NodeFiles(path, c.node).records, c.offset)
        for r in records:
            c.round = r["round"] + 1
            if r.get("accuracy") is not None:
                c.accuracy = r["accuracy"]
            c.distance = r.get("consensus_distance")


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


def _log_tail(path: Path, node: int, lines: int = 8) -> str:
    try:
        text = NodeFiles(path, node).log.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    tail = "\n".join("    " + line for line in text[-lines:])
    return f"; last lines of {NodeFiles(path, node).log}:\n{tail}" if tail else ""


class _Progress:
    """One live status line on a terminal; a plain line every 10 % of the rounds elsewhere (CI logs).

    Hand-rolled rather than tqdm: the line carries the numbers a user watches (round, mean accuracy,
    consensus distance) and nothing needs to be configured to get it right in a pty or a log file.
    """

    def __init__(self, rounds: int, nodes: int, enabled: bool | None, out: Any) -> None:
        self.rounds = rounds
        self.nodes = nodes
        self.out = out
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.enabled = True if enabled is None else enabled
        self._last_line = -1
        self._start = time.monotonic()
        self._width = 0

    def update(self, children: list[_Child]) -> None:
        if not self.enabled:
            return
        live = [c for c in children if c.proc.poll() in (None, 0)] or children
        done = min(c.round for c in live)
        accs = [c.accuracy for c in children if c.accuracy is not None]
        dists = [c.distance for c in children if c.distance is not None]
        acc = f"{sum(accs) / len(accs):.3f}" if accs else "-"
        dist = f"{sum(dists) / len(dists):.3g}" if dists else "-"
        if self.tty:
            filled = int(30 * done / max(self.rounds, 1))
            elapsed = time.monotonic() - self._start
            line = (
                f"{self.nodes} nodes |{'#' * filled}{'.' * (30 - filled)}| round {done}/{self.rounds}"
                f"  accuracy {acc}  consensus {dist}  {elapsed:.0f} s"
            )
            self._width = max(self._width, len(line))
            print("\r" + line.ljust(self._width), end="", file=self.out, flush=True)
            return
        step = max(1, self.rounds // 10)
        if done // step > self._last_line and done > 0:
            self._last_line = done // step
            print(f"gossip: round {done}/{self.rounds}  mean accuracy {acc}  consensus distance {dist}", file=self.out, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=self.out, flush=True)


def summarise(path: Path, topology: Topology, cfg: RunConfig, wall_s: float) -> dict[str, Any]:
    """The run summary: per-node final figures and their aggregate, from the nodes' own files."""
    from gossip.results.rundir import read_jsonl

    nodes = []
    for i in range(topology.n):
        files = NodeFiles(path, i)
        records = read_jsonl(files.records)
        final = json.loads(files.summary.read_text()) if files.summary.exists() else {}
        last_eval = next((r for r in reversed(records) if r.get("accuracy") is not None), {})
        merge = final.get("merge")
        nodes.append(
            {
                "node": i,
                "status": final.get("status", "dead"),
                "rounds_completed": len(records),  # the node's own count too: rounds it ran, one record each
                "diverged": final.get("diverged"),  # {"round", "loss"} of a node whose model stopped being finite
                "accuracy": final.get("accuracy") if merge else last_eval.get("accuracy"),
                "accuracy_before_merge": final.get("accuracy_before_merge") if merge else None,
                "merge_members": merge["members"] if merge else None,
                "merge_views_agree": merge["views_agree"] if merge else None,
                "test_loss": last_eval.get("test_loss"),
                "consensus_distance": records[-1]["consensus_distance"] if records else None,
                "bytes_sent": sum(r["bytes_sent"] for r in records),
                "bytes_received": sum(r["bytes_received"] for r in records),
                "rejected": final.get("rejected", {}),
                "missed": sum(len(r.get("missing", ())) for r in records),  # neighbour models that missed their round
                "rounds_skipped": rounds_skipped(records),  # not run: skipped to the neighbours' round (resumed, or late)
                "link_dropped": final.get("link_dropped", 0),  # messages this node's link emulation lost
                "peers_were_down": final.get("peers_were_down", []),
                "model_hash": final.get("model_hash"),
            }
        )
    byzantine = set(cfg.byzantine.nodes)
    for n in nodes:
        n["byzantine"] = n["node"] in byzantine
    # Byzantine nodes are not part of the result: accuracy figures are over honest nodes only.
    accs = [n["accuracy"] for n in nodes if n["accuracy"] is not None and not n["byzantine"]]
    every = [n["accuracy"] for n in nodes if n["accuracy"] is not None]
    mean = sum(accs) / len(accs) if accs else None
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / len(accs)) if accs and mean is not None else None
    merge = _merge_summary(nodes) if cfg.merge.enabled else {}
    return {
        "run_dir": str(path),
        "nodes": topology.n,
        "topology": topology.name,
        "rounds": cfg.training.rounds,
        "dataset": cfg.data.dataset,
        "model": cfg.model.name,
        "aggregation": cfg.aggregation.rule,
        "wall_time_s": wall_s,
        "accuracy_mean": mean,
        "accuracy_std": std,
        "accuracy_min": min(accs) if accs else None,
        "accuracy_max": max(accs) if accs else None,
        "accuracy_mean_all_nodes": sum(every) / len(every) if every else None,
        "consensus_distance_honest": honest_spread(path, [i for i in range(topology.n) if i not in byzantine]),
        "byzantine": {"nodes": sorted(byzantine), "attack": cfg.byzantine.attack} if byzantine else None,
        "dead_nodes": [n["node"] for n in nodes if n["status"] == "dead"],
        "missed_messages": sum(n["missed"] for n in nodes),
        "rounds_skipped": sum(n["rounds_skipped"] for n in nodes),
        "link_dropped": sum(n["link_dropped"] for n in nodes),
        "mode": cfg.training.mode,
        "schedule": cfg.schedule.mode,
        **merge,
        "per_node": nodes,
    }


def rounds_skipped(records: Sequence[dict[str, Any]]) -> int:
    """Rounds a node's records jump over: a resume's skip to the run's round, and a late node's catch-up."""
    total = 0
    for r in records:
        for key, origin in (("resumed", "checkpoint_round"), ("skipped", "from_round")):
            jump = r.get(key)
            if jump:
                total += max(0, jump["joined_round"] - jump[origin])
    return total


def _merge_summary(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The merge's outcome across nodes: one hash if every merged node holds the same model."""
    merged = [n for n in nodes if n["merge_members"] is not None]
    hashes = {n["model_hash"] for n in merged}
    before = [n["accuracy_before_merge"] for n in merged if n["accuracy_before_merge"] is not None]
    agreed = bool(merged) and len(hashes) == 1 and len({tuple(n["merge_members"]) for n in merged}) == 1
    return {
        "merge_agreed": agreed,
        "merged_model_hash": next(iter(hashes)) if agreed else None,
        "merge_members": merged[0]["merge_members"] if agreed else None,
        "merged_nodes": [n["node"] for n in merged],
        "merged_accuracy": merged[0]["accuracy"] if agreed else None,
        "accuracy_before_merge_mean": sum(before) / len(before) if before else None,
    }


def honest_spread(path: Path, honest: Sequence[int]) -> float | None:
    """RMS distance of the honest nodes' final models to their average: how far from consensus they ended.

    Read from the saved final vectors (``nodes/node-<i>.npy``); ``None`` if one is missing. Unlike
    the per-round ``consensus_distance`` (to the neighbourhood average, Byzantine payloads
    included), this looks at honest models only.
    """
    import numpy as np

    vectors = []
    for i in honest:
        model = NodeFiles(path, i).model
        if not model.exists():
            return None
        vectors.append(np.load(model, allow_pickle=False).astype(np.float64))
    if not vectors:
        return None
    stack = np.stack(vectors)
    return float(np.sqrt(((stack - stack.mean(axis=0)) ** 2).sum(axis=1).mean()))


def format_table(summary: dict[str, Any]) -> str:
    """The summary as a fixed-width table for the terminal."""
    lines = [f"{'node':>4} {'rounds':>6} {'accuracy':>8} {'test loss':>9} {'consensus':>10} {'MB sent':>8} {'status':>8}"]
    for n in summary["per_node"]:
        acc = f"{n['accuracy']:.4f}" if n["accuracy"] is not None else "-"
        loss = f"{n['test_loss']:.4f}" if n["test_loss"] is not None else "-"
        cd = f"{n['consensus_distance']:.3g}" if n["consensus_distance"] is not None else "-"
        lines.append(
            f"{n['node']:>4} {n['rounds_completed']:>6} {acc:>8} {loss:>9} {cd:>10} {n['bytes_sent'] / 1e6:>8.2f} {n['status']:>8}"
        )
    if summary.get("merged_nodes"):
        before = summary["accuracy_before_merge_mean"]
        if summary["merge_agreed"]:
            lines.append(
                f"global merge: {len(summary['merge_members'])} models averaged {summary['merge_members']}, identical on every merged node "
                f"(model {summary['merged_model_hash']}); mean local accuracy before {_num(before)}, merged model {_num(summary['merged_accuracy'])}"
            )
        else:
            lines.append("global merge: the nodes did NOT end with the same model (see merge_members per node in summary.json)")
    if summary["accuracy_mean"] is not None:
        lines.append(
            f"mean accuracy {summary['accuracy_mean']:.4f} ± {summary['accuracy_std']:.4f} "
            f"(min {summary['accuracy_min']:.4f}, max {summary['accuracy_max']:.4f}) in {summary['wall_time_s']:.1f} s"
        )
    if summary.get("byzantine"):
        byz = summary["byzantine"]
        lines.append(f"byzantine nodes {', '.join(map(str, byz['nodes']))} ({byz['attack']}) are excluded from the mean")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"
