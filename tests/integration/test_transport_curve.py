"""CURVE on real sockets: only neighbours' keys get in, and the key — not the routing id — names the sender."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from gossip.errors import TransportError
from gossip.ids import NodeId
from gossip.net.zeromq import ZmqTransport, generate_keys, load_keys
from tests.conftest import free_port


def addr(port: int) -> str:
    return f"tcp://127.0.0.1:{port}"


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    generate_keys(tmp_path / "keys", 3)
    return tmp_path / "keys"


async def _send_until_received(sender: ZmqTransport, peer: int, receiver: ZmqTransport, frames: list) -> object:
    for _ in range(300):
        if sender.send(NodeId(peer), frames):
            break
        await asyncio.sleep(0.01)
    return await asyncio.wait_for(receiver.recv(), 10)


def test_neighbours_key_is_admitted_and_names_the_sender(keys: Path) -> None:
    """A message over CURVE arrives, and its sender is the owner of the authenticated key."""
    p0, p1 = free_port(), free_port()

    async def scenario():
        a = ZmqTransport(NodeId(0), addr(p0), {NodeId(1): addr(p1)}, curve=load_keys(keys, 0, [1]))
        b = ZmqTransport(NodeId(1), addr(p1), {NodeId(0): addr(p0)}, curve=load_keys(keys, 1, [0]))
        await a.start()
        await b.start()
        try:
            return await _send_until_received(a, 1, b, [b"hello"])
        finally:
            await a.close()
            await b.close()

    got = asyncio.run(scenario())
    assert got.sender == 0


def test_stranger_key_is_refused_and_reported(keys: Path, tmp_path: Path) -> None:
    """A client with a key that is not a neighbour's never gets a message through; the refusal is reported."""
    p0 = free_port()
    refused: list[int] = []

    async def scenario():
        a = ZmqTransport(NodeId(0), addr(p0), {}, curve=load_keys(keys, 0, [1]), on_unauthenticated=lambda: refused.append(1))
        await a.start()
        ctx = zmq.asyncio.Context()
        stranger = ctx.socket(zmq.PUSH)
        public, secret = zmq.curve_keypair()
        stranger.setsockopt(zmq.CURVE_SERVERKEY, load_keys(keys, 1, [0]).peers[0])
        stranger.setsockopt(zmq.CURVE_PUBLICKEY, public)
        stranger.setsockopt(zmq.CURVE_SECRETKEY, secret)
        stranger.setsockopt(zmq.LINGER, 0)
        stranger.connect(addr(p0))
        try:
            await stranger.send_multipart([b"1", b"let me in"])  # claims to be node 1: the envelope is not trusted
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(a.recv(), 1.5)
        finally:
            stranger.close(linger=0)
            ctx.term()
            await a.close()

    asyncio.run(scenario())
    assert refused


def test_missing_key_file_is_a_clear_error(keys: Path) -> None:
    """Asking for a node's keys that were never generated names the file and how to make it."""
    with pytest.raises(TransportError, match="gossip keys"):
        load_keys(keys, 7, [])
