"""The members a membership message names, checked: in an open network who-is-where comes from peers, so it is hostile input.

A member on the wire is a msgpack array ``[id, address, key]``: its node id (``0 <= id < MAX_MEMBER_ID``), the
address it listens on, and its CURVE public key (32 bytes, or empty without CURVE). A membership message
carries its sender's own entry (``me``, required) and at most :data:`MAX_LISTED` others (``m``). Every
address must pass the run's :class:`AddressPolicy`, so a node never learns (and never dials) an address the
run does not allow, whoever named it. Each failure is a :class:`RejectReason`; the whole message is dropped,
never a part of it, so a peer cannot slip a bad entry in among good ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gossip.addresses import AddressPolicy
from gossip.errors import RejectReason, WireError
from gossip.topology.members import MAX_MEMBER_ID, Member
from gossip.topology.membership import MAX_LISTED

__all__ = ["CURVE_KEY_BYTES", "entry", "member_fields", "members_of"]

CURVE_KEY_BYTES = 32


def entry(member: Member) -> list[Any]:
    """``member`` as the wire carries it."""
    return [member.id, member.address, member.key]


def member_fields(membership: bool, me: Member | None, listed: Sequence[Member]) -> dict[str, Any]:
    """The header fields naming members: for a membership message, the sender's entry ``me`` and the ``listed`` members, if any."""
    if not membership:
        if me is not None or listed:
            raise ValueError("only membership messages name members")
        return {}
    if me is None or len(listed) > MAX_LISTED:
        raise ValueError(f"a membership message needs its sender's entry and names at most {MAX_LISTED} members")
    return {"me": entry(me), "m": [entry(m) for m in listed]} if listed else {"me": entry(me)}


def members_of(
    header: Mapping[str, Any], policy: AddressPolicy | None, receiver: Member | None, src: int
) -> tuple[Member, tuple[Member, ...]]:
    """The sender's entry and the members it names, checked; ``policy`` None means a fixed-topology run.

    ``receiver`` is this node's own entry: a peer that names our id with another address or key is passing
    someone off as us (an entry equal to ours is fine: Cyclon's answers may name the node they go to).
    """
    if policy is None:
        raise WireError(RejectReason.UNEXPECTED, "membership message in a fixed-topology run")
    raw_listed = header.get("m", [])
    if type(raw_listed) is not list:
        raise WireError(RejectReason.BAD_HEADER, "field 'm'")
    if len(raw_listed) > MAX_LISTED:  # counted before any entry is looked at
        raise WireError(RejectReason.TOO_MANY_MEMBERS, f"{len(raw_listed)} > {MAX_LISTED}")
    if "me" not in header:
        raise WireError(RejectReason.BAD_HEADER, "field 'me'")
    me = _member(header["me"], policy)
    if me.id != src:
        raise WireError(RejectReason.SENDER_MISMATCH, f"entry says {me.id}, header says {src}")
    listed = tuple(_member(raw, policy) for raw in raw_listed)
    if len({m.id for m in listed}) != len(listed):
        raise WireError(RejectReason.BAD_MEMBER, "an id named twice")
    for member in (me, *listed):
        if receiver is not None and member.id == receiver.id and member != receiver:
            raise WireError(RejectReason.BAD_MEMBER, f"another entry for us (id {member.id})")
        if member.id == src and member != me:
            raise WireError(RejectReason.BAD_MEMBER, f"another entry for the sender (id {src})")
    return me, listed


def _member(raw: Any, policy: AddressPolicy) -> Member:
    """One ``[id, address, key]`` entry, cheapest checks first: the address's pattern match runs last."""
    if type(raw) is not list or len(raw) != 3:
        raise WireError(RejectReason.BAD_MEMBER, "not [id, address, key]")
    id_, address, key = raw
    if type(id_) is not int or not 0 <= id_ < MAX_MEMBER_ID:  # msgpack builds exact types: a bool is not an int here
        raise WireError(RejectReason.BAD_MEMBER, "id")
    if type(key) is not bytes or len(key) not in (0, CURVE_KEY_BYTES):
        raise WireError(RejectReason.BAD_MEMBER, f"key of member {id_}")
    if type(address) is not str:
        raise WireError(RejectReason.ADDRESS_NOT_ALLOWED, f"address of member {id_} is not a string")
    why = policy.refusal(address)
    if why is not None:
        raise WireError(RejectReason.ADDRESS_NOT_ALLOWED, f"member {id_}: {why}")
    return Member(id_, address, key)
