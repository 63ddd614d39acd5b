"""Move frames between nodes over ZeroMQ: the real :class:`~gossip.net.transport.Transport`, with CURVE and its keys.

Socket shape (after decentralizepy's TCP.py, without its flaws): one bound PULL receives from
everybody; one PUSH per peer sends. Every message starts with an envelope frame, the sender's node
id, which the transport hands up as the sender (with CURVE: the owner of the authenticated key
instead), so the node checks it against the header's ``src``.

Choices and why:
- PULL/PUSH, not ROUTER/DEALER: a ROUTER files each connection under the routing id the *peer*
  chose, and never reads again from a connection whose id it already holds (or handed over):
  that connection's engine stops at the high-water mark, never notices its peer closing, and keeps
  its descriptor until the socket closes (libzmq issues 3238 and 4407). A PULL reads every
  connection in turn, so each one is closed when
  its peer goes. The node never answers through the inbound socket, so nothing is lost.
- A :class:`~gossip.net.connections.ConnectionGuard` thread caps the connections the PULL holds (per
  peer address and in total, sized from the descriptor limit), refuses a connection that streams an
  unfinished message, and ``HANDSHAKE_IVL`` closes one that never finishes its ZMTP handshake.
- ``IMMEDIATE=1`` on PUSH sockets: a message to a peer that is down fails at once instead of queueing
  without bound; the node counts it and moves on (a dead neighbour costs a timeout, not memory).
- Small high-water marks (``queue_messages``) on both sides: memory per peer is bounded by a few
  models, whatever a peer sends.
- ``MAXMSGSIZE``: a frame larger than the biggest legal message never reaches Python; libzmq drops
  the connection instead.
- A short linger on close (``close_linger_ms``, 1 s): the last round's model still reaches a slower
  neighbour, and shutting down never blocks for long on a dead one.
- Sends are non-blocking. A frame of ``COPY_BELOW_BYTES`` (1 MiB) or more is zero-copy: pyzmq keeps a
  reference to the buffer until libzmq has sent it, so the caller passes memory it will not mutate
  meanwhile (a snapshot, or a tracked live vector); a smaller frame is copied inside ``send``.
- Frames are received one by one and at most ``MAX_FRAMES`` are kept: a message with thousands of
  parts is drained and reported as such (``frames=None``), never accumulated in a Python list.

CURVE (optional, :class:`CurveKeys`): the PULL is a CURVE server and every PUSH a CURVE client
that knows its peer's public key. A ZAP handler in the same context admits only the public keys of
the configured neighbours and tags each connection with the owner's node id (ZeroMQ's ``User-Id``),
which then *is* the sender — the envelope is ignored. An unknown key never completes the
handshake; ``on_unauthenticated`` is called so the node can count it.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import zmq
import zmq.asyncio

from gossip.errors import TransportError
from gossip.ids import NodeId
from gossip.net.connections import ConnectionGuard, ConnectionLimits
from gossip.net.curve import CurveKeys, ZapHandler, generate_keys, load_keys
from gossip.net.transport import Received

__all__ = [
    "COPY_BELOW_BYTES",
    "ConnectionLimits",
    "CurveKeys",
    "ZmqTransport",
    "generate_keys",
    "load_keys",
    "parse_identity",
]

MAX_FRAMES = 4  # the largest legal message is a header plus a few payload frames
# Frames smaller than this are copied by pyzmq inside ``send`` (its documented ``copy_threshold``, set
# on every PUSH): a sender may change the memory as soon as ``send`` returns. From here up a frame
# leaves zero-copy, tracked: one memcpy is cheaper than pyzmq's bookkeeping for a shared buffer (a
# MessageTracker, and a wake-up of pyzmq's garbage thread when libzmq lets go) until about 1 MiB.
COPY_BELOW_BYTES = 1 << 20
# pyzmq's constants are enum members; plain ints skip an enum operation per call on the per-message path
_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLOUT = int(zmq.POLLOUT)
_POLLIN = int(zmq.POLLIN)
_SNDMORE = int(zmq.SNDMORE)
_SRCFD = int(zmq.SRCFD)
YIELD_EVERY = 16  # messages received back to back before the receiver lets the event loop run once


def identity_of(node_id: int) -> bytes:
    """The envelope a node's messages start with: its decimal id."""
    return str(int(node_id)).encode()


def parse_identity(identity: bytes) -> int | None:
    """The node id in an envelope, or ``None`` for anything that is not a short decimal number."""
    if not 0 < len(identity) <= 7 or not identity.isdigit():
        return None
    return int(identity)


class ZmqTransport:
    """ZeroMQ over TCP (or ipc): a PULL bound at ``listen``, a PUSH per peer.

    ``limits`` bounds what the PULL accepts (:mod:`gossip.net.connections`; ``None``: only the handshake
    deadline of 30 s that libzmq applies by default); ``on_refused(reason)``, when set, is told of
    each refused connection, from the guard's thread.
    """

    zero_copy = True  # frames of COPY_BELOW_BYTES or more are read by libzmq after send returns
    dropped = 0  # a refused send returns False; nothing is lost on purpose
    in_memory = (0, 0)  # every model travels through the socket (gossip.net.shm wraps this for the same host)

    def __init__(
        self,
        me: NodeId,
        listen: str,
        peers: Mapping[NodeId, str],
        *,
        queue_messages: int = 4,
        max_message_bytes: int = -1,
        context: zmq.asyncio.Context | None = None,
        close_linger_ms: int = 1000,
        curve: CurveKeys | None = None,
        on_unauthenticated: Callable[[], None] | None = None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.me = me
        self.curve = curve
        self.on_unauthenticated = on_unauthenticated
        self.limits = limits
        self.on_refused: Callable[[str], None] | None = None
        self.guard: ConnectionGuard | None = None
        self._envelope = identity_of(me)
        self._zap = ZapHandler(me, self._unauthenticated)
        self.listen = listen
        self._peer_addresses = dict(peers)
        self._hwm = queue_messages
        self._max_bytes = max_message_bytes
        self._linger_ms = close_linger_ms
        self._own_context = context is None
        self._ctx = context
        # The PULL is a plain socket read with NOBLOCK; the event loop watches its ZeroMQ FD (recv below)
        self._inbound: zmq.Socket[bytes] | None = None
        self._inbound_fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None  # watches the PULL's FD
        self._waiter: asyncio.Future[None] | None = None  # recv waiting for the FD
        self._in_a_row = 0  # messages received in a row without waiting
        self._sync_ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        # PUSH sockets are plain (synchronous) sockets on the same context: a NOBLOCK send must fail
        # right here with zmq.Again, not later inside an asyncio future nobody awaits.
        self._outbound: dict[NodeId, zmq.Socket[bytes]] = {}
        self.bound_address = ""

    async def start(self) -> None:
        """Bind the PULL and connect a PUSH to every peer; raises TransportError if the port is taken."""
        if self._ctx is None:
            self._ctx = zmq.asyncio.Context()
        self._sync_ctx = zmq.Context.shadow(self._ctx.underlying)
        if self.curve is not None:
            self._zap.start(self._ctx, self.curve)
        inbound = _pull_socket(self._sync_ctx, self.curve, self._hwm, self._max_bytes)
        if self.limits is not None:
            inbound.setsockopt(zmq.HANDSHAKE_IVL, max(1, int(self.limits.handshake_timeout_s * 1000)))
            # watching from before the bind: no accepted connection goes unseen
            self.guard = ConnectionGuard(inbound, self.limits, self._refused)
        try:
            inbound.bind(self.listen)
        except zmq.ZMQError as exc:
            if self.guard is not None:
                self.guard.stop()
                self.guard = None
            inbound.close(linger=0)
            if exc.errno == errno.EADDRINUSE:
                raise TransportError(f"node {self.me}: address {self.listen} is already in use") from None
            raise TransportError(f"node {self.me}: cannot listen on {self.listen}: {exc.strerror}") from None
        if self.guard is not None:
            self.guard.start()
        self._inbound = inbound
        self._inbound_fd = cast(int, inbound.getsockopt(zmq.FD))
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._inbound_fd, self._wake)
        self.bound_address = cast(bytes, inbound.getsockopt(zmq.LAST_ENDPOINT)).decode()
        for peer, address in self._peer_addresses.items():
            self.connect(peer, address)

    def _refused(self, reason: str) -> None:
        if self.on_refused is not None:
            self.on_refused(reason)

    def connect(self, peer: NodeId, address: str) -> None:
        """Open (or keep) a PUSH to ``peer``; libzmq reconnects by itself if the peer restarts."""
        if peer in self._outbound:
            return
        if self._sync_ctx is None:
            raise TransportError("transport not started")
        push = _push_socket(self._sync_ctx, self._hwm)
        if self.curve is not None:
            server_key = self.curve.peers.get(int(peer))
            if server_key is None:
                push.close(linger=0)
                raise TransportError(f"node {self.me}: no CURVE public key for node {peer}")
            push.setsockopt(zmq.CURVE_SERVERKEY, server_key)
            push.setsockopt(zmq.CURVE_PUBLICKEY, self.curve.public)
            push.setsockopt(zmq.CURVE_SECRETKEY, self.curve.secret)
        try:
            push.connect(address)
        except zmq.ZMQError as exc:
            push.close(linger=0)
            raise TransportError(f"node {self.me}: bad address for node {peer}: {address} ({exc.strerror})") from None
        self._peer_addresses[peer] = address
        self._outbound[peer] = push

    def peers(self) -> list[NodeId]:
        """The peers a PUSH is open to."""
        return list(self._outbound)

    def disconnect(self, peer: NodeId) -> None:
        """Close the PUSH to ``peer`` (a member that left): what is queued gets the close linger, no more."""
        push = self._outbound.pop(peer, None)
        self._peer_addresses.pop(peer, None)
        if push is not None:
            push.close(linger=self._linger_ms)

    def send(self, peer: NodeId, frames: Sequence[Any]) -> bool:
        push = self._outbound.get(peer)
        if push is None:
            return False
        try:
            _send_frames(push, self._envelope, frames)
        except zmq.Again:
            # libzmq learns that its I/O thread drained the queue from a command it reads at most about
            # once a millisecond on the send path, so a queue already empty can still look full. Reading
            # EVENTS processes pending commands at once; only a queue that is really full drops the message.
            if not cast(int, push.getsockopt(_EVENTS)) & _POLLOUT:
                return False
            try:
                _send_frames(push, self._envelope, frames)
            except zmq.Again:
                return False
        return True

    def send_all(self, peers: Sequence[NodeId], frames: Sequence[Any]) -> list[NodeId]:
        return [peer for peer in peers if not self.send(peer, frames)]

    def drop_queued(self, peers: Sequence[NodeId]) -> None:
        """Discard what is still queued to ``peers``: their PUSH sockets are closed at once and opened again.

        For a peer that stopped reading: its queued model goes (it would be stale anyway) and libzmq
        releases the buffers it held; the fresh PUSH reconnects by itself.
        """
        for peer in peers:
            push = self._outbound.pop(peer, None)
            if push is not None:
                push.close(linger=0)
                self.connect(peer, self._peer_addresses[peer])

    async def recv(self) -> Received:
        inbound = self._inbound
        if inbound is None:
            raise TransportError("transport not started")
        if self._in_a_row >= YIELD_EVERY:
            # a flood never starves the node: after a run of messages that were already waiting, let the
            # rest of the event loop (the round) run once
            self._in_a_row = 0
            await asyncio.sleep(0)
        # Ask EVENTS before reading instead of reading until zmq.Again: pyzmq builds every exception
        # with an import and a strerror, which cost more than the question (bench/transport.py)
        while True:
            if cast(int, inbound.getsockopt(_EVENTS)) & _POLLIN:
                try:
                    envelope = inbound.recv(_NOBLOCK, copy=False)
                    break
                except zmq.Again:  # gone with its peer's connection between the question and the read: wait
                    pass
            self._in_a_row = 0
            await self._readable()
        self._in_a_row += 1
        if self.guard is not None:
            self.guard.delivered(envelope.get(_SRCFD))  # the connection it came from finished a message
        # ZeroMQ delivers a multipart message whole: once its first frame is here, the rest is too.
        # ``Frame.more`` answers what getsockopt(RCVMORE) would, without a call into the socket.
        frames: list[Any] = []
        nbytes = 0
        count = 0
        more = envelope.more
        while more:
            frame = inbound.recv(_NOBLOCK, copy=False)
            more = frame.more
            count += 1
            nbytes += len(frame)
            if count <= MAX_FRAMES:
                frames.append(frame)
        if count > MAX_FRAMES:
            frames = []  # too many parts: drained, not kept; gossip.net.wire reports bad_frame_count
        if self.curve is not None:
            user = envelope.get("User-Id")
            sender = parse_identity(str(user).encode()) if user else None
        else:
            sender = parse_identity(envelope.bytes)
        return Received(sender, frames, nbytes)

    async def _readable(self) -> None:
        """Return once the PULL may have a message (or a spurious wake-up: the caller asks again).

        Why not ``zmq.asyncio``: its futures, callbacks and flag enums cost a good part of a small
        message's receive (bench/transport.py). ZeroMQ's FD is edge-triggered: it turns readable when
        the socket's state changes, and reading ``EVENTS`` re-arms it. The event loop watches the FD
        for the transport's whole life (:meth:`_wake` reads ``EVENTS``, so a readable FD never spins
        the loop); the caller asked ``EVENTS`` just before sleeping here, so a message that came in
        since the last wake-up does not wait for the next one.
        """
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        inbound, waiter = self._inbound, self._waiter
        if inbound is not None and cast(int, inbound.getsockopt(_EVENTS)) & _POLLIN and waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- CURVE ---------------------------------------------------------------------------------

    def allow(self, node: int, public_key: bytes) -> None:
        """Admit ``node``'s public key (the neighbours' keys are admitted at start)."""
        self._zap.allow(node, public_key)

    def _unauthenticated(self) -> None:
        if self.on_unauthenticated is not None:
            self.on_unauthenticated()

    async def close(self) -> None:
        """Close every socket; queued outgoing messages get ``close_linger_ms`` to leave, no more."""
        for push in self._outbound.values():
            push.close(linger=self._linger_ms)
        self._outbound.clear()
        if self._inbound is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._inbound_fd)
            if self.guard is not None:
                self.guard.stop()
                self.guard = None
            self._inbound.close(linger=0)
            self._inbound = None
        self._zap.close()
        if self._own_context and self._ctx is not None:
            self._ctx.term()
            self._ctx = None


def _send_frames(socket: zmq.Socket[bytes], envelope: bytes, frames: Sequence[Any]) -> None:
    """``send_multipart([envelope, *frames], NOBLOCK, copy=False)`` with int flags (pyzmq ORs enum flags per call).

    Only the first frame can raise ``zmq.Again``: once it is queued, libzmq takes the rest of the message.
    """
    socket.send(envelope, _NOBLOCK | _SNDMORE)
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        socket.send(frame, _NOBLOCK | _SNDMORE if i < last else _NOBLOCK, copy=False)


def _pull_socket(ctx: zmq.Context[zmq.Socket[bytes]], curve: CurveKeys | None, hwm: int, max_bytes: int) -> zmq.Socket[bytes]:
    """The inbound PULL, not yet bound: a CURVE server when ``curve`` is set, bounded queue and message size."""
    inbound = ctx.socket(zmq.PULL)
    inbound.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        inbound.setsockopt(zmq.CURVE_SERVER, 1)
        inbound.setsockopt(zmq.CURVE_PUBLICKEY, curve.public)
        inbound.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
    inbound.setsockopt(zmq.RCVHWM, hwm)
    inbound.setsockopt(zmq.MAXMSGSIZE, max_bytes)
    return inbound


def _push_socket(ctx: zmq.Context[zmq.Socket[bytes]], hwm: int) -> zmq.Socket[bytes]:
    """An outbound PUSH, not yet connected: fails at once for a peer that is down, reconnects by itself."""
    push = ctx.socket(zmq.PUSH)
    push.copy_threshold = COPY_BELOW_BYTES
    push.setsockopt(zmq.LINGER, 0)
    push.setsockopt(zmq.IMMEDIATE, 1)
    push.setsockopt(zmq.SNDHWM, hwm)
    push.setsockopt(zmq.RECONNECT_IVL, 100)
    push.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
    return push
