"""Moving a model between two processes: gossip's transport against raw pyzmq PUSH/PULL of the same bytes.

    .venv/bin/python bench/transport.py [--repeat 7] [--ipc] [--only 10000]

Two processes, one sender and one receiver, each with one thread for torch. One message in flight at
a time, the way gossip uses the network (a node sends its model once a round and waits for its
neighbours'): send a model, the receiver takes it, lets go of it (a node frees a model once mixed, before
the next round's comes) and answers with a small ack on a separate raw socket (the same ack for every
variant), next model. Variants, interleaved trial by trial; medians, and each variant's ratio to raw
trial by trial (the two ran seconds apart) with its range, which shows how noisy the run was:

- ``raw``: pyzmq PUSH → PULL, ``send_multipart([header, payload], copy=False)`` / ``recv_multipart(copy=False)``,
  nothing else: the ceiling;
- ``gossip``: the real path of a sync node — ``wire.encode`` of the live vector's bytes (viewed once, as
  ``FlatModel.wire_bytes``) handed to ZeroMQ as a
  tracked zero-copy frame (models of 1 MiB and more; below, the socket copies it inside ``send``,
  cheaper than tracking), the wait until ZeroMQ released it (a node mixes only then), ``ZmqTransport.send`` (PUSH) →
  ``ZmqTransport.recv`` (asyncio PULL) and ``wire.decode`` with every check (sender, run,
  fingerprint, round window, size, finiteness);
- ``gossip, snapshot``: the same with a snapshot copy first (pooled above 32 MiB), the path of async
  gossip and link emulation, which cannot wait for ZeroMQ before the model changes;
- ``gossip, blocking receive``: the gossip path, but the receiver reads the same ZeroMQ socket with a
  blocking ``recv`` instead of through the asyncio event loop — to show what the node's asyncio
  receive costs;
- ``raw + least checks``: raw pyzmq again, but the sender packs a msgpack header per message and the
  receiver unpacks it and checks the payload for NaN/inf the way ``wire.decode`` does, and nothing else
  (no sender, run, round or size checks, no event loop): a floor for any receiver that follows the
  rule "every input from the network is hostile until validated" in Python;
- ``gossip's sockets``: raw bytes (the raw variant's frames, no encode or decode, a blocking receive)
  through the transport's own PUSH and PULL, with its options — high-water marks of 4 (a node's
  memory per peer is bounded), ``IMMEDIATE``, the copy below 1 MiB, the envelope frame: what gossip's
  socket choices cost by themselves;
- ``gossip's sockets + least checks``: those sockets carrying the least-checks messages — the floor for
  a node that keeps gossip's memory bounds and validates what it receives, with no event loop and no
  other Python. The last table sets it against the goal's budget.

Every socket of a bench process (raw, ack and gossip's) is on one ZeroMQ context, so one I/O thread
moves them all, as in a node (with two contexts, gossip's messages and the acks would take turns on two
I/O threads per process: an extra thread wake-up per message that raw does not pay).

``--ipc``: every socket of the bench (raw and gossip alike) is a Unix-domain socket (ZeroMQ
``ipc://``, what ``gossip launch --ipc`` uses) instead of loopback TCP.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = (
    "raw",
    "gossip",
    "gossip, snapshot",
    "gossip, blocking receive",
    "raw + least checks",
    "gossip's sockets",
    "gossip's sockets + least checks",
)
SIZES = {10_000: 400, 1_000_000: 40, 10_000_000: 6}  # params -> messages per trial
RUN, FP = b"benchrun", b"F" * 16


def _threads() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def bind_any(sock: Any, ipc: str) -> str:
    """Bind ``sock`` to a fresh loopback TCP port, or to ``ipc`` when given; return the address to dial."""
    if ipc:
        sock.bind(ipc)
        return ipc
    return f"tcp://127.0.0.1:{sock.bind_to_random_port('tcp://127.0.0.1')}"


def receiver(ports: Any, cpu: Any, plan: list[tuple[str, int, int]], ipc: str) -> None:
    """Receive every trial's messages; ack each one on a raw PUSH socket; report each trial's process CPU seconds."""
    _threads()
    import msgpack
    import torch
    import zmq
    import zmq.asyncio

    from gossip.ids import NodeId
    from gossip.net.connections import size_limits
    from gossip.net.payload import finite_float32
    from gossip.net.wire import Expectation, decode
    from gossip.net.zeromq import ZmqTransport

    actx = zmq.asyncio.Context()  # one context, one I/O thread for every socket of the process, as in a node
    ctx = zmq.Context.shadow(actx.underlying)
    pull = ctx.socket(zmq.PULL)
    raw_address = bind_any(pull, ipc and f"{ipc}-raw")
    ack = ctx.socket(zmq.PUSH)
    ack_address = bind_any(ack, ipc and f"{ipc}-ack")
    loop = asyncio.new_event_loop()
    max_n = max(n for _v, n, _k in plan)
    # with the connection guard a node runs (gossip.net.connections): it reads each message's source descriptor
    limits = size_limits(1, max_n * 4 + 8192, 4, handshake_timeout_s=10.0)
    transport = ZmqTransport(
        NodeId(1), f"{ipc}-gossip" if ipc else "tcp://127.0.0.1:*", {}, max_message_bytes=max_n * 4 + 8192, context=actx, limits=limits
    )
    loop.run_until_complete(transport.start())
    ports.put((raw_address, ack_address, transport.bound_address))

    async def gossip_trial(n: int, k: int) -> None:
        expect = Expectation(RUN, FP, n, 2, frozenset({0}), 0, 1 << 40)
        for _ in range(k):
            got = await transport.recv()
            message = decode(got.frames, expect, got.sender)
            assert message.payload is not None and message.payload.numel() == n
            del got, message  # done with it before the next one comes, as a node after its mix
            ack.send(b"k")

    def least_checks(frames: list[Any], n: int) -> torch.Tensor:
        header = msgpack.unpackb(frames[0])
        payload = finite_float32(memoryview(frames[1]))  # decode's own NaN/inf check, raises if it fails
        assert header["n"] == n
        return payload

    assert transport.guard is not None
    delivered = transport.guard.delivered
    blocking = zmq.Socket.shadow(transport._inbound.underlying)  # type: ignore[union-attr]  # the same PULL, synchronous
    for variant, n, k in plan:
        c0 = time.process_time()  # every thread: ZeroMQ's I/O thread included; waiting costs nothing
        if variant == "raw":
            for _ in range(k):
                frames = pull.recv_multipart(copy=False)
                assert len(frames[1]) == n * 4
                del frames
                ack.send(b"k")
        elif variant == "raw + least checks":
            for _ in range(k):
                least_checks(pull.recv_multipart(copy=False), n)
                ack.send(b"k")
        elif variant.startswith("gossip's sockets"):
            checks = variant.endswith("least checks")
            for _ in range(k):
                identity, *frames = blocking.recv_multipart(copy=False)
                delivered(identity.get(zmq.SRCFD))  # what ZmqTransport.recv tells its connection guard
                if checks:
                    least_checks(frames, n)
                else:
                    assert len(frames[1]) == n * 4
                del identity, frames
                ack.send(b"k")
        elif variant == "gossip, blocking receive":
            expect = Expectation(RUN, FP, n, 2, frozenset({0}), 0, 1 << 40)
            for _ in range(k):
                identity, *frames = blocking.recv_multipart(copy=False)
                delivered(identity.get(zmq.SRCFD))
                message = decode(frames, expect, int(identity.bytes))
                assert message.payload is not None
                del identity, frames, message
                ack.send(b"k")
        else:
            loop.run_until_complete(gossip_trial(n, k))
        cpu.put((variant, n, time.process_time() - c0))
    loop.run_until_complete(transport.close())
    pull.close(linger=0)
    ack.close(linger=1000)
    actx.term()


def sender(ports: Any, results: Any, plan: list[tuple[str, int, int]], ipc: str) -> None:
    """Send every trial's messages, one at a time; report each trial's seconds and process CPU seconds."""
    _threads()
    import msgpack
    import torch
    import zmq
    import zmq.asyncio

    from gossip.ids import NodeId
    from gossip.net.sendbuffers import SnapshotPool, track_live
    from gossip.net.wire import Kind, encode
    from gossip.net.zeromq import COPY_BELOW_BYTES, ZmqTransport

    raw_address, ack_address, gossip_address = ports.get()
    actx = zmq.asyncio.Context()
    ctx = zmq.Context.shadow(actx.underlying)
    push = ctx.socket(zmq.PUSH)
    push.connect(raw_address)
    ack = ctx.socket(zmq.PULL)
    ack.connect(ack_address)
    loop = asyncio.new_event_loop()
    transport = ZmqTransport(NodeId(0), f"{ipc}-sender" if ipc else "tcp://127.0.0.1:*", {NodeId(1): gossip_address}, context=actx)
    loop.run_until_complete(transport.start())
    time.sleep(0.5)  # connections up (IMMEDIATE=1 drops messages to a peer not connected yet)
    models = {n: torch.randn(n) for n in {n for _v, n, _k in plan}}
    wire_bytes = {n: memoryview(v.numpy()).cast("B") for n, v in models.items()}  # as FlatModel.wire_bytes
    pool = SnapshotPool()
    raw_header = b"x" * 90  # about the size of gossip's msgpack header

    def least_header(round_: int, n: int) -> bytes:
        """The least-checks variants' header: gossip's fields for a float32 model, nothing else."""
        return msgpack.packb({"v": 1, "kind": "model", "run": RUN, "src": 0, "round": round_, "fp": FP, "dtype": "float32", "n": n})

    retries = 0

    for variant, n, k in plan:
        vector = models[n]
        tracker = None
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(k):
            if variant == "raw":
                push.send_multipart([raw_header, wire_bytes[n]], copy=False)
            elif variant == "raw + least checks":
                header = least_header(i, n)
                push.send_multipart([header, wire_bytes[n]], copy=False)
            elif variant.startswith("gossip's sockets"):
                header = raw_header
                if variant.endswith("least checks"):
                    header = least_header(i, n)
                while not transport.send(NodeId(1), [header, wire_bytes[n]]):
                    retries += 1
                    time.sleep(0.0005)
            else:
                live = variant != "gossip, snapshot"
                payload = wire_bytes[n] if live else pool.snapshot(vector)
                frames = encode(Kind.MODEL, src=0, round=i, run_id=RUN, fingerprint=FP, payload=payload, info={"loss": 1.0})
                tracker = None
                if live and n * 4 >= COPY_BELOW_BYTES:
                    frames, tracker = track_live(frames)
                elif not live:
                    frames = pool.track(payload, frames)
                while not transport.send(NodeId(1), frames):
                    retries += 1
                    time.sleep(0.0005)  # not connected yet or queue full: never in steady state
                del frames, payload
            ack.recv()
            if tracker is not None and not tracker.done:  # as gossip.net.sendbuffers.until_released: usually done by now
                tracker.wait(10)  # the node mixes (writes the vector) only once ZeroMQ let go
        results.put((variant, n, time.perf_counter() - t0, time.process_time() - c0))
    print(
        f"  sender: {pool.allocations} send buffers allocated for {sum(k for v, _n, k in plan if v != 'raw')} gossip messages; {retries} sends retried",
        file=sys.stderr,
    )
    loop.run_until_complete(transport.close())
    push.close(linger=1000)
    ack.close(linger=0)
    actx.term()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--ipc", action="store_true", help="Unix-domain sockets (ipc://) instead of loopback TCP, for every variant")
    p.add_argument("--only", type=int, action="append", choices=sorted(SIZES), help="one model size (parameters), repeatable")
    args = p.parse_args()
    sizes = {n: k for n, k in SIZES.items() if not args.only or n in args.only}
    ipc = f"ipc://@gossip-bench-{os.getpid()}" if args.ipc else ""
    plan = [(v, n, k) for n, k in sizes.items() for _ in range(args.repeat + 1) for v in VARIANTS]  # +1: warm-up trial
    spawn = mp.get_context("spawn")
    ports, results, rx_cpu = spawn.Queue(), spawn.Queue(), spawn.Queue()
    rx = spawn.Process(target=receiver, args=(ports, rx_cpu, plan, ipc))
    tx = spawn.Process(target=sender, args=(ports, results, plan, ipc))
    rx.start()
    tx.start()
    times: dict[tuple[str, int], list[float]] = {}
    tx_cpus: dict[tuple[str, int], list[float]] = {}
    rx_cpus: dict[tuple[str, int], list[float]] = {}
    seen: dict[tuple[str, int], int] = {}
    for _ in plan:
        variant, n, seconds, tx_cpu = results.get(timeout=600)
        seen[(variant, n)] = seen.get((variant, n), 0) + 1
        if seen[(variant, n)] > 1:  # the first trial of each is warm-up
            times.setdefault((variant, n), []).append(seconds)
            tx_cpus.setdefault((variant, n), []).append(tx_cpu)
    seen.clear()
    for _ in plan:
        variant, n, cpu_s = rx_cpu.get(timeout=600)
        seen[(variant, n)] = seen.get((variant, n), 0) + 1
        if seen[(variant, n)] > 1:
            rx_cpus.setdefault((variant, n), []).append(cpu_s)
    tx.join()
    rx.join()

    print(
        f"\nOne model in flight at a time, two processes on {'Unix-domain sockets (ipc)' if ipc else 'loopback TCP'}; median of {args.repeat} interleaved trials\n"
    )
    print(
        "| params | MB | raw pyzmq GB/s | gossip GB/s | gossip / raw | with snapshot / raw | blocking receive / raw | raw + least checks / raw | per message: raw ms | gossip ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, k in sizes.items():
        mb = n * 4 / 1e6
        per = {v: statistics.median(times[(v, n)]) / k for v in VARIANTS}
        gbps = {v: n * 4 / per[v] / 1e9 for v in VARIANTS}
        print(
            f"| {n:,} | {mb:.2f} | {gbps['raw']:.2f} | {gbps['gossip']:.2f} | {per['raw'] / per['gossip']:.2f} "
            f"| {per['raw'] / per['gossip, snapshot']:.2f} | {per['raw'] / per['gossip, blocking receive']:.2f} | {per['raw'] / per['raw + least checks']:.2f} "
            f"| {per['raw'] * 1e3:.3f} | {per['gossip'] * 1e3:.3f} |"
        )

    print("\nThe same ratios trial by trial: raw's time over each variant's in the same round of trials (seconds apart),")
    print("median and range over the trials; a range says how much of a difference the machine's noise can make\n")
    print("| params | " + " | ".join(f"{v} / raw" for v in VARIANTS[1:]) + " |")
    print("|---" * len(VARIANTS) + "|")
    for n, _k in sizes.items():
        cells = []
        for v in VARIANTS[1:]:
            paired = [r / t for r, t in zip(times[("raw", n)], times[(v, n)], strict=True)]
            cells.append(f"{statistics.median(paired):.2f} ({min(paired):.2f}–{max(paired):.2f})")
        print(f"| {n:,} | " + " | ".join(cells) + " |")

    print("\nCPU per message, µs (process clocks, every thread; the same trials' medians): where gossip's extra time goes\n")
    print("| params | sender: raw | gossip | raw + least checks | receiver: raw | gossip | blocking receive | raw + least checks |")
    print("|---|---|---|---|---|---|---|---|")
    for n, k in sizes.items():
        tx = {v: statistics.median(tx_cpus[(v, n)]) / k * 1e6 for v in VARIANTS}
        rx = {v: statistics.median(rx_cpus[(v, n)]) / k * 1e6 for v in VARIANTS}
        print(
            f"| {n:,} | {tx['raw']:.0f} | {tx['gossip']:.0f} | {tx['raw + least checks']:.0f} "
            f"| {rx['raw']:.0f} | {rx['gossip']:.0f} | {rx['gossip, blocking receive']:.0f} | {rx['raw + least checks']:.0f} |"
        )

    print("\nWhat the goal (>= 0.9 of raw) leaves: a message may take at most raw's time / 0.9, about 11 % more than raw.")
    print("Per message, µs above raw (medians of the same trials): the socket choices alone, those sockets carrying")
    print("validated messages with nothing else (the floor for a node that keeps gossip's memory bounds and checks")
    print("its input, no event loop), and gossip; the last column is that floor's ratio to raw\n")
    print("| params | raw µs | budget: + µs | gossip's sockets: + µs | sockets + least checks: + µs | gossip: + µs | floor / raw |")
    print("|---|---|---|---|---|---|---|")
    for n, k in sizes.items():
        per = {v: statistics.median(times[(v, n)]) / k * 1e6 for v in VARIANTS}
        sockets, floor = "gossip's sockets", "gossip's sockets + least checks"
        print(
            f"| {n:,} | {per['raw']:.0f} | {per['raw'] / 0.9 - per['raw']:.0f} | {per[sockets] - per['raw']:+.0f} "
            f"| {per[floor] - per['raw']:+.0f} | {per['gossip'] - per['raw']:+.0f} | {per['raw'] / per[floor]:.2f} |"
        )


if __name__ == "__main__":
    main()
