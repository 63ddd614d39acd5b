"""ZeroMQ transport on real sockets: delivery, identities, limits, and refusals."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator

import pytest
import zmq
import zmq.asyncio

from gossip.errors import TransportError
from gossip.ids import NodeId
from gossip.net.zeromq import COPY_BELOW_BYTES, ZmqTransport, parse_identity
from tests.conftest import free_port


def addr(port: int) -> str:
    return f"tcp://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def linked_pair(context: zmq.asyncio.Context) -> AsyncIterator[tuple[ZmqTransport, ZmqTransport]]:
    """Started transports of nodes 0 and 1 on loopback, each the other's peer; closed on the way out."""
    pa, pb = free_port(), free_port()
    a = ZmqTransport(NodeId(0), addr(pa), {NodeId(1): addr(pb)}, context=context)
    b = ZmqTransport(NodeId(1), addr(pb), {NodeId(0): addr(pa)}, context=context)
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def _eventually_send(t: ZmqTransport, peer: int, frames: list, tries: int = 200) -> None:
    """IMMEDIATE=1 drops sends until the TCP connection is up; retry briefly."""
    for _ in range(tries):
        if t.send(NodeId(peer), frames):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("connection never came up")


def test_message_arrives_with_the_senders_identity(zmq_context) -> None:
    """The receiver learns the sender's node id from the transport, not from the message."""

    async def scenario():
        async with linked_pair(zmq_context) as (a, b):
            await _eventually_send(a, 1, [b"header", b"x" * 1000])
            return await asyncio.wait_for(b.recv(), 10)

    got = asyncio.run(scenario())
    assert got.sender == 0
    assert [bytes(f.buffer) for f in got.frames] == [b"header", b"x" * 1000]
    assert got.nbytes == 1006


@pytest.mark.parametrize("nbytes", [4 * 10_000, COPY_BELOW_BYTES - 1])
def test_a_frame_below_the_copy_threshold_is_copied_inside_send(zmq_context, nbytes: int) -> None:
    """The node sends its live vector when it is small, so send must not return holding that memory.

    Had the frame left zero-copy, pyzmq would almost always still hold a reference to the buffer object
    when send returns (it lets go from another thread, after libzmq sent the message); a copy holds
    none. Then the bytes are changed, and the peer must get the old ones.
    """
    payload = bytearray(range(256)) * (nbytes // 256) + bytearray(nbytes % 256)
    expected = bytes(payload)

    async def scenario():
        async with linked_pair(zmq_context) as (a, b):
            view = memoryview(payload)
            references = sys.getrefcount(view)
            await _eventually_send(a, 1, [b"header", view])  # returns right after the send that worked
            held = sys.getrefcount(view) - references
            payload[:] = bytes(nbytes)  # training writes the vector while the message may still be queued
            return held, await asyncio.wait_for(b.recv(), 10)

    held, got = asyncio.run(scenario())
    assert held == 0
    assert bytes(got.frames[1].buffer) == expected


def test_send_to_a_dead_peer_fails_fast(zmq_context) -> None:
    """With nobody listening, send returns False at once instead of queueing."""
    pa, pdead = free_port(), free_port()

    async def scenario():
        a = ZmqTransport(NodeId(0), addr(pa), {NodeId(1): addr(pdead)}, context=zmq_context)
        await a.start()
        try:
            return [a.send(NodeId(1), [b"h"]) for _ in range(100)]
        finally:
            await a.close()

    assert not any(asyncio.run(scenario()))


def test_port_in_use_is_a_transport_error(zmq_context) -> None:
    """Binding a taken port raises TransportError naming the address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]

        async def scenario():
            t = ZmqTransport(NodeId(0), addr(port), {}, context=zmq_context)
            await t.start()

        with pytest.raises(TransportError, match=f"127.0.0.1:{port} is already in use"):
            asyncio.run(scenario())


def test_oversized_frame_never_reaches_python(zmq_context) -> None:
    """MAXMSGSIZE drops a frame larger than the limit in libzmq; a later legal message still arrives."""
    pa = free_port()

    async def scenario():
        a = ZmqTransport(NodeId(0), addr(pa), {}, max_message_bytes=1024, context=zmq_context)
        await a.start()
        bad = zmq_context.socket(zmq.PUSH)
        bad.connect(addr(pa))
        good = zmq_context.socket(zmq.PUSH)
        good.connect(addr(pa))
        try:
            await bad.send_multipart([b"1", b"h", b"x" * 100_000])
            await good.send_multipart([b"2", b"h", b"ok"])
            got = await asyncio.wait_for(a.recv(), 10)
            return got
        finally:
            bad.close(linger=0)
            good.close(linger=0)
            await a.close()

    got = asyncio.run(scenario())
    assert got.sender == 2


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b"3", 3), (b"0", 0), (b"1234567", 1234567), (b"", None), (b"\x00abcd", None), (b"-1", None), (b"12345678", None), (b"3a", None)],
)
def test_parse_identity(raw: bytes, expected: int | None) -> None:
    """Only short decimal routing ids are node ids; zmq's random ids and junk are not."""
    assert parse_identity(raw) == expected


def test_one_message_at_a_time_is_never_dropped_as_queue_full(zmq_context) -> None:
    """A queue the I/O thread already drained is not mistaken for a full one.

    libzmq tells the sending thread that its queue drained through a command it reads at most about
    once a millisecond on the send path: with a queue of 4 and messages faster than that, a plain
    non-blocking send failed about one time in four although nothing was queued.
    """
    pa, pb = free_port(), free_port()

    async def scenario() -> int:
        a = ZmqTransport(NodeId(0), addr(pa), {NodeId(1): addr(pb)}, context=zmq_context, queue_messages=4)
        b = ZmqTransport(NodeId(1), addr(pb), {}, context=zmq_context)
        await a.start()
        await b.start()
        try:
            await _eventually_send(a, 1, [b"header", b"x" * 1000])
            await asyncio.wait_for(b.recv(), 10)
            refused = 0
            for _ in range(500):
                if not a.send(NodeId(1), [b"header", b"x" * 40_000]):
                    refused += 1
                    continue
                await asyncio.wait_for(b.recv(), 10)
            return refused
        finally:
            await a.close()
            await b.close()

    assert asyncio.run(scenario()) == 0
