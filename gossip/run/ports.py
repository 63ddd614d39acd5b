"""Addresses for a run's nodes on this machine: free TCP ports that stay free until the nodes bind them, or ipc names."""

from __future__ import annotations

import os
import random
import secrets
import socket
import time
from collections.abc import Collection
from pathlib import Path

from gossip.config import RunConfig
from gossip.errors import ConfigError, TransportError, UsageError

__all__ = [
    "FREE_PORTS_ENV",
    "check_base_port",
    "ephemeral_range",
    "free_port_range",
    "host_of",
    "ipc_addresses",
    "pick_ports",
    "port_free",
    "wait_ports_free",
]

# LOW-HIGH: where free ports are picked (a firewall's open range; concurrent test workers kept apart)
FREE_PORTS_ENV = "GOSSIP_FREE_PORTS"


def check_base_port(base_port: int | None, n: int, metrics: bool) -> None:
    """``--base-port B``: the nodes get ports B..B+n-1 and their metrics the n after those; every one must be a port."""
    if not base_port:
        return  # free ports, picked by pick_ports
    last = base_port + (2 * n if metrics else n) - 1
    if base_port < 1 or last > 65535:
        raise ConfigError(
            f"--base-port {base_port}: {n} nodes {'and their metrics ' if metrics else ''}need ports {base_port}..{last}, past 65535"
        )


def ipc_addresses(count: int) -> tuple[str, ...]:
    """Unix-domain socket addresses for ``count`` nodes on this machine, unique to this run.

    Linux's abstract namespace (``ipc://@name``): no socket file to clean up after a crash, no
    108-byte path limit, and a restarted node binds the same name again. ZeroMQ over ipc moves a
    model for less CPU than loopback TCP (bench/transport.py compares them), so a one-machine run
    gossips cheaper; TCP stays the default because it is what a real network does.
    """
    token = secrets.token_hex(4)
    return tuple(f"ipc://@gossip-{token}-{i}" for i in range(count))


def host_of(template: str) -> str:
    """The host of an address (template): ``tcp://10.0.0.2:{port}`` → ``10.0.0.2``; loopback when it has none or a placeholder."""
    rest = template.split("://", 1)[-1]
    host = rest.rsplit(":", 1)[0]
    return host if host and "{" not in host else "127.0.0.1"


def pick_ports(host: str, count: int, base: int | None, what: str, avoid: Collection[int] = ()) -> list[int]:
    """``count`` ports: ``base..base+count-1`` checked free, or free ones picked from :func:`free_port_range`
    (by default below the kernel's ephemeral range).

    Why not ``bind(0)``: the kernel hands out ports from its ephemeral range to every outgoing
    connection and every ``bind(0)`` on the machine, so a port it gave us and we released can be
    taken again before our node binds it. Below that range nobody gets a port without asking for
    it by number, so a port that is free now stays free until the node binds it. ``avoid``: ports
    already picked for this run but not bound yet (they still test free).
    """
    if base:
        for i in range(count):
            if not port_free(host, base + i):
                raise TransportError(
                    f"{what} port {base + i} (node {i}) is already in use on {host}; choose another --base-port, or 0 for free ports"
                )
        return [base + i for i in range(count)]
    low, high = free_port_range()
    candidates = list(range(low, high + 1))
    random.SystemRandom().shuffle(candidates)
    picked: list[int] = []
    for port in candidates:
        if port not in avoid and port_free(host, port):
            picked.append(port)
            if len(picked) == count:
                return picked
    raise TransportError(f"no {count} free {what} ports in {low}..{high} on {host}; pass --base-port")


def free_port_range() -> tuple[int, int]:
    """Where :func:`pick_ports` looks: ``$GOSSIP_FREE_PORTS`` (``LOW-HIGH``), else the 12,000 ports below the
    kernel's ephemeral range. A range of one's own keeps concurrent launchers from picking the same port
    between picking it and binding it."""
    raw = os.environ.get(FREE_PORTS_ENV, "").strip()
    if not raw:
        low, _high = ephemeral_range()
        return max(1024, low - 12_000), low - 1
    parts = raw.split("-")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise UsageError(f"{FREE_PORTS_ENV}={raw!r}: expected LOW-HIGH, two port numbers such as 20000-29999")
    low, high = (int(p) for p in parts)
    if not 1024 <= low <= high <= 65535:
        raise UsageError(f"{FREE_PORTS_ENV}={raw!r}: needs 1024 <= LOW <= HIGH <= 65535")
    return low, high


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for ports it hands out unasked (Linux's default when it cannot be read)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def port_free(host: str, port: int) -> bool:
    """Whether a TCP socket could bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as libzmq does: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_ports_free(cfg: RunConfig, n: int, timeout_s: float) -> None:
    """Wait until the run's node and metrics ports are free: the previous nodes may still be writing their last files."""
    wanted = [(host_of(a), int(a.rsplit(":", 1)[1])) for a in cfg.transport.addresses if a.startswith("tcp://")]  # ipc names have no port
    if cfg.metrics.enabled:
        wanted += [(cfg.metrics.host, cfg.metrics.port_of(i)) for i in range(n)]
    deadline = time.monotonic() + timeout_s
    while True:
        busy = [f"{h}:{p}" for h, p in wanted if p and not port_free(h, p)]
        if not busy:
            return
        if time.monotonic() > deadline:
            raise TransportError(
                f"port(s) {', '.join(busy)} of this run are still in use after {timeout_s:g} s: are its nodes still running?"
            )
        time.sleep(0.2)
