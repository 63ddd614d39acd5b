"""Several "hosts" on one machine: a network namespace per host, veth pairs into a bridge, real IP addresses.

::

    namespace <tag>-h0  eth0 10.77.0.2/24 ─┐
    namespace <tag>-h1  eth0 10.77.0.3/24 ─┤  veth pairs   namespace <tag>-sw: bridge br0, ports p0, p1, …
    …                                      ─┘

Why it looks like this:
- The bridge lives in a namespace of its own (the "switch"), not in the host's: the host's firewall
  (Docker sets ``FORWARD DROP``) never sees the traffic, and nothing of the host's network is touched.
  Each fabric is an island, so parallel fabrics can all use 10.77.0.0/24.
- Every host namespace gets ``/etc/netns/<ns>/hosts`` (which ``ip netns exec`` mounts over /etc/hosts),
  mapping ``node-<i>`` to host *i*: the same DNS names as the compose network, so one rendered config
  runs in both.
- Names carry the creating process id (``gt<pid>``) and :func:`remove_stale` deletes fabrics whose creator
  is dead: a test killed with SIGKILL leaves nothing behind for long.

Hooks for fault tests (loss, bandwidth, partitions): :meth:`Fabric.run` runs a command inside host *i*
(``tc qdisc … dev eth0``, ``iptables …``), :meth:`Fabric.switch` inside the switch (``ip link set p3 down``
cuts host 3 off), :attr:`Fabric.host_iface` / :meth:`Fabric.switch_port` name the two ends of a link.
Needs root and iproute2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["Fabric", "remove_stale"]

SUBNET = "10.77.0"  # /24; host i is .(i + 2), so up to 250 hosts
PREFIX = "gt"
NETNS_ETC = Path("/etc/netns")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Delete the namespaces (and their /etc/netns files) of fabrics whose creating process is gone."""
    removed = []
    for ns in _namespaces():
        head = ns.split("-", 1)[0]
        if not (head.startswith(PREFIX) and head[len(PREFIX) :].isdigit()):
            continue
        if _alive(int(head[len(PREFIX) :])):
            continue
        _ip("netns", "del", ns, check=False)
        shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
        removed.append(ns)
    return removed


class Fabric:
    """``hosts`` network namespaces on one bridge. Use as a context manager: everything is removed on exit."""

    host_iface = "eth0"

    def __init__(self, hosts: int, *, tag: str | None = None) -> None:
        if not 1 <= hosts <= 250:
            raise ValueError(f"hosts must be in 1..250, got {hosts}")
        self.hosts = hosts
        self.tag = tag or f"{PREFIX}{os.getpid()}"
        self.switch_ns = f"{self.tag}-sw"
        self._created: list[str] = []

    # ---------------------------------------------------------------------------------------- names

    def ns(self, i: int) -> str:
        """The namespace of host ``i``."""
        return f"{self.tag}-h{i}"

    def address(self, i: int) -> str:
        """Host ``i``'s IPv4 address."""
        return f"{SUBNET}.{i + 2}"

    def hostname(self, i: int) -> str:
        """The name other hosts resolve to host ``i`` (as on the compose network)."""
        return f"node-{i}"

    def switch_port(self, i: int) -> str:
        """The bridge port of host ``i``'s link, inside the switch namespace."""
        return f"p{i}"

    # ---------------------------------------------------------------------------------------- life

    def __enter__(self) -> Fabric:
        try:
            self.create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def create(self) -> None:
        """Make the switch, the hosts and their links; raises ``CalledProcessError`` with ip's message."""
        if self.switch_ns in _namespaces():
            raise RuntimeError(f"namespace {self.switch_ns} already exists; another fabric with tag {self.tag!r} is alive")
        self._add_ns(self.switch_ns)
        _ip("-n", self.switch_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch_ns, "link", "set", "br0", "up")
        hosts_file = "127.0.0.1 localhost\n" + "".join(f"{self.address(i)} {self.hostname(i)}\n" for i in range(self.hosts))
        for i in range(self.hosts):
            ns, port = self.ns(i), self.switch_port(i)
            self._add_ns(ns)
            (NETNS_ETC / ns).mkdir(parents=True, exist_ok=True)
            (NETNS_ETC / ns / "hosts").write_text(hosts_file)
            _ip("link", "add", self.host_iface, "netns", ns, "type", "veth", "peer", "name", port, "netns", self.switch_ns)
            _ip("-n", self.switch_ns, "link", "set", port, "master", "br0")
            _ip("-n", self.switch_ns, "link", "set", port, "up")
            _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", self.host_iface)
            _ip("-n", ns, "link", "set", self.host_iface, "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def _add_ns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._created.append(ns)

    def close(self) -> None:
        """Delete every namespace this fabric made (their veths go with them) and their /etc/netns files."""
        for ns in reversed(self._created):
            _ip("netns", "del", ns, check=False)
            shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
        self._created.clear()

    def exists(self) -> list[str]:
        """This fabric's namespaces that still exist (empty after :meth:`close`)."""
        return [ns for ns in _namespaces() if ns.startswith(f"{self.tag}-")]

    # ---------------------------------------------------------------------------------------- commands

    def command(self, i: int, args: Sequence[str]) -> list[str]:
        """``args`` wrapped to run inside host ``i`` (``ip netns exec`` execs it: the pid is the command's)."""
        return ["ip", "netns", "exec", self.ns(i), *args]

    def run(self, i: int, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside host ``i`` to completion (e.g. ``tc``, ``iptables``, ``ping``)."""
        return subprocess.run(self.command(i, args), capture_output=True, text=True, check=check, timeout=timeout)

    def switch(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside the switch namespace (e.g. ``ip link set p3 down``)."""
        return subprocess.run(["ip", "netns", "exec", self.switch_ns, *args], capture_output=True, text=True, check=check, timeout=60)

    def popen(self, i: int, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a long-running command inside host ``i``; the caller owns the process."""
        return subprocess.Popen(self.command(i, args), **kwargs)
