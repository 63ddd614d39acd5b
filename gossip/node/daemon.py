"""The node daemon, ``gossip node``: one node as a process — logging, descriptors, sockets, metrics, signals, exit code.

The same program whichever way a node starts: ``gossip node`` on a command line or as a container's
command (``gossip.cli`` parses, then calls :func:`run_node`), or a fork of the launcher's warm fork server
(``gossip.run.forkserver`` calls :func:`main` with the node's arguments). The node itself
(:class:`~gossip.node.node.Node`) opens no HTTP server and handles no signal: the daemon owns the
``/metrics`` endpoint because it outlives the training loop under ``--hold``.

Every user mistake ends as one line ``gossip: error: ...`` and exit 2; a socket or file error once the node
is at work is one line and exit 1 (a restart may cure it); the codes are :class:`~gossip.errors.ExitCode`'s.
Heavy imports (torch, ZeroMQ, the node) happen inside :func:`run_node`, so the CLI that imports this module
for its flags stays quick for every other command.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import re
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from gossip.config import MAX_NODES, RunConfig, load_config
from gossip.errors import ExitCode, GossipError, TransportError, UsageError, error_text, one_line

if TYPE_CHECKING:
    from gossip.net.shm import SharedMemoryTransport
    from gossip.net.zeromq import ZmqTransport
    from gossip.node.member import MemberNode
    from gossip.node.node import Node
    from gossip.ops.metrics import MetricsServer

__all__ = [
    "LOG_LEVELS",
    "add_node_arguments",
    "exit_without_teardown",
    "main",
    "node_exit_code",
    "node_id_of",
    "run_node",
]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(text: str) -> str:
    """An argparse type: a logging level name, any case."""
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def hold_seconds(text: str) -> float:
    """An argparse type: ``--hold``'s seconds, or ``forever``."""
    if text == "forever":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number of seconds nor 'forever'") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def add_node_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``gossip node`` after ``--config`` and ``--set``: one definition for the CLI and the fork server."""
    p.add_argument(
        "--id",
        default=None,
        help="node id 0..N-1, 'hostname' to take the trailing number of the host name (StatefulSet pods), or 'slurm' "
        "for the srun task's rank, with every node's address from the job's node list (gossip deploy slurm)",
    )
    p.add_argument("--run-dir", metavar="DIR", help="write this node's records and final model here")
    p.add_argument(
        "--log-level",
        type=log_level,
        default=os.environ.get("GOSSIP_LOG_LEVEL", "INFO"),
        help=f"logging level: {', '.join(LOG_LEVELS)} (default INFO, or $GOSSIP_LOG_LEVEL)",
    )
    p.add_argument(
        "--hold",
        metavar="SECONDS|forever",
        type=hold_seconds,
        default=0.0,
        help="after the last round, keep serving /metrics, /healthz and /readyz for SECONDS (so Prometheus scrapes "
        "the final values) or, with 'forever', until SIGTERM (StatefulSet pods, which are restarted when they exit)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="start from this node's checkpoint in --run-dir (nodes/node-<i>.ckpt.npz; none: from scratch) and rejoin "
        "the running network at its current round (after a crash; [training] checkpoint_every sets how often it is written)",
    )
    p.add_argument(
        "--join-round",
        type=int,
        default=None,
        metavar="ROUND",
        help="with --resume: the round the whole run resumes at (gossip launch --resume passes the run's latest checkpoint); "
        "a checkpoint older by more than [transport] max_rounds_ahead skips to it instead of asking the neighbours",
    )
    p.add_argument(
        "--join",
        metavar="[ID@]tcp://HOST:PORT",
        default=None,
        help="join the open network ([membership] enabled) through the member listening there: the node learns the other "
        "members from it, picks its neighbours and starts from the average of their models; without --join it is the first member. "
        "With [security] curve, ID@tcp://HOST:PORT: the contact's id names its public key",
    )
    p.add_argument(
        "--address",
        metavar="tcp://HOST:PORT",
        default=None,
        help="open network: the address this member listens on and gives the others (default: its address from [transport])",
    )


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), pointing at --help (as the CLI's)."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"gossip: error: {one_line(message)} (see {self.prog} --help)\n")


def main(argv: Sequence[str], *, check_fits: Callable[[RunConfig], None]) -> int:
    """``gossip node`` with ``argv`` (the arguments after ``node``), errors reported as the CLI reports them.

    For a process that is a node and nothing else (a fork of the fork server): it parses only the node's flags.
    ``check_fits`` as for :func:`run_node`.
    """
    p = _Parser(prog="gossip node")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[], dest="overrides")
    add_node_arguments(p)
    args = p.parse_args(list(argv))
    try:
        return run_node(args, check_fits=check_fits)
    except GossipError as exc:
        print(f"gossip: error: {error_text(exc)}", file=sys.stderr)
        return ExitCode.USAGE
    except OSError as exc:
        if exc.filename is None:
            raise
        print(f"gossip: error: {error_text(exc)}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        print("gossip: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


def node_id_of(raw: str | None) -> int:
    """The node id from ``--id`` (or ``$GOSSIP_NODE_ID``): a number, ``hostname`` for the host name's trailing number,
    or ``slurm`` for the rank of the ``srun`` task (``$SLURM_PROCID``)."""
    raw = raw if raw is not None else os.environ.get("GOSSIP_NODE_ID")
    if raw is None:
        raise UsageError("no node id: pass --id N (or set GOSSIP_NODE_ID)")
    if raw == "slurm":
        from gossip.node.slurm import slurm_proc_id

        return slurm_proc_id(os.environ)
    if raw == "hostname":
        host = socket.gethostname()
        match = re.search(r"([0-9]+)$", host)
        if not match:
            raise UsageError(f"--id hostname: host name {host!r} does not end in a number")
        return int(match.group(1))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6):
        raise UsageError(f"--id {raw[:60]!r}: expected a node number (0..{MAX_NODES - 1}), 'hostname' or 'slurm'")
    return int(raw)


def _overrides(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def run_node(args: argparse.Namespace, *, check_fits: Callable[[RunConfig], None]) -> int:
    """Run one node from its parsed flags until it ends; returns its exit code (:class:`~gossip.errors.ExitCode`).

    ``check_fits`` refuses, from the config's numbers, a model and dataset this machine could not hold, before
    either is loaded or built (:func:`gossip.run.capacity.check_node_config_fits`: the estimate belongs to the
    launcher's layer, which hands it down).

    Raises :class:`~gossip.errors.GossipError` for a user mistake found before any work started (the caller
    reports it as one line, exit 2); a socket or file error once the node is at work is reported here (exit 1).
    """
    import prometheus_client
    import torch

    from gossip.net.connections import raise_descriptor_limit
    from gossip.ops.metrics import MetricsServer

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    # matplotlib (imported by mnist1d) logs its font-cache rebuild at INFO on a cold cache: not the node's news
    logging.getLogger("matplotlib").setLevel(max(logging.WARNING, logging.getLogger().level))
    torch.set_num_threads(1)
    # The process is ours: drop prometheus_client's *_created series (a third more series per node, and
    # Prometheus reads counter resets from the samples themselves).
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
    node_id = node_id_of(args.id)
    # Peers' connections take descriptors: use what the hard limit allows (gossip.net.connections keeps a reserve)
    raise_descriptor_limit()
    cfg: RunConfig = load_config(args.config, overrides=_overrides(args.overrides))
    ntasks = None
    if (args.id if args.id is not None else os.environ.get("GOSSIP_NODE_ID")) == "slurm":
        from gossip.node.slurm import slurm_config, slurm_layout

        layout = slurm_layout(os.environ)
        cfg, ntasks = slurm_config(cfg, layout, node_id), layout.ntasks
    check_fits(cfg)
    node, transport = _build(args, cfg, node_id, ntasks)
    # The daemon, not the node, owns the HTTP endpoint: it outlives the training loop under --hold.
    server = (
        MetricsServer(node.metrics, cfg.metrics.host, cfg.metrics.port_of(node_id), lambda: node.ready) if cfg.metrics.enabled else None
    )
    try:
        return asyncio.run(_serve(node, transport, server, node_id, args.hold))
    except (TransportError, OSError) as exc:
        # raised once the node was at work (a port taken since the run was planned, neighbours that never answered,
        # EMFILE writing a checkpoint): the machine's or the network's trouble, not a mistake in what the user typed,
        # so not the usage code — a launcher's --restart or a container's restart policy may cure it
        said = error_text(exc)  # a TransportError names the node already
        print(f"gossip: error: {said if said.startswith(f'node {node_id}:') else f'node {node_id}: {said}'}", file=sys.stderr, flush=True)
        return ExitCode.FAILED


def _build(
    args: argparse.Namespace, cfg: RunConfig, node_id: int, ntasks: int | None = None
) -> tuple[Node | MemberNode, ZmqTransport | SharedMemoryTransport]:
    """The node of this process and its ZeroMQ transport; no socket is opened yet.

    ``ntasks``: the SLURM job step's task count (``--id slurm``), which must be the topology's node count: a
    task more would wait for neighbours that do not exist, a task less leave a node out of every round.
    """
    from gossip.node.byzantine import build_node
    from gossip.node.plan import plan_node
    from gossip.node.sockets import node_transport

    if ntasks is not None:  # before the data is loaded: every task of a mis-sized job says so at once
        from gossip.topology import topology_of

        n = topology_of(cfg).n
        if ntasks != n:
            raise UsageError(f"--id slurm: the job step has {ntasks} tasks but the topology has {n} nodes; run one task per node")
    if cfg.membership.enabled:
        return _build_member(args, cfg, node_id)
    if args.join is not None or args.address is not None:
        raise UsageError(
            f"{'--join' if args.join is not None else '--address'} needs an open network: set membership.enabled = true (and training.mode = 'async')"
        )
    plan = plan_node(cfg, node_id, args.run_dir, resume=args.resume, join_round=args.join_round)
    sockets, transport = node_transport(cfg, plan)
    node = build_node(plan, transport)  # honest, or the role [byzantine] gives it; refuses an indefensible run
    del plan  # the node kept its own shard: drop the rest of the training set
    sockets.on_unauthenticated = node.on_unauthenticated
    sockets.on_refused = node.metrics.connection_refused
    return node, transport


def _build_member(args: argparse.Namespace, cfg: RunConfig, node_id: int) -> tuple[MemberNode, ZmqTransport]:
    """A member of an open network: its address from ``--address`` or the config, its contact from ``--join``, both allowed."""
    from gossip.node.member import build_member

    if args.resume or args.join_round is not None:
        raise UsageError("--resume: a member of an open network does not resume; it joins again as a new member (a new --id)")
    policy = cfg.membership.policy()
    address = args.address or cfg.transport.address_of(node_id)
    contact_id, _, contact = (args.join or "").rpartition("@")
    if contact_id and not (contact_id.isascii() and contact_id.isdigit() and len(contact_id) <= 6):
        raise UsageError(f"--join {args.join[:100]!r}: expected tcp://HOST:PORT or ID@tcp://HOST:PORT")
    if args.join and cfg.security.curve and not contact_id:
        raise UsageError("--join: with [security] curve the contact's id is needed for its public key: --join ID@tcp://HOST:PORT")
    for what, where in (("its own address", address), ("--join", contact)):
        why = policy.refusal(where) if where else None
        if why is not None:
            raise UsageError(f"node {node_id}: {what} {where[:100]!r} is not one [membership] allow and ports admit: {why}")
    listen = args.address or cfg.transport.listen_address(node_id)  # a container binds 0.0.0.0 and is reached by name
    join = (int(contact_id) if contact_id else -1, contact) if contact else None
    return build_member(cfg, node_id, args.run_dir, address, join, listen=listen)


async def _serve(
    node: Node | MemberNode, transport: ZmqTransport | SharedMemoryTransport, server: MetricsServer | None, node_id: int, hold: float
) -> int:
    """Run the node under SIGTERM/SIGINT handlers, serve its metrics (and hold them), and return its exit code."""
    cfg = node.cfg
    stopped_by: list[int] = []  # the signal that asked the node to stop, if one did
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def _stop(signum: int) -> None:
        stopped_by.append(signum)
        node.request_stop()
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stop, sig)
    task = asyncio.create_task(node.run())
    await asyncio.sleep(0)
    while not task.done() and not transport.bound_address:
        await asyncio.sleep(0.01)
    if transport.bound_address:
        print(f"node {node_id} listening on {transport.bound_address}", file=sys.stderr, flush=True)
    if server is not None and not task.done():
        server.start()
        print(f"node {node_id} metrics on http://{cfg.metrics.host}:{server.port}/metrics", file=sys.stderr, flush=True)
    try:
        result = await task
        print(
            f"node {node_id} {result.status} after {result.rounds_completed} rounds, accuracy {result.accuracy:.4f}, model {result.model_hash}",
            file=sys.stderr,
            flush=True,
        )
        if server is not None and result.status == "finished" and hold > 0:
            print(
                f"node {node_id} holding /metrics {'until SIGTERM' if math.isinf(hold) else f'for {hold:g} s'}",
                file=sys.stderr,
                flush=True,
            )
            try:
                await asyncio.wait_for(stopping.wait(), None if math.isinf(hold) else hold)
            except TimeoutError:
                pass
    finally:
        if server is not None:
            server.stop()
    return node_exit_code(result.status, stopped_by)


def node_exit_code(status: str, stopped_by: Sequence[int]) -> int:
    """A node's exit code from how its run ended (:class:`~gossip.errors.ExitCode`): a node stopped by a signal
    before its last round says which, so that nobody takes an interrupted run for a finished one."""
    if status == "diverged":
        return ExitCode.DIVERGED
    if status == "stopped":
        return ExitCode.stopped_by(stopped_by[0]) if stopped_by else ExitCode.TERMINATED
    return ExitCode.FINISHED


def exit_without_teardown(code: int) -> NoReturn:
    """Flush what is buffered and leave at once, skipping the interpreter's finalisation.

    Why: a process that imported torch spends seconds of CPU taking its modules apart at exit — every node
    of every run would pay it and the launcher wait for it. Nothing is left to do by then: the node wrote
    its files (the summary last, by rename), closed its sockets and its ZeroMQ context, and stopped its
    HTTP server; only the standard streams and logging still hold buffered lines.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said
            pass
    os._exit(code)
