"""The same-host path on real sockets and real processes: rings found without settings, torn and hostile slots refused.

A receiver here is a :class:`SharedMemoryTransport` over ZeroMQ on loopback TCP; senders are other processes
(``tests/integration/shm_peer.py``) or a second transport in this one.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gossip.errors import RejectReason, WireError
from gossip.ids import NodeId
from gossip.net.rings import MIN_SLOTS, Geometry
from gossip.net.shm import SharedMemoryTransport, ring_socket_name
from gossip.net.transport import Received
from gossip.net.wire import Expectation, Kind, decode, encode
from gossip.net.zeromq import ZmqTransport
from tests.conftest import Processes, free_port
from tests.procs import dev_shm_names

pytestmark = pytest.mark.slow

RUN_ID = b"run-0001"
SLOT_BYTES = 1 << 20  # a model of 262,144 float32s: the smallest that goes through a ring (shm.MIN_BYTES)
PEER_SCRIPT = (Path(__file__).parent / "shm_peer.py").read_text()


def _address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def _transport(me: int, address: str, peers: dict[NodeId, str]) -> SharedMemoryTransport:
    inner = ZmqTransport(NodeId(me), address, peers)
    return SharedMemoryTransport(inner, run_id=RUN_ID, me=NodeId(me), address=address, peers=peers, slot_bytes=SLOT_BYTES)


def _rings_mapped() -> int:
    return Path("/proc/self/maps").read_text().count("gossip-ring")


def _peer(processes: Processes, mode: str, args: dict, python: str = sys.executable, **kwargs: object) -> subprocess.Popen[bytes]:
    return processes.start([python, "-c", PEER_SCRIPT, mode, json.dumps(args)], stdout=subprocess.PIPE, **kwargs)


async def _send_until_received(sender: SharedMemoryTransport, peer: int, receiver: SharedMemoryTransport, frames: list) -> Received:
    for _ in range(500):
        if sender.send(NodeId(peer), frames):
            break
        await asyncio.sleep(0.01)
    return await asyncio.wait_for(receiver.recv(), 10)


def test_a_model_to_a_neighbour_on_this_host_travels_through_a_ring_unchanged() -> None:
    """Nothing configured: the sender finds the receiver's ring socket, hands a ring over, and the bytes arrive whole."""
    a0, a1 = _address(), _address()
    model = np.random.default_rng(0).standard_normal(SLOT_BYTES // 4).astype(np.float32)

    async def scenario() -> tuple[Received, Received, tuple[int, int], tuple[int, int]]:
        a, b = _transport(0, a0, {NodeId(1): a1}), _transport(1, a1, {NodeId(0): a0})
        await a.start()
        await b.start()
        try:
            big = await _send_until_received(a, 1, b, [b"header", memoryview(model).cast("B")])
            small = await _send_until_received(a, 1, b, [b"hello", b"x" * 100])
            return big, small, a.in_memory, b.in_memory
        finally:
            await a.close()
            await b.close()

    big, small, sent, received = asyncio.run(scenario())
    assert big.sender == 0 and bytes(big.frames[0]) == b"header" and bytes(big.frames[1]) == model.tobytes()
    assert [bytes(f) for f in small.frames] == [b"hello", b"x" * 100]  # small frames stay on ZeroMQ
    assert sent == (1, 0) and received == (0, 1)
    assert _rings_mapped() == 0  # closed transports unmap every ring


def test_a_model_to_several_neighbours_is_written_into_the_ring_once() -> None:
    """A round's model to every neighbour costs one copy on the sender's side: both references name one slot."""
    a0, a1, a2 = _address(), _address(), _address()
    model = np.random.default_rng(1).standard_normal(SLOT_BYTES // 4).astype(np.float32)

    async def scenario() -> tuple[list[Received], int, int]:
        a = _transport(0, a0, {NodeId(1): a1, NodeId(2): a2})
        b, c = _transport(1, a1, {NodeId(0): a0}), _transport(2, a2, {NodeId(0): a0})
        for t in (a, b, c):
            await t.start()
        try:
            for r, peer in ((b, 1), (c, 2)):  # both links up first (a small message is no ring's business)
                await _send_until_received(a, peer, r, [b"hello"])
            assert a.send_all([NodeId(1), NodeId(2)], [b"header", memoryview(model).cast("B")]) == []
            got = [await asyncio.wait_for(r.recv(), 10) for r in (b, c)]
            assert a._ring is not None
            return got, a.sent, a._ring._seq // 2
        finally:
            for t in (a, b, c):
                await t.close()

    got, sent, writes = asyncio.run(scenario())
    assert [bytes(r.frames[1]) for r in got] == [model.tobytes()] * 2
    assert sent == 2 and writes == 1


def test_a_slot_a_receiver_has_not_read_is_never_written_again() -> None:
    """While a receiver holds a reference to every slot (it has not read them), the sender's next models go through
    ZeroMQ instead of overwriting one; every model arrives whole and in order, and once the receiver has read
    them (and said so) the ring is used again."""
    a0, a1 = _address(), _address()
    models = [np.full(SLOT_BYTES // 4, k, dtype=np.float32) for k in range(MIN_SLOTS + 2)]

    async def scenario() -> tuple[list[bytes], int, int]:
        a, b = _transport(0, a0, {NodeId(1): a1}), _transport(1, a1, {NodeId(0): a0})
        await a.start()
        await b.start()
        try:
            await _send_until_received(a, 1, b, [b"hello"])
            for k, model in enumerate(models):  # ZeroMQ's queues may take a moment to pass a message on
                for _ in range(500):
                    if a.send(NodeId(1), [b"model %d" % k, memoryview(model).cast("B")]):
                        break
                    await asyncio.sleep(0.01)
            sent_while_held = a.sent
            got = [bytes((await asyncio.wait_for(b.recv(), 10)).frames[1]) for _ in models]
            await _send_until_received(a, 1, b, [b"again", memoryview(models[0]).cast("B")])
            return got, sent_while_held, a.sent
        finally:
            await a.close()
            await b.close()

    got, sent_while_held, sent_after = asyncio.run(scenario())
    assert got == [m.tobytes() for m in models]
    assert sent_while_held == MIN_SLOTS  # the last two found every slot held
    assert sent_after == MIN_SLOTS + 1


def test_a_receiver_without_shared_memory_gets_the_model_over_the_socket() -> None:
    """A peer that takes no rings (another host, or shared memory off) is sent the model through ZeroMQ."""
    a0, a1 = _address(), _address()
    model = np.arange(SLOT_BYTES // 4, dtype=np.float32)

    async def scenario() -> tuple[Received, tuple[int, int]]:
        a = _transport(0, a0, {NodeId(1): a1})
        b = ZmqTransport(NodeId(1), a1, {NodeId(0): a0})
        await a.start()
        await b.start()
        try:
            for _ in range(500):
                if a.send(NodeId(1), [b"header", memoryview(model).cast("B")]):
                    break
                await asyncio.sleep(0.01)
            return await asyncio.wait_for(b.recv(), 10), a.in_memory
        finally:
            await a.close()
            await b.close()

    got, sent = asyncio.run(scenario())
    assert len(got.frames) == 2 and bytes(got.frames[1]) == model.tobytes()
    assert sent == (0, 0)


def test_a_sender_killed_mid_write_cannot_make_the_receiver_read_a_torn_model(processes: Processes) -> None:
    """The sender sends a model, starts rewriting its slot and is SIGKILLed: the reference is refused as torn_slot,
    and once the receiver closes no ring stays mapped and nothing is left in /dev/shm."""
    a0, a1 = _address(), _address()
    dev_shm = dev_shm_names()

    async def scenario() -> Received:
        receiver = _transport(0, a0, {NodeId(1): a1})
        await receiver.start()
        try:
            args = {"src": 1, "dst": 0, "src_address": a1, "dst_address": a0, "run_id": RUN_ID.hex(), "slot_bytes": SLOT_BYTES}
            sender = _peer(processes, "die-mid-write", args)
            assert sender.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(sender.stdout.readline), 30)
            assert line.strip() == b"mid-write", line
            sender.kill()
            sender.wait()
            sender.stdout.close()
            while True:  # models that went through ZeroMQ before the ring was taken come first
                got = await asyncio.wait_for(receiver.recv(), 10)
                if got.refused is not None or receiver.in_memory[1]:
                    return got
        finally:
            await receiver.close()

    got = asyncio.run(scenario())
    assert got.sender == 1 and got.refused is RejectReason.TORN_SLOT and got.frames == []
    assert _rings_mapped() == 0
    assert dev_shm_names() == dev_shm


def _offer_args(cases: list[str]) -> dict:
    geometry = Geometry(MIN_SLOTS, SLOT_BYTES)
    return {"src": 1, "dst": 0, "run_id": RUN_ID.hex(), "slots": MIN_SLOTS, "slot_bytes": SLOT_BYTES, "size": geometry.size, "cases": cases}


def _refusals_after(peer_args: dict, processes: Processes, count: int, **kwargs: object) -> tuple[dict, list[Received]]:
    """Start a receiver, run the hostile ``offers`` peer against it, and collect what the receiver reports."""
    a0 = _address()

    async def scenario() -> tuple[dict, list[Received]]:
        receiver = _transport(0, a0, {NodeId(1): _address()})
        await receiver.start()
        try:
            peer = _peer(processes, "offers", {**peer_args, "name": ring_socket_name(RUN_ID, 0, a0).hex()}, **kwargs)
            out, _ = await asyncio.to_thread(peer.communicate, timeout=30)
            got = [await asyncio.wait_for(receiver.recv(), 5) for _ in range(count)]
            return json.loads(out), got
        finally:
            await receiver.close()

    return asyncio.run(scenario())


HOSTILE_OFFERS = ["another_run", "another_node", "not_a_neighbour", "another_shape", "unsealed", "short_file", "no_descriptor", "malformed"]


def test_rings_a_local_process_offers_for_another_run_node_or_shape_or_unsealed_are_refused_and_reported(processes: Processes) -> None:
    answers, got = _refusals_after(_offer_args(HOSTILE_OFFERS), processes, len(HOSTILE_OFFERS))
    assert answers == dict.fromkeys(HOSTILE_OFFERS, "00")
    assert [r.refused for r in got] == [RejectReason.BAD_SLOT] * len(HOSTILE_OFFERS)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to start a process as another user")
def test_a_ring_offered_by_a_process_of_another_user_is_refused(processes: Processes) -> None:
    """SO_PEERCRED names the offering process's user: an offer our own user's process gets taken is refused from user nobody."""
    as_nobody = {"python": "/usr/bin/python3", "user": 65534, "group": 65534, "cwd": "/"}
    answers, got = _refusals_after(_offer_args(["valid"]), processes, 1, **as_nobody)
    assert answers == {"valid": "00"} and got[0].refused is RejectReason.BAD_SLOT
    answers, _ = _refusals_after(_offer_args(["valid"]), processes, 0)
    assert answers == {"valid": "01"}


CLAIM_CASES = ["another_generation", "past_the_last_slot", "never_written", "non_finite"]


def test_references_into_a_ring_a_local_process_handed_over_are_checked_like_any_input(processes: Processes) -> None:
    """A same-user process may offer a ring under a neighbour's id; every reference into it is still checked, and
    what a valid one names is validated by the wire like a model from TCP (here: NaNs, refused as non_finite)."""
    a0 = _address()
    fingerprint = b"f" * 16
    header = encode(
        Kind.MODEL,
        src=1,
        round=0,
        run_id=RUN_ID,
        fingerprint=fingerprint,
        payload=memoryview(np.zeros(SLOT_BYTES // 4, np.float32)).cast("B"),
    )[0]
    expect = Expectation(RUN_ID, fingerprint, SLOT_BYTES // 4, 2, frozenset({NodeId(1)}), 0, 100, -1)

    async def scenario() -> list[Received]:
        receiver = _transport(0, a0, {NodeId(1): _address()})
        await receiver.start()
        try:
            geometry = Geometry(MIN_SLOTS, SLOT_BYTES)
            args = {
                **_offer_args(CLAIM_CASES),
                "name": ring_socket_name(RUN_ID, 0, a0).hex(),
                "dst_address": a0,
                "headers_bytes": geometry.headers_bytes,
                "header": bytes(header).hex(),
            }
            peer = _peer(processes, "claim", args)
            assert peer.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(peer.stdout.readline), 30)
            assert line.strip() == b"sent", line
            got = [await asyncio.wait_for(receiver.recv(), 10) for _ in CLAIM_CASES]
            peer.kill()
            peer.wait()
            peer.stdout.close()
            return got
        finally:
            await receiver.close()

    got = asyncio.run(scenario())
    assert [r.refused for r in got[:3]] == [RejectReason.BAD_SLOT, RejectReason.BAD_SLOT, RejectReason.TORN_SLOT]
    nan = got[3]
    assert nan.refused is None and len(nan.frames) == 2
    with pytest.raises(WireError) as refused:
        decode(nan.frames, expect, nan.sender)
    assert refused.value.reason is RejectReason.NON_FINITE
