"""CURVE for :class:`~gossip.net.zeromq.ZmqTransport`: the key files, and the ZAP handler that admits keys.

The PULL is a CURVE server and every PUSH a CURVE client that knows its peer's public key. A ZAP handler
in the same context admits only the public keys of the configured neighbours and tags each connection with
the owner's node id (ZeroMQ's ``User-Id``), which then *is* the sender. An unknown key never completes the
handshake; ``on_unauthenticated`` is called so the node can count it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.asyncio

from gossip.errors import TransportError

__all__ = ["ZAP_ENDPOINT", "CurveKeys", "ZapHandler", "generate_keys", "key_owners", "load_keys"]

ZAP_ENDPOINT = "inproc://zeromq.zap.01"


@dataclass(frozen=True)
class CurveKeys:
    """A node's CURVE key pair and the public keys of the nodes it talks to (z85, 40 bytes each)."""

    public: bytes
    secret: bytes
    peers: Mapping[int, bytes] = field(default_factory=dict)


def generate_keys(directory: str | Path, nodes: int) -> list[Path]:
    """Write ``node-<i>.key`` (public) and ``node-<i>.key_secret`` (mode 0600) for every node."""
    import zmq.auth

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(nodes):
        public, secret = zmq.auth.create_certificates(str(out), f"node-{i}")
        Path(secret).chmod(0o600)
        written += [Path(public), Path(secret)]
    return written


def load_keys(directory: str | Path, me: int, peers: Sequence[int]) -> CurveKeys:
    """Load our key pair and our peers' public keys; a missing or bad file is a TransportError."""
    import zmq.auth

    base = Path(directory)

    def read(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
        if not path.exists():
            raise TransportError(f"CURVE key file not found: {path} (create keys with: gossip keys --nodes N --out {base})")
        try:
            public, sec = zmq.auth.load_certificate(str(path))
        except (ValueError, OSError) as exc:
            raise TransportError(f"CURVE key file {path} is not a ZeroMQ certificate: {exc}") from None
        if secret and not sec:
            raise TransportError(f"CURVE key file {path} holds no secret key")
        return public, sec

    public, secret = read(base / f"node-{me}.key_secret", True)
    assert secret is not None
    return CurveKeys(public, secret, {j: read(base / f"node-{j}.key", False)[0] for j in peers})


def key_owners(directory: str | Path, me: int) -> list[int]:
    """The node ids with a public key file ``node-<i>.key`` in ``directory``, but ``me``: an open network's allow-list.

    A member admits exactly these keys and dials only these members; a key added later is read when the member starts.
    """
    ids = []
    for path in Path(directory).glob("node-*.key"):
        number = path.name[len("node-") : -len(".key")]
        if number.isascii() and number.isdigit() and len(number) <= 6 and int(number) != me:
            ids.append(int(number))
    return sorted(ids)


class ZapHandler:
    """Answer ZeroMQ's authentication requests: admit known keys, name their owner as User-Id."""

    def __init__(self, me: int, on_unauthenticated: Callable[[], None]) -> None:
        self.me = me
        self.on_unauthenticated = on_unauthenticated
        self._key_owner: dict[bytes, int] = {}
        self._zap: zmq.asyncio.Socket | None = None
        self._zap_task: asyncio.Task[None] | None = None

    def allow(self, node: int, public_key: bytes) -> None:
        """Admit ``node``'s public key."""
        self._key_owner[bytes(public_key)] = int(node)

    def start(self, ctx: zmq.asyncio.Context, curve: CurveKeys) -> None:
        """Admit the neighbours' keys and serve ZAP on ``ctx`` (which must be the node's own context)."""
        for node, key in curve.peers.items():
            self.allow(node, key)
        zap = ctx.socket(zmq.REP)
        zap.setsockopt(zmq.LINGER, 0)
        try:
            zap.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as exc:
            zap.close(linger=0)
            raise TransportError(f"node {self.me}: CURVE needs its own ZeroMQ context ({exc.strerror})") from None
        self._zap = zap
        self._zap_task = asyncio.get_running_loop().create_task(self._serve(zap), name=f"zap-{self.me}")

    async def _serve(self, zap: zmq.asyncio.Socket) -> None:
        from zmq.utils import z85

        while True:
            request = await zap.recv_multipart()
            version, request_id = request[0], request[1]
            mechanism = request[5] if len(request) > 5 else b""
            key = request[6] if mechanism == b"CURVE" and len(request) > 6 else b""
            owner = self._key_owner.get(z85.encode(key)) if len(key) == 32 else None
            if owner is None:
                self.on_unauthenticated()
                await zap.send_multipart([version, request_id, b"400", b"unknown key", b"", b""])
            else:
                await zap.send_multipart([version, request_id, b"200", b"OK", str(owner).encode(), b""])

    def close(self) -> None:
        """Stop serving and close the ZAP socket."""
        if self._zap_task is not None:
            self._zap_task.cancel()
            self._zap_task = None
        if self._zap is not None:
            self._zap.close(linger=0)
            self._zap = None
