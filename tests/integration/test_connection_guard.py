"""The transport's connection guard on real sockets: caps, the handshake deadline, unfinished messages."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import zmq

from gossip.ids import NodeId
from gossip.net.connections import ConnectionLimits, size_limits
from gossip.net.zeromq import ZmqTransport
from tests.attacks import zmtp_greeting
from tests.conftest import REPO


@contextlib.asynccontextmanager
async def guarded(limits: ConnectionLimits, **kwargs: object) -> AsyncIterator[tuple[ZmqTransport, int, Counter[str]]]:
    """A started transport of node 0 on a loopback port, with ``limits``; yields it, its port and the refusals."""
    refused: Counter[str] = Counter()
    t = ZmqTransport(NodeId(0), "tcp://127.0.0.1:*", {}, limits=limits, **kwargs)  # type: ignore[arg-type]
    t.on_refused = lambda reason: refused.update([reason])
    await t.start()
    try:
        yield t, int(t.bound_address.rsplit(":", 1)[1]), refused
    finally:
        await t.close()


def _idle_connections(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that send half a ZMTP greeting and then nothing."""
    conns = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.settimeout(None)  # blocking mode: a MSG_DONTWAIT read must not wait for the timeout first
        s.sendall(zmtp_greeting()[:10])
        conns.append(s)
    return conns


async def _closed(conns: list[socket.socket], wait_s: float) -> int:
    """How many of ``conns`` the other side closed within ``wait_s``."""
    closed: set[int] = set()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for i, s in enumerate(conns):
            if i in closed:
                continue
            try:
                if s.recv(4096, socket.MSG_DONTWAIT) == b"":
                    closed.add(i)
            except BlockingIOError:
                pass
            except OSError:
                closed.add(i)
        await asyncio.sleep(0.05)
    for s in conns:
        s.close()
    return len(closed)


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        (ConnectionLimits(max_connections=50, max_per_address=3, handshake_timeout_s=30, max_unfinished_bytes=0), "too_many_from_address"),
        (ConnectionLimits(max_connections=3, max_per_address=50, handshake_timeout_s=30, max_unfinished_bytes=0), "too_many"),
    ],
)
def test_connections_over_a_cap_are_shut_at_once_and_counted(limits: ConnectionLimits, reason: str) -> None:
    """Ten idle connections against a cap of three: seven are shut within a second, each counted under its
    reason; the three admitted stay open (their handshake deadline is 30 s away)."""

    async def scenario() -> tuple[int, Counter[str]]:
        async with guarded(limits) as (_t, port, refused):
            conns = _idle_connections(port, 10)
            return await _closed(conns, 1.5), refused

    closed, refused = asyncio.run(scenario())
    assert closed == 7
    assert refused == {reason: 7}


def test_a_connection_without_a_handshake_is_closed_at_the_deadline() -> None:
    """A connection that never finishes its ZMTP greeting is closed by libzmq once ``handshake_timeout_s``
    passed, and counted as ``handshake_timeout``."""
    limits = ConnectionLimits(max_connections=50, max_per_address=50, handshake_timeout_s=0.5, max_unfinished_bytes=0)

    async def scenario() -> tuple[int, Counter[str]]:
        async with guarded(limits) as (_t, port, refused):
            conns = _idle_connections(port, 4)
            closed = await _closed(conns, 2.0)
            await asyncio.sleep(0.1)  # the guard counts on libzmq's event, which may trail the close
            return closed, refused

    closed, refused = asyncio.run(scenario())
    assert closed == 4
    assert refused == {"handshake_timeout": 4}


def test_an_endless_message_is_cut_off() -> None:
    """A raw ZMTP client streaming 60 kB frames with MORE set and never a last one is shut down once it
    handed libzmq more than ``max_unfinished_bytes``; legal messages from others still arrive."""
    limits = size_limits(1, 70_000, 4, handshake_timeout_s=5)

    async def scenario() -> tuple[Counter[str], dict[str, object], bytes]:
        async with guarded(limits, max_message_bytes=70_000) as (t, port, refused):
            attacker = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.attacks",
                "endless",
                "--port",
                str(port),
                "--seconds",
                "3",
                cwd=REPO,
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await attacker.communicate()
            ctx = zmq.Context.shadow(t._ctx.underlying)  # type: ignore[union-attr]
            good = ctx.socket(zmq.PUSH)
            good.connect(t.bound_address)
            good.send_multipart([b"1", b"header", b"x" * 1000])
            got = await asyncio.wait_for(t.recv(), 10)
            good.close(linger=0)
            import json

            return refused, json.loads(out), bytes(got.frames[1].buffer)

    refused, report, payload = asyncio.run(scenario())
    assert refused == {"unfinished_message": 1}
    assert int(report["sent_bytes"]) < 320e6  # type: ignore[call-overload]  # the node stopped taking it
    assert payload == b"x" * 1000


def test_an_honest_peer_sending_large_messages_is_never_cut(zmq_context) -> None:
    """Large legal messages, the receiver pausing now and then (the queue fills, libzmq stops reading):
    bytes a connection hands libzmq between two delivered messages stay under the bound, so nothing is
    refused and every message arrives."""
    size = 2_000_000
    limits = size_limits(1, size + 8192, 4, handshake_timeout_s=5)

    async def scenario() -> tuple[Counter[str], int]:
        async with guarded(limits, max_message_bytes=size + 8192, context=zmq_context) as (t, _port, refused):
            sender = ZmqTransport(NodeId(1), "tcp://127.0.0.1:*", {NodeId(0): t.bound_address}, context=zmq_context)
            await sender.start()
            payload = b"x" * size
            got = 0
            try:
                for i in range(40):
                    while not sender.send(NodeId(0), [b"header", payload]):
                        await asyncio.sleep(0.005)
                    if i % 10 == 9:
                        await asyncio.sleep(0.3)  # not reading: the queue fills and libzmq stops taking bytes
                        while got <= i:
                            await asyncio.wait_for(t.recv(), 10)
                            got += 1
                while got < 40:
                    await asyncio.wait_for(t.recv(), 10)
                    got += 1
            finally:
                await sender.close()
            return refused, got

    refused, got = asyncio.run(scenario())
    assert got == 40
    assert not refused


def test_the_guard_thread_ends_with_the_transport(zmq_context) -> None:
    """Closing the transport stops its guard thread (and a port already in use leaves no thread behind)."""

    def guards() -> int:
        return sum(1 for th in threading.enumerate() if th.name == "connection-guard")

    limits = size_limits(1, 10_000, 4, handshake_timeout_s=5)

    async def scenario() -> tuple[int, int, int]:
        t = ZmqTransport(NodeId(0), "tcp://127.0.0.1:*", {}, limits=limits, context=zmq_context)
        await t.start()
        during = guards()
        taken = ZmqTransport(NodeId(1), t.bound_address, {}, limits=limits, context=zmq_context)
        with pytest.raises(Exception, match="already in use"):
            await taken.start()
        after_refused_bind = guards()
        await t.close()
        return during, after_refused_bind, guards()

    assert asyncio.run(scenario()) == (1, 1, 0)


def test_size_limits_leave_the_reserve_free_under_a_low_descriptor_limit() -> None:
    """Under ``ulimit -n 256`` the total cap is what the limit leaves after the descriptors open now and
    the reserve; one address may hold every peer plus room for reconnects."""
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256));"
        "from gossip.net.connections import size_limits, open_descriptors, DESCRIPTOR_RESERVE as R;"
        "open_now = open_descriptors(); l = size_limits(100, 1000, 4, handshake_timeout_s=5);"
        "print(l.max_connections, 256 - open_now - 100 - R, l.max_per_address)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout.split()
    total, budget, per_address = map(int, out)
    assert total == budget
    assert per_address == total  # all 100 peers plus 8 would not fit: capped by the total
    assert size_limits(3, 1000, 4, handshake_timeout_s=5).max_per_address == 11
