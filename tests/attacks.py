"""Connection-level attacks on a live node, each run as its own process: ``python -m tests.attacks NAME ...``.

What they do is what an attacker who can reach a node's ports does, with plain sockets (no gossip
code): hold idle TCP connections that never finish the ZMTP greeting, reconnect under one routing id
with queued messages, stream a multipart message that never ends (a raw ZMTP 3.0 client: NULL
greeting, READY, then frames with the MORE flag forever), and half-send HTTP requests to /metrics.
Each prints one JSON line of what it saw (how many connections the node closed, bytes sent, ...).
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time


def zmtp_greeting() -> bytes:
    """ZMTP 3.0 greeting for the NULL mechanism, as a client (64 bytes)."""
    return b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


def zmtp_ready(socket_type: bytes) -> bytes:
    """The READY command with one property, Socket-Type."""
    name = b"Socket-Type"
    body = b"\x05READY" + bytes([len(name)]) + name + struct.pack(">I", len(socket_type)) + socket_type
    return bytes([0x04, len(body)]) + body


def zmtp_frame(data: bytes, more: bool) -> bytes:
    """One message frame (long form: 8-byte size)."""
    return bytes([0x03 if more else 0x02]) + struct.pack(">Q", len(data)) + data


def _closed_by_peer(sock: socket.socket) -> bool:
    """True once the other side closed (end of file or reset); never blocks."""
    try:
        return sock.recv(65536, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def flood(host: str, port: int, count: int, hold_s: float) -> dict[str, object]:
    """Open ``count`` connections that send half a ZMTP greeting and then nothing; hold them ``hold_s``."""
    conns: list[socket.socket] = []
    failed = 0
    for _ in range(count):
        try:
            s = socket.create_connection((host, port), timeout=5)
            s.settimeout(None)  # blocking mode: a MSG_DONTWAIT read must not wait for the timeout first
            s.sendall(zmtp_greeting()[:10])
            conns.append(s)
        except OSError:
            failed += 1
    opened = time.monotonic()
    closed_at: list[float] = []
    open_now = set(range(len(conns)))
    while time.monotonic() - opened < hold_s and open_now:
        for i in list(open_now):
            if _closed_by_peer(conns[i]):
                open_now.discard(i)
                closed_at.append(time.monotonic() - opened)
        time.sleep(0.05)
    for s in conns:
        s.close()
    return {
        "opened": len(conns),
        "failed": failed,
        "closed_by_node": len(closed_at),
        "still_open": len(open_now),
        "closed_within_s": round(max(closed_at), 2) if closed_at else None,
    }


def reconnects(host: str, port: int, count: int, queued: int, socket_type: str) -> dict[str, object]:
    """Connect ``count`` times with routing id b"same", queue ``queued`` messages, close after 5 ms."""
    import zmq

    ctx = zmq.Context()
    sent = 0
    for _ in range(count):
        s = ctx.socket(getattr(zmq, socket_type))
        s.setsockopt(zmq.IDENTITY, b"same")
        s.setsockopt(zmq.SNDHWM, queued + 1)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(f"tcp://{host}:{port}")
        for _ in range(queued):
            try:
                s.send_multipart([b"same", b"x" * 100], zmq.NOBLOCK)
                sent += 1
            except zmq.Again:  # refused at the handshake: nothing to queue on
                break
        time.sleep(0.005)
        s.close(linger=0)
    ctx.term()
    return {"reconnects": count, "queued": sent}


def endless(host: str, port: int, frame_bytes: int, seconds: float, max_bytes: int, socket_type: str) -> dict[str, object]:
    """One ZMTP connection as ``socket_type``, streaming ``frame_bytes`` frames with MORE set, never a last one,
    for ``seconds`` or ``max_bytes``, whichever comes first."""
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(zmtp_greeting())
    got = b""
    while len(got) < 64:
        chunk = s.recv(64 - len(got))
        if not chunk:
            return {"sent_bytes": 0, "closed_by_node": True, "note": "closed during the greeting"}
        got += chunk
    s.sendall(zmtp_ready(socket_type.encode()))
    chunk = zmtp_frame(b"x" * frame_bytes, more=True) * max(1, 65536 // (frame_bytes + 9))
    sent = 0
    closed = stalled = False
    t0 = time.monotonic()
    s.settimeout(1.0)
    while time.monotonic() - t0 < seconds and sent < max_bytes:
        try:
            s.sendall(chunk)
            sent += len(chunk)
        except TimeoutError:  # the node stopped reading (or closed under a zero window: the kernel resets it later)
            stalled = True
            continue
        except OSError:
            closed = True
            break
    s.close()
    return {"sent_bytes": sent, "closed_by_node": closed, "stalled": stalled, "seconds": round(time.monotonic() - t0, 2)}


def slow_http(host: str, port: int, count: int, hold_s: float) -> dict[str, object]:
    """Open ``count`` HTTP connections that send a request line and one header, never the blank line."""
    conns: list[socket.socket] = []
    failed = 0
    for _ in range(count):
        try:
            s = socket.create_connection((host, port), timeout=5)
            s.settimeout(None)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            conns.append(s)
        except OSError:
            failed += 1
    opened = time.monotonic()
    open_now = set(range(len(conns)))
    closed = 0
    while time.monotonic() - opened < hold_s and open_now:
        for i in list(open_now):
            if _closed_by_peer(conns[i]):
                open_now.discard(i)
                closed += 1
        time.sleep(0.05)
    for s in conns:
        s.close()
    return {"opened": len(conns), "failed": failed, "closed_by_node": closed, "still_open": len(open_now)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("attack", choices=["flood", "reconnects", "endless", "slow-http"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--hold", type=float, default=5.0, help="seconds to hold connections (flood, slow-http)")
    p.add_argument("--queued", type=int, default=2000)
    p.add_argument("--socket-type", default="PUSH", help="reconnects, endless: the ZeroMQ socket type it claims (PUSH, DEALER)")
    p.add_argument("--frame-bytes", type=int, default=60_000)
    p.add_argument("--seconds", type=float, default=5.0, help="endless: how long to stream at most")
    p.add_argument("--max-mb", type=float, default=320.0, help="endless: how much to stream at most (MB)")
    a = p.parse_args(argv)
    if a.attack == "flood":
        out = flood(a.host, a.port, a.count, a.hold)
    elif a.attack == "reconnects":
        out = reconnects(a.host, a.port, a.count, a.queued, a.socket_type)
    elif a.attack == "endless":
        out = endless(a.host, a.port, a.frame_bytes, a.seconds, int(a.max_mb * 1e6), a.socket_type)
    else:
        out = slow_http(a.host, a.port, a.count, a.hold)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
