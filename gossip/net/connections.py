"""Bound what a node's listening socket accepts: connections per address and in total, and unfinished messages.

libzmq accepts every TCP connection that reaches a bound socket and has no option to cap them; it
buffers a multipart message until its last frame arrives (the high-water mark counts whole messages
only, ``MAXMSGSIZE`` one frame), so a peer that never ends a message grows the node's memory without
bound. What this module adds, from outside libzmq:

- a socket monitor tells a guard thread of every accepted connection with its descriptor; the guard
  reads the peer address (``getpeername``) and refuses a connection over a cap by ``shutdown`` on it:
  libzmq reads end-of-file, closes the descriptor and frees the session;
- every ``SCAN_INTERVAL_S`` it reads, per TCP connection, how many bytes libzmq has taken from the
  kernel (``TCP_INFO.tcpi_bytes_received`` minus what is still queued, ``FIONREAD``); a connection
  that gave libzmq more than ``max_unfinished_bytes`` since it last delivered a message is holding an
  unfinished one (an honest peer's bytes since its last delivered message are at most the queued
  messages plus the one in flight) and is shut down the same way;
- libzmq's own ``HANDSHAKE_IVL`` closes a connection that has not finished its ZMTP handshake in time.

Why a thread: the node's event loop can be busy training for a while, and a flood of connections or
an endless message must be answered within milliseconds. The thread only reads monitor events, calls
``getsockopt``/``shutdown`` on descriptors libzmq owns (it never closes one: libzmq does), and reports
refusals through a callback (a Prometheus counter, which is thread-safe).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import math
import os
import resource
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq
from zmq.utils.monitor import parse_monitor_message

from gossip.errors import REFUSAL_REASONS

__all__ = [
    "DESCRIPTOR_RESERVE",
    "ConnectionGuard",
    "ConnectionLimits",
    "open_descriptors",
    "poll_timeout_ms",
    "raise_descriptor_limit",
    "size_limits",
]

log = logging.getLogger(__name__)

# Descriptors kept free for the node's own use whatever peers do: checkpoint and record files, the
# run directory, logs, the metrics endpoint's connections, ZeroMQ's internal sockets. A node opens a
# handful at a time; the rest absorbs the connections libzmq accepts before the guard refuses them.
# Why a margin under the cap, not a spare descriptor closed before each write: under a flood libzmq
# retries accept() as soon as it fails, so a descriptor freed for a write goes to the next accept.
DESCRIPTOR_RESERVE = 128
SCAN_INTERVAL_S = 0.02  # how often the guard reads each connection's byte counters
_EVENTS = (
    zmq.EVENT_ACCEPTED | zmq.EVENT_ACCEPT_FAILED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_MONITOR_STOPPED
)
_TCP_INFO_BYTES_RECEIVED = 128  # offset of tcpi_bytes_received (u64) in Linux's struct tcp_info (since 4.1)
_TCP_INFO_LENGTH = _TCP_INFO_BYTES_RECEIVED + 8


@dataclass(frozen=True)
class ConnectionLimits:
    """What a node's listening socket accepts from peers."""

    max_connections: int  # accepted connections open at once, from all addresses
    max_per_address: int  # ... from one peer address (IP); all peers on one host share one
    handshake_timeout_s: float  # ZMTP handshake deadline (CURVE included), then libzmq closes the connection
    max_unfinished_bytes: int  # bytes a connection may hand libzmq since its last complete message; 0: unchecked


def raise_descriptor_limit() -> int:
    """Raise the soft limit on open descriptors to the hard limit (a process may); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft and (hard == resource.RLIM_INFINITY or hard > soft):
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # a container may cap it below the hard limit it reports
            pass
    return soft


def open_descriptors() -> int:
    """How many descriptors this process has open now."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the one listdir itself holds
    except OSError:
        return 0


def size_limits(
    peers: int,
    max_message_bytes: int,
    queue_messages: int,
    *,
    handshake_timeout_s: float,
    max_connections: int = 0,
    max_per_address: int = 0,
) -> ConnectionLimits:
    """Limits for a node that ``peers`` nodes connect to (0 in ``max_*``: sized here).

    Every peer may share one address (a run on one host), so one address may hold all of them, plus
    room for reconnects overlapping the close of the old connection. The total leaves
    :data:`DESCRIPTOR_RESERVE` descriptors free below the soft limit, counted from what is open now.
    """
    per_address = max_per_address or peers + 8
    total = max_connections or max(per_address, 4 * peers + 32)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY:
        budget = soft - open_descriptors() - peers - DESCRIPTOR_RESERVE  # peers: our own outbound connections
        if total > budget:
            log.warning(
                "only %d descriptors are left for peers' connections under the limit of %d (ulimit -n): "
                "the node accepts at most that many at once",
                max(budget, 1),
                soft,
            )
            total = max(budget, 1)
    unfinished = (queue_messages + 2) * (max_message_bytes + 8192) + (1 << 20) if max_message_bytes > 0 else 0
    return ConnectionLimits(total, min(per_address, total), handshake_timeout_s, unfinished)


@dataclass
class _Connection:
    inode: int  # the socket's inode: a descriptor number is reused once libzmq closes it
    address: str
    accepted_at: float
    tcp: bool
    baseline: int = -1  # bytes libzmq had read when the connection last delivered a message
    seen: int = 0  # delivered messages counted at that time
    refused: bool = False


@dataclass
class _Counts:
    open: int = 0
    per_address: dict[str, int] = field(default_factory=dict)


class ConnectionGuard:
    """A thread that watches one bound ZeroMQ socket's connections and refuses what exceeds ``limits``.

    ``delivered(fd)`` is called by the receiving thread for every message it reads (the descriptor
    from ``zmq.SRCFD``); ``on_refused(reason)`` is called from the guard thread.
    """

    def __init__(self, sock: zmq.Socket[bytes], limits: ConnectionLimits, on_refused: Callable[[str], None] | None = None) -> None:
        self.limits = limits
        self.on_refused = on_refused
        self._socket = sock
        # Events must never wait for this thread: libzmq sends them from its I/O thread, which blocks on a
        # full monitor queue while holding the socket's monitor lock (and every socket's traffic stops).
        # Unbounded is fine: one small event per connection the I/O thread accepted or closed.
        address = f"inproc://gossip-connection-guard-{id(self):x}"
        sock.monitor(address, _EVENTS)
        self._monitor: zmq.Socket[bytes] = sock.context.socket(zmq.PAIR)
        self._monitor.setsockopt(zmq.RCVHWM, 0)
        self._monitor.connect(address)
        self._connections: dict[int, _Connection] = {}
        self._counts = _Counts()
        self._delivered: dict[int, int] = {}  # fd -> messages read from it (written by the receiving thread)
        self._thread = threading.Thread(target=self._run, name="connection-guard", daemon=True)
        self.refused: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)

    def start(self) -> None:
        self._thread.start()

    def delivered(self, fd: int) -> None:
        """A message from the connection on ``fd`` reached the node."""
        self._delivered[fd] = self._delivered.get(fd, 0) + 1

    def stop(self) -> None:
        """Stop watching; returns once the thread ended (before the socket and its context close)."""
        try:
            self._socket.monitor(None, 0)  # the monitor sends MONITOR_STOPPED: the thread ends on it
        except zmq.ZMQError:
            pass
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        else:  # never started (the bind failed): the socket is this thread's to close
            self._monitor.close(linger=0)

    # -- the thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        monitor = self._monitor
        last_failed = False  # the event before: a handshake failure (libzmq sends it just before DISCONNECTED)
        next_scan = time.monotonic() + SCAN_INTERVAL_S
        try:
            while True:
                if monitor.poll(poll_timeout_ms(next_scan, time.monotonic())):
                    event = parse_monitor_message(monitor.recv_multipart())
                    kind, value = int(event["event"]), int(event["value"])
                    if kind == zmq.EVENT_MONITOR_STOPPED:
                        return
                    if kind == zmq.EVENT_ACCEPTED:
                        self._accepted(value)
                    elif kind == zmq.EVENT_DISCONNECTED:
                        self._disconnected(value, timed_out=last_failed)
                    elif kind == zmq.EVENT_ACCEPT_FAILED and value in (errno.EMFILE, errno.ENFILE):
                        self._refuse_count("descriptors")  # the value is accept()'s errno
                    last_failed = kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                if time.monotonic() >= next_scan:
                    self._scan()
                    next_scan = time.monotonic() + SCAN_INTERVAL_S
        except zmq.ZMQError:  # the context is going away
            return
        finally:
            monitor.close(linger=0)

    def _accepted(self, fd: int) -> None:
        peer = _identify(fd)
        if peer is None:  # already gone
            return
        inode, address, tcp = peer
        conn = _Connection(inode, address, time.monotonic(), tcp)
        self._connections[fd] = conn
        counts = self._counts
        counts.open += 1
        counts.per_address[address] = counts.per_address.get(address, 0) + 1
        if counts.per_address[address] > self.limits.max_per_address:
            self._refuse(fd, conn, "too_many_from_address")
        elif counts.open > self.limits.max_connections:
            self._refuse(fd, conn, "too_many")

    def _disconnected(self, fd: int, *, timed_out: bool) -> None:
        conn = self._connections.pop(fd, None)
        self._delivered.pop(fd, None)
        if conn is None:
            return
        counts = self._counts
        counts.open -= 1
        left = counts.per_address[conn.address] - 1
        if left:
            counts.per_address[conn.address] = left
        else:
            del counts.per_address[conn.address]
        if timed_out and not conn.refused and time.monotonic() - conn.accepted_at >= 0.8 * self.limits.handshake_timeout_s:
            self._refuse_count("handshake_timeout")

    def _scan(self) -> None:
        limit = self.limits.max_unfinished_bytes
        if not limit:
            return
        for fd, conn in list(self._connections.items()):
            if not conn.tcp or conn.refused:
                continue
            taken = _bytes_taken(fd)
            if taken is None:
                continue
            delivered = self._delivered.get(fd, 0)
            if conn.baseline < 0 or delivered != conn.seen:
                conn.baseline, conn.seen = taken, delivered
            elif taken - conn.baseline > limit:
                self._refuse(fd, conn, "unfinished_message")

    def _refuse(self, fd: int, conn: _Connection, reason: str) -> None:
        conn.refused = True  # counted until libzmq reports it closed
        if _shutdown(fd, conn.inode):
            self._refuse_count(reason)

    def _refuse_count(self, reason: str) -> None:
        self.refused[reason] += 1
        if self.refused[reason] == 1:
            log.warning("refused a connection: %s (gossip_connections_refused_total counts the rest)", reason)
        if self.on_refused is not None:
            self.on_refused(reason)


def poll_timeout_ms(next_scan: float, now: float) -> int:
    """The guard's wait for a monitor event until the next scan, in whole milliseconds, rounded up.

    Why up: rounded down, the last fraction of a millisecond before every scan would be ``poll(0)``
    calls in a loop, a spin that cost the guard thread about 5 % of a core per node.
    """
    return max(0, math.ceil((next_scan - now) * 1000))


def _identify(fd: int) -> tuple[int, str, bool] | None:
    """(socket inode, peer address, is TCP) of a descriptor libzmq owns, without taking it over."""
    try:
        inode = os.fstat(fd).st_ino
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
        address = str(sock.getpeername()[0]) if tcp else "local"
    except OSError:
        return None
    finally:
        sock.detach()
    return inode, address, tcp


def _bytes_taken(fd: int) -> int | None:
    """Bytes libzmq has read from a TCP connection: received by the kernel, less what still waits there."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LENGTH)
        if len(info) < _TCP_INFO_LENGTH:
            return None
        waiting: int = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return None
    finally:
        sock.detach()
    return int(struct.unpack_from("Q", info, _TCP_INFO_BYTES_RECEIVED)[0]) - waiting


def _shutdown(fd: int, inode: int) -> bool:
    """Shut a connection down under libzmq (which then reads end-of-file and closes it); False if it is gone."""
    try:
        if os.fstat(fd).st_ino != inode:  # closed, and the number reused for something else
            return False
        sock = socket.socket(fileno=fd)
    except OSError:
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        return False
    finally:
        sock.detach()
    return True
