"""The snapshot pool reuses a send buffer only after ZeroMQ has released every copy of the message."""

from __future__ import annotations

import time

import torch
import zmq

from gossip.snapshots import SnapshotPool
from gossip.wire import Expectation, Kind, decode, encode

RUN, FP = b"snaprun!", b"F" * 16


def _wait(cond, timeout_s: float = 10.0) -> bool:  # noqa: ANN001
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
