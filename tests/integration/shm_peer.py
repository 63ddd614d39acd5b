"""A local process that talks to a node's shared-memory path, for tests/integration/test_shared_memory.py.

Run as ``python -c <this file's text> MODE JSON``. Modes:

- ``offers``: standard library only (it also runs as another user): hand over each ring the JSON lists (one
  well-formed, the others malformed or foreign) and print the one-byte answers as JSON.
- ``die-mid-write``: a real sender (gossip's transport) sends one model through a ring, then begins writing
  that slot again and stops there, printing ``mid-write``: the test kills it.
- ``claim``: hand over a well-formed ring under a neighbour's id, then send hostile references to it over
  ZeroMQ, one message per case, and print ``sent``.
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import socket
import struct
import sys
import time

OFFER = struct.Struct("<8s8sIIIIQ")
SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL


def ring_fd(size: int, *, sealed: bool = True) -> int:
    fd = os.memfd_create("hostile", os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    if sealed:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
    return fd


def offer(name: bytes, message: bytes, fds: list[int]) -> bytes:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    conn.settimeout(5)
    conn.connect(name)
    socket.send_fds(conn, [message], fds) if fds else conn.send(message)
    try:
        return conn.recv(1)
    finally:
        conn.close()


def offers(args: dict) -> None:
    """Every case a receiver must refuse: another run, another node, a stranger, another shape, a bad descriptor."""
    name = bytes.fromhex(args["name"])
    run = bytes.fromhex(args["run_id"])
    src, dst, slots, slot_bytes, size = args["src"], args["dst"], args["slots"], args["slot_bytes"], args["size"]
    cases = {
        "valid": (OFFER.pack(b"gossipRG", run, src, dst, 1, slots, slot_bytes), size, True),
        "another_run": (OFFER.pack(b"gossipRG", b"x" * 8, src, dst, 1, slots, slot_bytes), size, True),
        "another_node": (OFFER.pack(b"gossipRG", run, src, dst + 1, 1, slots, slot_bytes), size, True),
        "not_a_neighbour": (OFFER.pack(b"gossipRG", run, src + 5, dst, 1, slots, slot_bytes), size, True),
        "another_shape": (OFFER.pack(b"gossipRG", run, src, dst, 1, slots, slot_bytes + 4), size, True),
        "unsealed": (OFFER.pack(b"gossipRG", run, src, dst, 1, slots, slot_bytes), size, False),
        "short_file": (OFFER.pack(b"gossipRG", run, src, dst, 1, slots, slot_bytes), size - mmap.PAGESIZE, True),
        "no_descriptor": (OFFER.pack(b"gossipRG", run, src, dst, 1, slots, slot_bytes), 0, True),
        "malformed": (b"gossipRG", size, True),
    }
    answers = {}
    for case in args["cases"]:
        message, fd_size, sealed = cases[case]
        fds = [ring_fd(fd_size, sealed=sealed)] if fd_size else []
        answers[case] = offer(name, message, fds).hex()
        for fd in fds:
            os.close(fd)
    print(json.dumps(answers), flush=True)


def die_mid_write(args: dict) -> None:
    import asyncio

    import numpy as np

    from gossip.ids import NodeId
    from gossip.net.rings import HEADER_BYTES
    from gossip.net.shm import SharedMemoryTransport
    from gossip.net.zeromq import ZmqTransport

    async def main() -> None:
        peer = {NodeId(args["dst"]): args["dst_address"]}
        inner = ZmqTransport(NodeId(args["src"]), args["src_address"], peer)
        transport = SharedMemoryTransport(
            inner,
            run_id=bytes.fromhex(args["run_id"]),
            me=NodeId(args["src"]),
            address=args["src_address"],
            peers=peer,
            slot_bytes=args["slot_bytes"],
        )
        await transport.start()
        model = np.full(args["slot_bytes"] // 4, 1.5, dtype=np.float32)
        for _ in range(1000):  # until one model went through the ring (ZeroMQ's link up, the ring taken)
            transport.send(NodeId(args["dst"]), [b"header", memoryview(model).cast("B")])
            if transport.sent:
                break
            await asyncio.sleep(0.01)
        ring = transport._ring
        assert ring is not None and transport.sent == 1, "the model did not leave through a ring"
        slot = (ring._next - 1) % ring.geometry.slots  # the slot of the reference the receiver holds
        word = slot * (HEADER_BYTES // 8)
        start = ring.geometry.offset(slot)
        ring._words[word] += 1  # the next lap's write of that slot begins ...
        ring._bytes[start : start + len(model) * 2] = 0xFF  # ... and gets half way (NaNs) when the process dies
        print("mid-write", flush=True)
        time.sleep(600)

    asyncio.run(main())


def claim(args: dict) -> None:
    import zmq

    name, run = bytes.fromhex(args["name"]), bytes.fromhex(args["run_id"])
    src, dst, slots, slot_bytes, size = args["src"], args["dst"], args["slots"], args["slot_bytes"], args["size"]
    fd = ring_fd(size)
    ring = mmap.mmap(fd, size)
    generation = 7
    answer = offer(name, OFFER.pack(b"gossipRG", run, src, dst, generation, slots, slot_bytes), [fd])
    assert answer == b"\x01", answer
    ref = struct.Struct("<IIQQ")
    headers = args["headers_bytes"]
    ring[headers : headers + slot_bytes] = struct.pack("<f", float("nan")) * (slot_bytes // 4)  # slot 0: NaNs ...
    ring[0:16] = struct.pack("<QQ", 2, slot_bytes)  # ... whole, seq 2
    cases = {
        "another_generation": ref.pack(0, generation + 1, 2, slot_bytes),
        "past_the_last_slot": ref.pack(slots, generation, 2, slot_bytes),
        "never_written": ref.pack(1, generation, 2, slot_bytes),
        "non_finite": ref.pack(0, generation, 2, slot_bytes),
    }
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.connect(args["dst_address"])
    header = bytes.fromhex(args["header"])
    for case in args["cases"]:
        push.send_multipart([str(src).encode(), header, b"", cases[case]])
    print("sent", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    {"offers": offers, "die-mid-write": die_mid_write, "claim": claim}[sys.argv[1]](json.loads(sys.argv[2]))
