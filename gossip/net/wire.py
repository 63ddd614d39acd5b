"""Encode and decode one gossip message: a msgpack header frame plus raw tensor frames, never pickle.

Wire format v1 (one ZeroMQ multipart message)::

    frame 0   header, msgpack map, at most MAX_HEADER_BYTES
                v      int    protocol version (1)
                kind   str    "hello" | "welcome" | "model" | "delta" | "bye" | "merge" | "merge_view" | "merge_stats",
                              or a membership kind (``MEMBERSHIP_KINDS``: "join", "members", "shuffle", ...)
                run    bytes  8-byte run id (a message from another run is refused)
                src    int    sender node id (must equal the transport identity and be a neighbour)
                me     array  membership kinds only: the sender's own entry [id, address, key] (id == src)
                m      array  membership kinds only, optional: at most MAX_LISTED entries [id, address, key]
                round  int    sender's round
                fp     bytes  16-byte model fingerprint (must equal ours) — model messages only
                dtype  str    payload dtype: float32 | float16 | bfloat16 | int8
                n      int    payload element count (must equal our model's)
                k      int    delta only: how many (index, value) pairs follow, 0 <= k <= n
                info   map    optional str → float scalars (loss, samples): metrics only, never weights
                w      float  optional push-sum mass (model messages, async push-sum only): 0 < w <= nodes
    frame 1   the payload: n elements of dtype, little-endian (model, merge, merge_stats); for int8,
              ceil(n / 1024) float32 block scales then n int8 values (``gossip.net.codec``); or
              n bytes of 0/1, one per node of the run (merge_view: the nodes whose model the sender holds), or
              (delta, CHOCO-gossip's top-k update of the sender's public copy, ``gossip.node.choco``) k int32
              indices, strictly increasing in [0, n), then their k float32 values

The merge kinds (the single global merge at the end, ``gossip.node.merge``) may come from any node of the run,
not only neighbours, but only when the node has the merge enabled and only for its merge epoch
(``round`` must equal ``Expectation.merge_epoch``); they always travel as float32 so that every node
averages exactly the same numbers.

The membership kinds (open membership, ``gossip.topology.membership``) are one header frame each. They may
come from any member, not only neighbours, but only when the node is in an open network
(``Expectation.policy`` set); every member they name is checked by ``gossip.net.members``, its address
against the run's :class:`~gossip.addresses.AddressPolicy`.

The receiver never builds a shape from the network: the layout of a payload is our own model's,
chosen by the fingerprint. Checks run cheapest first, before anything proportional to the payload
is allocated: frame count, header size, msgpack with explicit limits, field types, version, run,
kind, sender, fingerprint, round window, exact payload size, then finiteness. Each failure is a
:class:`RejectReason`, the label of ``gossip_messages_rejected_total{reason=...}``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import torch

from gossip.addresses import AddressPolicy
from gossip.errors import RejectReason, WireError
from gossip.ids import NodeId
from gossip.net.codec import int8_nbytes, quantise_int8
from gossip.net.members import member_fields, members_of
from gossip.net.payload import all_finite, byte_view, finite_float32, int8_payload, tensor_view, widened
from gossip.topology import membership
from gossip.topology.members import Member

__all__ = [
    "MAX_HEADER_BYTES",
    "MEMBERSHIP_KINDS",
    "MERGE_KINDS",
    "PROTOCOL_VERSION",
    "Expectation",
    "Kind",
    "Message",
    "all_finite",
    "decode",
    "encode",
]

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 4096
RUN_ID_BYTES = 8
FINGERPRINT_BYTES = 16
MAX_INFO_ITEMS = 16

_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "int8": torch.int8}
_ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}  # int8 is block-quantised: its size is int8_nbytes(n)


class Kind(enum.StrEnum):
    """What a message is for."""

    HELLO = "hello"  # "I am up": the start-up handshake; carries no payload
    WELCOME = "welcome"  # the answer to a hello, so both sides know the other is up
    MODEL = "model"  # my model after round `round`'s local steps (CHOCO-gossip: my public copy, in full)
    DELTA = "delta"  # CHOCO-gossip: top-k entries to add to my public copy (compression.method = "topk")
    BYE = "bye"  # I am leaving after round `round`; do not wait for me
    MERGE = "merge"  # my final model, for the single global merge (any node of the run may send it)
    MERGE_VIEW = "merge_view"  # the set of nodes whose final model I hold: the merge's agreement step
    MERGE_STATS = "merge_stats"  # the merged model with my re-estimated normalisation statistics
    # open membership (gossip.topology.membership says what each one does): a header only, naming members
    JOIN = "join"  # let me in: answered with members
    MEMBERS = "members"  # a sample of my view and me, for a newcomer
    SHUFFLE = "shuffle"  # Cyclon: some entries of my view, for some of yours
    SHUFFLE_REPLY = "shuffle_reply"  # Cyclon: the entries in return
    LINK = "link"  # be my neighbour
    LINK_OK = "link_ok"  # we are neighbours now
    LINK_NO = "link_no"  # I am full; here are some of my neighbours instead
    UNLINK = "unlink"  # we are no longer neighbours
    HEARTBEAT = "heartbeat"  # I am alive (on each link)
    LEAVE = "leave"  # I am leaving; here are my other neighbours as replacements
    STATE_REQUEST = "state_request"  # send me your model


MERGE_KINDS = frozenset({Kind.MERGE, Kind.MERGE_VIEW, Kind.MERGE_STATS})
MEMBERSHIP_KINDS = frozenset(Kind(k) for k in membership.MEMBERSHIP_KINDS)  # the state machine's names, each a Kind
_KINDS = {str(k): k for k in Kind}  # a dict lookup: Kind(text) costs an enum call per message
_VECTOR_KINDS = frozenset({Kind.MODEL, Kind.DELTA, Kind.MERGE, Kind.MERGE_STATS})


@dataclass(frozen=True)
class Expectation:
    """What a valid message must look like at this node, right now."""

    run_id: bytes
    fingerprint: bytes
    numel: int
    node_count: int
    neighbours: frozenset[int]
    round_min: int = 0  # oldest round still useful
    round_max: int = 1 << 62  # newest round we buffer
    merge_epoch: int = -1  # the round tag of this run's global merge; -1 = merge disabled
    policy: AddressPolicy | None = None  # the addresses members may have; None = a fixed-topology run (no membership kinds)
    me: Member | None = None  # this node's own entry: a peer may not name our id with another address


@dataclass(frozen=True)
class Message:
    """A validated message. ``payload`` is float32 and may be a read-only view of the socket frame."""

    kind: Kind
    src: NodeId
    round: int
    payload: torch.Tensor | None = None
    info: Mapping[str, float] = field(default_factory=dict)
    nbytes: int = 0
    mass: float | None = None  # push-sum mass (async push-sum only)
    members: frozenset[NodeId] | None = None  # merge_view: the nodes whose model the sender holds
    indices: torch.Tensor | None = None  # delta: int32 positions of the ``payload`` values, strictly increasing
    me: Member | None = None  # membership kinds: the sender's own entry
    listed: tuple[Member, ...] = ()  # membership kinds: the members the sender names, in its order


def encode(
    kind: Kind,
    *,
    src: int,
    round: int,
    run_id: bytes,
    fingerprint: bytes = b"",
    payload: torch.Tensor | memoryview | None = None,
    dtype: str = "float32",
    info: Mapping[str, float] | None = None,
    mass: float | None = None,
    members: tuple[bool, ...] | None = None,
    indices: torch.Tensor | None = None,
    numel: int = 0,
    me: Member | None = None,
    listed: Sequence[Member] = (),
) -> list[bytes | memoryview]:
    """Frames for one message; the payload frame is a zero-copy view of ``payload`` when it is float32.

    ``payload`` may also be the bytes of a float32 vector as a memoryview (``FlatModel.wire_bytes``),
    sent as they are: the form of a node's live model, which costs no torch call per message.

    The caller must keep ``payload`` unchanged until ZeroMQ has sent it (a snapshot, or the live vector of a node that does
    not write it before ZeroMQ let go: ``gossip.net.sendbuffers.track_live``): with ``copy=False`` the socket reads the
    memory later. A delta passes ``indices`` (int32, strictly increasing), ``payload`` (their float32 values) and the
    model's ``numel``; a membership kind its sender's own entry ``me`` and at most ``MAX_LISTED`` others in ``listed``.
    """
    header: dict[str, Any] = {"v": PROTOCOL_VERSION, "kind": str(kind), "run": run_id, "src": int(src), "round": int(round)}
    header.update(member_fields(kind in MEMBERSHIP_KINDS, me, listed))
    frames: list[bytes | memoryview] = []
    if indices is not None:
        if not isinstance(payload, torch.Tensor) or dtype != "float32" or indices.numel() != payload.numel():
            raise ValueError("a delta needs as many float32 values as indices")
        header.update(fp=fingerprint, dtype=dtype, n=int(numel), k=indices.numel())
        frames.append(indices.to(torch.int32).numpy().tobytes() + payload.to(torch.float32).numpy().tobytes())
    elif isinstance(payload, memoryview):  # a float32 vector's bytes (FlatModel.wire_bytes): no torch call
        if dtype != "float32" or payload.format != "B" or payload.ndim != 1 or len(payload) % 4:
            raise ValueError("a memoryview payload must be the bytes of a float32 vector")
        header.update(fp=fingerprint, dtype=dtype, n=len(payload) // 4)
        frames.append(payload)
    elif payload is not None:
        if dtype not in _DTYPES:
            raise ValueError(f"unsupported wire dtype {dtype!r}")
        flat = payload.detach().reshape(-1)
        header.update(fp=fingerprint, dtype=dtype, n=flat.numel())
        if dtype == "int8":  # a fresh buffer: the socket never reads the caller's memory
            frames.append(quantise_int8(flat))
        else:  # .to and .contiguous return the tensor itself when it already is both: zero-copy
            flat = flat.to(_DTYPES[dtype]).contiguous()
            raw = flat.view(torch.int16) if dtype == "bfloat16" else flat  # bfloat16 has no numpy dtype: its bytes as int16
            frames.append(memoryview(raw.numpy()).cast("B"))  # type: ignore[arg-type]  # numpy arrays export the buffer protocol
    if members is not None:
        header["n"] = len(members)
        frames.append(bytes(1 if m else 0 for m in members))
    if info:
        header["info"] = {str(k): float(v) for k, v in info.items()}
    if mass is not None:
        header["w"] = float(mass)
    return [msgpack.packb(header, use_bin_type=True), *frames]


def decode(frames: Sequence[Any], expect: Expectation, sender: int | None) -> Message:
    """Validate and decode the frames of one message, or raise :class:`WireError` with the reason.

    ``sender`` is the node id the *transport* vouches for (routing id, or the CURVE key's owner);
    ``None`` when the transport identity is not a node id at all.
    """
    if not 1 <= len(frames) <= 2:
        raise WireError(RejectReason.BAD_FRAME_COUNT, f"{len(frames)} frames")
    head = byte_view(frames[0])
    if len(head) > MAX_HEADER_BYTES:
        raise WireError(RejectReason.TOO_LARGE, f"header of {len(head)} bytes")
    header = _unpack_header(head)
    kind_, src, round_ = _who(header, expect, sender)
    info = _info(header.get("info"))
    if kind_ in MEMBERSHIP_KINDS:
        if len(frames) != 1:
            raise WireError(RejectReason.BAD_FRAME_COUNT, f"{kind_} with a payload")
        me, listed = members_of(header, expect.policy, expect.me, src)
        return Message(kind_, NodeId(src), round_, None, info, len(head), me=me, listed=listed)
    if kind_ not in _VECTOR_KINDS and kind_ is not Kind.MERGE_VIEW:
        if len(frames) != 1:
            raise WireError(RejectReason.BAD_FRAME_COUNT, f"{kind_} with a payload")
        return Message(kind_, NodeId(src), round_, None, info, len(head))

    if kind_ is not Kind.MERGE_VIEW and _field(header, "fp", bytes) != expect.fingerprint:
        raise WireError(RejectReason.FINGERPRINT_MISMATCH)
    lo, hi = (expect.merge_epoch, expect.merge_epoch) if kind_ in MERGE_KINDS else (expect.round_min, expect.round_max)
    if round_ < lo:
        raise WireError(RejectReason.STALE_ROUND, f"round {round_} < {lo}")
    if round_ > hi:
        raise WireError(RejectReason.FUTURE_ROUND, f"round {round_} > {hi}")
    if len(frames) != 2:
        raise WireError(RejectReason.BAD_FRAME_COUNT, f"{kind_} without payload")
    if kind_ is Kind.MERGE_VIEW:
        return _view(header, frames[1], expect, src, round_, info, len(head))
    return _vector(header, frames[1], kind_, expect, src, round_, info, len(head))


def _who(header: Mapping[str, Any], expect: Expectation, sender: int | None) -> tuple[Kind, int, int]:
    """The header's version, kind, run, sender and round checked: the kind, the sender and the round."""
    version = header.get("v")
    if not isinstance(version, int) or isinstance(version, bool):
        raise WireError(RejectReason.BAD_HEADER, "version missing")
    if version != PROTOCOL_VERSION:
        raise WireError(RejectReason.BAD_VERSION, f"version {version}")
    kind = _field(header, "kind", str)
    kind_ = _KINDS.get(kind)
    if kind_ is None:
        raise WireError(RejectReason.BAD_HEADER, f"unknown kind {kind[:32]!r}")
    if _field(header, "run", bytes) != expect.run_id:
        raise WireError(RejectReason.WRONG_RUN)
    src = _field(header, "src", int)
    round_ = _field(header, "round", int)

    if sender is None or not 0 <= sender < expect.node_count:
        raise WireError(RejectReason.UNKNOWN_SENDER)
    if src != sender:
        raise WireError(RejectReason.SENDER_MISMATCH, f"header says {src}, transport says {sender}")
    if kind_ in MERGE_KINDS:
        if expect.merge_epoch < 0:
            raise WireError(RejectReason.UNEXPECTED, f"{kind}: merge not enabled")
    elif kind_ not in MEMBERSHIP_KINDS and sender not in expect.neighbours:  # any member may send membership messages
        raise WireError(RejectReason.NOT_A_NEIGHBOUR, f"node {sender}")
    return kind_, src, round_


def _vector(
    header: Mapping[str, Any], frame: Any, kind_: Kind, expect: Expectation, src: int, round_: int, info: dict[str, float], head_bytes: int
) -> Message:
    """A model-sized payload (model, delta, merge, merge_stats): its dtype, size and finiteness checked."""
    dtype = _field(header, "dtype", str)
    if dtype not in _DTYPES or (kind_ in MERGE_KINDS and dtype != "float32"):
        raise WireError(RejectReason.BAD_DTYPE, dtype[:16])
    if _field(header, "n", int) != expect.numel:
        raise WireError(RejectReason.BAD_PAYLOAD_SIZE, "element count")
    mass = _mass(header.get("w"), expect.node_count) if kind_ is Kind.MODEL else None
    body = byte_view(frame)
    if kind_ is Kind.DELTA:
        return _delta(header, body, dtype, expect.numel, src, round_, info, head_bytes)
    if len(body) != (int8_nbytes(expect.numel) if dtype == "int8" else expect.numel * _ITEMSIZE[dtype]):
        raise WireError(RejectReason.BAD_PAYLOAD_SIZE, f"{len(body)} bytes")

    if dtype == "float32":
        payload = finite_float32(body)
    else:
        payload = int8_payload(body, expect.numel) if dtype == "int8" else widened(body, dtype)
        if not all_finite(payload):
            raise WireError(RejectReason.NON_FINITE)
    return Message(kind_, NodeId(src), round_, payload, info, head_bytes + len(body), mass=mass)


def _delta(
    header: Mapping[str, Any], body: memoryview, dtype: str, numel: int, src: int, round_: int, info: dict[str, float], head_bytes: int
) -> Message:
    """A CHOCO-gossip delta: k int32 indices, strictly increasing in [0, n), then k finite float32 values."""
    k = _field(header, "k", int)
    if dtype != "float32":
        raise WireError(RejectReason.BAD_DTYPE, dtype[:16])
    if not 0 <= k <= numel:
        raise WireError(RejectReason.BAD_PAYLOAD_SIZE, f"k = {k}")
    if len(body) != 8 * k:
        raise WireError(RejectReason.BAD_PAYLOAD_SIZE, f"{len(body)} bytes for k = {k}")
    indices = tensor_view(body, "<i4", k)
    values = tensor_view(body, "<f4", k, 4 * k)
    if k and (int(indices[0]) < 0 or int(indices[-1]) >= numel or not bool((indices[1:] > indices[:-1]).all())):
        raise WireError(RejectReason.BAD_INDEX)
    if not all_finite(values):
        raise WireError(RejectReason.NON_FINITE)
    return Message(Kind.DELTA, NodeId(src), round_, values, info, head_bytes + len(body), indices=indices)


def _view(
    header: Mapping[str, Any], frame: Any, expect: Expectation, src: int, round_: int, info: dict[str, float], head_bytes: int
) -> Message:
    """A merge view: exactly one 0/1 byte per node of the run."""
    if _field(header, "n", int) != expect.node_count:
        raise WireError(RejectReason.BAD_PAYLOAD_SIZE, "view size")
    body = byte_view(frame)
    if len(body) != expect.node_count:
        raise WireError(RejectReason.BAD_PAYLOAD_SIZE, f"view of {len(body)} bytes")
    flags = bytes(body)
    if flags.translate(None, b"\x00\x01"):
        raise WireError(RejectReason.BAD_HEADER, "view bytes must be 0 or 1")
    members = frozenset(NodeId(i) for i, b in enumerate(flags) if b)
    return Message(Kind.MERGE_VIEW, NodeId(src), round_, None, info, head_bytes + len(body), members=members)


def _mass(raw: Any, nodes: int) -> float | None:
    """A push-sum mass: absent, or a finite float in (0, nodes] (the whole network holds mass n)."""
    if raw is None:
        return None
    if not isinstance(raw, (int, float)) or isinstance(raw, bool) or not math.isfinite(raw) or not 0 < raw <= nodes:
        raise WireError(RejectReason.BAD_MASS, repr(raw)[:32])
    return float(raw)


def _unpack_header(head: memoryview) -> Mapping[str, Any]:
    try:
        header = msgpack.unpackb(
            head,
            raw=False,
            strict_map_key=True,
            max_str_len=256,
            max_bin_len=64,
            max_array_len=MAX_HEADER_BYTES,  # the header cap bounds it already; a long member list gets its own reason
            max_map_len=32,
            max_ext_len=0,
        )
    except (ValueError, msgpack.exceptions.ExtraData, msgpack.exceptions.FormatError, msgpack.exceptions.StackError):
        raise WireError(RejectReason.BAD_HEADER, "not msgpack") from None
    except Exception:  # msgpack raises a few undocumented types on hostile input
        raise WireError(RejectReason.BAD_HEADER, "not msgpack") from None
    if not isinstance(header, dict):
        raise WireError(RejectReason.BAD_HEADER, "not a map")
    return header


def _field(header: Mapping[str, Any], key: str, kind: type) -> Any:
    value = header.get(key)
    if type(value) is not kind:  # msgpack builds exact types; a bool is not an int here
        raise WireError(RejectReason.BAD_HEADER, f"field {key!r}")
    if isinstance(value, int) and not -(1 << 62) < value < (1 << 62):
        raise WireError(RejectReason.BAD_HEADER, f"field {key!r} out of range")
    return value


def _info(raw: Any) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_INFO_ITEMS:
        raise WireError(RejectReason.BAD_HEADER, "info")
    out: dict[str, float] = {}
    for k, v in raw.items():
        if not isinstance(k, str) or not isinstance(v, (int, float)) or isinstance(v, bool):
            raise WireError(RejectReason.BAD_HEADER, "info entry")
        out[k] = float(v)
    return out
