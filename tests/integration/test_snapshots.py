"""The snapshot pool reuses a send buffer only after ZeroMQ has released every copy of the message."""

from __future__ import annotations

import time

import torch
import zmq

from gossip.net.sendbuffers import SnapshotPool
from gossip.net.wire import Expectation, Kind, decode, encode

RUN, FP = b"snaprun!", b"F" * 16


def _wait(cond, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_buffer_is_reused_after_both_peers_got_it_and_never_while_in_flight() -> None:
    """Prepare: two PUSH→PULL links. Execute: send one tracked snapshot to both, take a second snapshot
    while the first message is still referenced, then release it. Assert: the second snapshot never
    shares the first's memory while in flight, both peers decode the first model intact, and once
    libzmq let go the pool hands the same buffer back (no new allocation)."""
    ctx = zmq.Context()
    pulls, pushes = [], []
    try:
        for _ in range(2):
            pull = ctx.socket(zmq.PULL)
            port = pull.bind_to_random_port("tcp://127.0.0.1")
            push = ctx.socket(zmq.PUSH)
            push.connect(f"tcp://127.0.0.1:{port}")
            pulls.append(pull)
            pushes.append(push)
        pool = SnapshotPool(min_bytes=0)
        model = torch.arange(100_000, dtype=torch.float32)
        first = pool.snapshot(model)
        frames = pool.track(first, encode(Kind.MODEL, src=1, round=0, run_id=RUN, fingerprint=FP, payload=first))
        assert isinstance(frames[-1], zmq.Frame)
        for push in pushes:
            push.send_multipart(frames, copy=False)
        model += 1  # training goes on
        second = pool.snapshot(model)  # the first message is still referenced (frames alive)
        assert second.data_ptr() != first.data_ptr()
        expect = Expectation(RUN, FP, 100_000, 2, frozenset({1}), 0, 10)
        for pull in pulls:
            got = decode(pull.recv_multipart(copy=False), expect, 1)
            assert got.payload is not None and torch.equal(got.payload, torch.arange(100_000, dtype=torch.float32))
        pool.track(second, [b"header only"])  # nothing sent from it: free at once
        del frames
        assert _wait(lambda: pool.in_flight == 0)
        third = pool.snapshot(model)
        assert third.data_ptr() in (first.data_ptr(), second.data_ptr())
        assert pool.allocations == 2
    finally:
        for s in pulls + pushes:
            s.close(linger=0)
        ctx.term()


def test_tracked_frames_work_over_the_in_memory_transport() -> None:
    """The in-memory test double copies frames with bytes(); a tracked zmq.Frame supports that."""
    pool = SnapshotPool(min_bytes=0)
    v = torch.ones(10)
    s = pool.snapshot(v)
    frames = pool.track(s, encode(Kind.MODEL, src=1, round=0, run_id=RUN, fingerprint=FP, payload=s))
    copied = [bytes(f) for f in frames]
    assert len(copied[-1]) == 40 and sum(len(f) for f in frames) == sum(len(c) for c in copied)


def test_small_models_are_cloned_not_tracked() -> None:
    """Below min_bytes a snapshot is a plain clone and its frames are left as they are (tracking costs more)."""
    pool = SnapshotPool()
    v = torch.ones(1000)
    s = pool.snapshot(v)
    frames = encode(Kind.MODEL, src=1, round=0, run_id=RUN, fingerprint=FP, payload=s)
    assert pool.track(s, frames) is frames and pool.allocations == 0 and s.data_ptr() != v.data_ptr()


def test_live_vector_is_released_once_the_peer_has_it_and_arrives_intact() -> None:
    """Prepare: node 0 sends its live 4 MB vector zero-copy (tracked) to node 1. Execute: node 1
    receives it; node 0 waits for the release. Assert: released well before the deadline (nothing
    dropped), and node 1 got exactly the vector as it was when sent."""
    import asyncio

    import zmq.asyncio

    from gossip.ids import NodeId
    from gossip.net.sendbuffers import track_live, until_released
    from gossip.net.zeromq import ZmqTransport

    async def scenario() -> tuple[bool, bool, list[int]]:
        ctx = zmq.asyncio.Context()
        b = ZmqTransport(NodeId(1), "tcp://127.0.0.1:*", {}, context=ctx)
        await b.start()
        a = ZmqTransport(NodeId(0), "tcp://127.0.0.1:*", {NodeId(1): b.bound_address}, context=ctx)
        await a.start()
        dropped: list[int] = []
        try:
            vector = torch.randn(1_000_000)
            sent = vector.clone()
            frames, tracker = track_live(encode(Kind.MODEL, src=0, round=0, run_id=RUN, fingerprint=FP, payload=vector))
            for _ in range(500):
                if a.send(NodeId(1), frames):
                    break
                await asyncio.sleep(0.01)
            del frames
            got = await asyncio.wait_for(b.recv(), 10)
            released = await until_released(tracker, time.monotonic() + 10, lambda: dropped.append(1))
            message = decode(got.frames, Expectation(RUN, FP, 1_000_000, 2, frozenset({0}), 0, 10), got.sender)
            assert message.payload is not None
            return released, bool(torch.equal(message.payload, sent)), dropped
        finally:
            await a.close()
            await b.close()
            ctx.term()

    released, intact, dropped = asyncio.run(scenario())
    assert released and intact and dropped == []


def test_a_peer_that_stops_reading_loses_the_model_and_lets_the_vector_go() -> None:
    """Prepare: a peer process that completes the connection, then is stopped (SIGSTOP) so it reads
    nothing. Execute: send a 40 MB live vector (more than the kernel buffers hold) and wait for its
    release with a short deadline. Assert: the deadline drops what is queued to that peer and the
    tracker finishes, so the node may write its vector again."""
    import asyncio
    import os
    import signal
    import subprocess
    import sys

    import zmq.asyncio

    from gossip.ids import NodeId
    from gossip.net.sendbuffers import track_live, until_released
    from gossip.net.zeromq import ZmqTransport
    from tests.conftest import free_port

    port = free_port()
    peer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import zmq,time; s=zmq.Context().socket(zmq.PULL); s.bind('tcp://127.0.0.1:{port}'); print('up', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert peer.stdout is not None and peer.stdout.readline().strip() == "up"

        async def scenario() -> tuple[bool, bool, list[int]]:
            ctx = zmq.asyncio.Context()
            a = ZmqTransport(NodeId(0), "tcp://127.0.0.1:*", {NodeId(1): f"tcp://127.0.0.1:{port}"}, context=ctx)
            await a.start()
            try:
                hello = [b"hello"]
                for _ in range(500):  # IMMEDIATE=1: sends fail until the connection is up
                    if a.send(NodeId(1), hello):
                        break
                    await asyncio.sleep(0.01)
                os.kill(peer.pid, signal.SIGSTOP)
                vector = torch.randn(10_000_000)
                frames, tracker = track_live(encode(Kind.MODEL, src=0, round=0, run_id=RUN, fingerprint=FP, payload=vector))
                assert a.send(NodeId(1), frames)
                del frames
                await asyncio.sleep(0.5)
                stuck = not tracker.done  # the stopped peer holds it
                dropped: list[int] = []

                def drop() -> None:
                    dropped.append(1)
                    a.drop_queued([NodeId(1)])

                released = await until_released(tracker, time.monotonic() + 0.5, drop)
                return stuck, released and tracker.done, dropped
            finally:
                await a.close()
                ctx.term()

        stuck, released, dropped = asyncio.run(scenario())
        assert stuck and released and dropped == [1]
    finally:
        os.kill(peer.pid, signal.SIGKILL)
        peer.wait()
        if peer.stdout is not None:
            peer.stdout.close()
