"""How a node's messages leave: the send path of its model (chosen once), and every send, counted.

The model of a synchronous round leaves by one of five paths, decided at construction from the config and
the transport's capabilities (:class:`SendPath`): CHOCO's compressed delta; straight to ZeroMQ when it is
float32 — the live vector zero-copy when it is big enough to be worth tracking, else the live vector that
the socket copies inside ``send`` (no snapshot of our own: that would be a second copy); a narrower wire
dtype, which is a fresh copy anyway; else a snapshot the socket can read while the node trains (async
gossip, link emulation, which holds frames in Python).
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
import zmq

from gossip.config import RunConfig
from gossip.ids import NodeId
from gossip.learn.flat import FlatModel
from gossip.net.sendbuffers import SnapshotPool, track_live
from gossip.net.transport import Transport
from gossip.net.wire import Kind, encode
from gossip.net.zeromq import COPY_BELOW_BYTES
from gossip.node.core import NodeCore

__all__ = ["Outbox", "SendPath", "choose_send_path", "pushed_model"]

log = logging.getLogger("gossip.node")


class SendPath(enum.StrEnum):
    """How a synchronous round's model is handed to the transport (the summary's ``send_path``)."""

    COMPRESSED = "compressed"  # CHOCO: a top-k delta (or a dense resync) in fresh buffers
    SNAPSHOT = "snapshot"  # a copy into a reused buffer the socket reads while we train
    NARROWED = "narrowed"  # float16/bfloat16/int8 on the wire: encode makes the copy
    ZERO_COPY = "zero-copy"  # the live vector, tracked: mixed only once the transport let go
    SOCKET_COPY = "socket-copy"  # the live vector's bytes, copied by the socket inside send


def choose_send_path(cfg: RunConfig, transport: Transport, numel: int, device: str = "cpu") -> SendPath:
    """The send path of this node's models (see the module), from the config, the transport's ``zero_copy`` and
    where the model lives (on a GPU: always a snapshot, the one device-to-host copy of a send)."""
    direct = cfg.transport.zero_copy and transport.zero_copy
    if cfg.compression.method == "topk":
        return SendPath.COMPRESSED
    if cfg.training.mode != "sync" or device != "cpu":
        return SendPath.SNAPSHOT
    if cfg.transport.wire_dtype != "float32":
        return SendPath.NARROWED
    if direct:
        return SendPath.ZERO_COPY if numel * 4 >= COPY_BELOW_BYTES else SendPath.SOCKET_COPY
    return SendPath.SNAPSHOT


class Outbox:
    """Every message a node sends goes through :meth:`send`, which counts it (bytes and metrics)."""

    def __init__(self, core: NodeCore) -> None:
        self.core = core
        self.path = choose_send_path(core.cfg, core.transport, core.flat.layout.numel, core.device.type)
        self.bytes_out = 0

    def send(self, peer: NodeId, frames: Sequence[Any]) -> bool:
        """Hand a message to the transport, counting it; False if the peer is down or its queue full."""
        return self._counted(peer, sum(len(f) for f in frames), self.core.transport.send(peer, frames))

    def send_all(self, peers: Sequence[NodeId], frames: Sequence[Any]) -> list[NodeId]:
        """One message to each of ``peers`` (the transport may share work between them), counted per peer; the unsent."""
        nbytes = sum(len(f) for f in frames)
        unsent = self.core.transport.send_all(peers, frames)
        for peer in peers:
            self._counted(peer, nbytes, peer not in unsent)
        return unsent

    def _counted(self, peer: NodeId, nbytes: int, ok: bool) -> bool:
        if ok:
            self.bytes_out += nbytes
        self.core.metrics.sent(peer, nbytes, ok)
        return ok

    def say(self, kind: Kind, peer: NodeId | None = None) -> None:
        """Send a bodiless message (hello, welcome, bye) to ``peer``, or to every neighbour."""
        core = self.core
        for j in core.neighbours if peer is None else (peer,):
            self.send(j, encode(kind, src=core.id, round=core.round, run_id=core.run_id))

    def model_frames(self, t: int, loss: float) -> tuple[list[Any], zmq.MessageTracker | None]:
        """Round ``t``'s model message by this node's send path; the tracker of a zero-copy one (else None)."""
        core = self.core
        info = {"loss": loss} if math.isfinite(loss) else None
        if core.choco is not None:  # a top-k delta or a dense resync of our public copy, in fresh buffers
            out = core.choco.outgoing(core.flat.vector)
            frames = encode(
                out.kind,
                src=core.id,
                round=t,
                run_id=core.run_id,
                fingerprint=core.flat.layout.fingerprint,
                payload=out.values,
                indices=out.indices,
                numel=core.flat.layout.numel,
                info=info,
            )
            return frames, None
        tracker = None
        snapshot = core.snapshots.snapshot(core.flat.vector) if self.path is SendPath.SNAPSHOT else None
        payload: torch.Tensor | memoryview
        if snapshot is not None:  # the one copy the socket needs, into a reused buffer
            payload = snapshot
        elif self.path is SendPath.NARROWED:  # encode makes the float16/bfloat16/int8 copy
            payload = core.flat.vector
        else:  # the live vector's bytes, viewed once: copied by the socket below 1 MiB, else tracked zero-copy
            payload = core.flat.wire_bytes
        frames = encode(
            Kind.MODEL,
            src=core.id,
            round=t,
            run_id=core.run_id,
            fingerprint=core.flat.layout.fingerprint,
            payload=payload,
            dtype=core.cfg.transport.wire_dtype,
            info=info,
        )
        if self.path is SendPath.ZERO_COPY:
            frames, tracker = track_live(frames)
        elif snapshot is not None:
            frames = core.snapshots.track(snapshot, frames)
        del payload, snapshot
        return frames, tracker

    def push(self, peer: NodeId, t: int, loss: float, mass: float | None) -> bool:
        """Async gossip's push: a snapshot of the model (with its push-sum mass) to ``peer``; False if refused."""
        core = self.core
        frames = pushed_model(
            core.snapshots, core.flat, src=core.id, round_=t, run_id=core.run_id, dtype=core.cfg.transport.wire_dtype, mass=mass, loss=loss
        )
        return self.send(peer, frames)


def pushed_model(
    snapshots: SnapshotPool,
    flat: FlatModel,
    *,
    src: int,
    round_: int,
    run_id: bytes,
    dtype: str,
    mass: float | None,
    loss: float = math.nan,
) -> list[Any]:
    """The frames of an async push: a snapshot of ``flat``'s vector (a reused buffer once ZeroMQ let go, see
    :mod:`gossip.net.sendbuffers`) with its push-sum ``mass`` and, when finite, its training ``loss``."""
    snapshot = snapshots.snapshot(flat.vector)
    info = {"loss": loss} if math.isfinite(loss) else None
    frames = encode(
        Kind.MODEL,
        src=src,
        round=round_,
        run_id=run_id,
        fingerprint=flat.layout.fingerprint,
        payload=snapshot,
        dtype=dtype,
        mass=mass,
        info=info,
    )
    return snapshots.track(snapshot, frames)
