"""The membership kinds on the wire: round trips, one test per refusal of the members a peer names, and fuzzing."""

from __future__ import annotations

import copy
import random
from typing import Any

import msgpack
import pytest
import torch

from gossip.addresses import AddressPolicy
from gossip.errors import RejectReason, WireError
from gossip.net.wire import MAX_HEADER_BYTES, MEMBERSHIP_KINDS, Expectation, Kind, Message, decode, encode
from gossip.topology import membership
from gossip.topology.members import MAX_MEMBER_ID, Member
from gossip.topology.membership import MAX_LISTED

RUN = b"R" * 8
FP = b"F" * 16
N = 10
POLICY = AddressPolicy.of(["10.0.0.0/8", "fd00::/8", "node-a.example"], "7000-7999")
US = Member(0, "tcp://10.0.0.1:7000")  # the receiving node
SENDER = Member(5, "tcp://10.0.0.5:7005")  # a member, not one of our neighbours
KEY = bytes(range(32))
OTHERS = (Member(7, "tcp://10.1.2.3:7100", KEY), Member(9999, "tcp://node-a.example:7999"), Member(42, "tcp://[fd00::9]:7042"))
GOOD_ADDRESS = "tcp://10.2.0.1:7001"


def open_expect(**kw: Any) -> Expectation:
    """What a node of an open network expects: any member id, the run's address policy, its own entry."""
    base: dict[str, Any] = dict(
        run_id=RUN,
        fingerprint=FP,
        numel=N,
        node_count=MAX_MEMBER_ID,
        neighbours=frozenset({1}),
        round_min=5,
        round_max=7,
        policy=POLICY,
        me=US,
    )
    base.update(kw)
    return Expectation(**base)


def member_frames(kind: Kind = Kind.SHUFFLE, me: Member = SENDER, listed: tuple[Member, ...] = OTHERS, src: int | None = None) -> list[Any]:
    return encode(kind, src=me.id if src is None else src, round=3, run_id=RUN, me=me, listed=listed)


def raw_frames(**fields: Any) -> list[Any]:
    """A shuffle from SENDER with header fields replaced (None removes one): for what encode would never write."""
    header: dict[str, Any] = {"v": 1, "kind": "shuffle", "run": RUN, "src": SENDER.id, "round": 3, "me": [5, SENDER.address, b""]}
    header.update(fields)
    return [msgpack.packb({k: v for k, v in header.items() if v is not None}, use_bin_type=True)]


def listing(*entries: Any) -> list[Any]:
    """A header frame whose ``m`` holds ``entries`` as they are."""
    return raw_frames(m=list(entries))


def reason_of(frames: list[Any], sender: int = SENDER.id, **kw: Any) -> RejectReason:
    with pytest.raises(WireError) as info:
        decode(frames, open_expect(**kw), sender)
    return info.value.reason


# --- what travels ---------------------------------------------------------------------------------------


def test_the_wire_speaks_every_kind_of_the_membership_state_machine() -> None:
    """Each message the state machine sends has a Kind of the same name, and no other kind is a membership kind."""
    assert {str(k) for k in MEMBERSHIP_KINDS} == set(membership.MEMBERSHIP_KINDS)


@pytest.mark.parametrize("listed", [(), OTHERS], ids=["alone", "listing"])
@pytest.mark.parametrize("kind", sorted(MEMBERSHIP_KINDS))
def test_each_membership_kind_round_trips(kind: Kind, listed: tuple[Member, ...]) -> None:
    """A membership message is one header frame, and decodes to its sender's entry and the members it names, in order."""
    frames = member_frames(kind, listed=listed)
    assert len(frames) == 1
    msg = decode(frames, open_expect(), SENDER.id)
    assert (msg.kind, msg.src, msg.round, msg.me, msg.listed, msg.payload) == (kind, SENDER.id, 3, SENDER, listed, None)


def test_membership_messages_come_from_any_member() -> None:
    """Membership messages skip the neighbour check: a member that is not our neighbour (5) may ask to link."""
    assert SENDER.id not in open_expect().neighbours
    assert decode(member_frames(Kind.LINK, listed=()), open_expect(), SENDER.id).kind is Kind.LINK


def test_the_largest_legal_message_fits_the_header_cap() -> None:
    """MAX_LISTED members with the longest host names the policy admits, the largest ids and CURVE keys still fit in 4 KiB."""
    host = "h" * 63
    policy = AddressPolicy.of([host], "7000-65535")
    me = Member(MAX_MEMBER_ID - 1, f"tcp://{host}:65535", KEY)
    listed = tuple(Member(MAX_MEMBER_ID - 2 - i, f"tcp://{host}:65535", KEY) for i in range(MAX_LISTED))
    frames = member_frames(Kind.MEMBERS, me=me, listed=listed)
    assert len(frames[0]) <= MAX_HEADER_BYTES
    assert decode(frames, open_expect(policy=policy), me.id).listed == listed


def test_an_entry_equal_to_the_receiver_is_kept() -> None:
    """Cyclon's answers may name the node they go to: our own entry, exactly as we are, is legitimate."""
    assert decode(member_frames(listed=(US, *OTHERS)), open_expect(), SENDER.id).listed == (US, *OTHERS)


def test_the_sender_may_name_itself_as_it_is() -> None:
    """A ``members`` answer names its sender among the sample: an entry equal to ``me`` is kept."""
    assert decode(member_frames(Kind.MEMBERS, listed=(SENDER, *OTHERS)), open_expect(), SENDER.id).listed == (SENDER, *OTHERS)


@pytest.mark.parametrize(
    "call",
    [
        lambda: encode(Kind.JOIN, src=5, round=0, run_id=RUN),  # no sender entry
        lambda: member_frames(listed=tuple(Member(100 + i, GOOD_ADDRESS) for i in range(MAX_LISTED + 1))),
        lambda: encode(Kind.HELLO, src=5, round=0, run_id=RUN, me=SENDER),  # only membership kinds name members
    ],
    ids=["no-me", "too-many", "not-membership"],
)
def test_encode_refuses_what_decode_would_refuse(call: Any) -> None:
    """Encoding a message no peer would accept is the caller's bug."""
    with pytest.raises(ValueError):
        call()


# --- the checks -----------------------------------------------------------------------------------------


def test_a_membership_kind_in_a_fixed_topology_run_is_unexpected() -> None:
    """Without an address policy the node runs a fixed topology: membership messages are not called for, even from a neighbour."""
    assert reason_of(member_frames(me=Member(1, GOOD_ADDRESS)), sender=1, policy=None) is RejectReason.UNEXPECTED


def test_a_model_from_a_non_neighbour_is_refused_in_an_open_network() -> None:
    """Models still travel only on links: any member may talk membership, only a neighbour may send a model."""
    model = encode(Kind.MODEL, src=5, round=5, run_id=RUN, fingerprint=FP, payload=torch.zeros(N))
    assert reason_of(model) is RejectReason.NOT_A_NEIGHBOUR
    neighbours = decode(encode(Kind.MODEL, src=1, round=5, run_id=RUN, fingerprint=FP, payload=torch.zeros(N)), open_expect(), 1)
    assert neighbours.kind is Kind.MODEL


def test_a_membership_message_with_a_payload_frame_is_refused() -> None:
    """Membership kinds are a header only."""
    assert reason_of([*member_frames(), b"\x00" * 4]) is RejectReason.BAD_FRAME_COUNT


@pytest.mark.parametrize("count", [MAX_LISTED + 1, 300])
def test_a_list_longer_than_max_listed_is_too_many_members(count: int) -> None:
    """More than MAX_LISTED entries is refused under its own reason, whatever the entries hold (they are counted first)."""
    entries = [[100 + i, GOOD_ADDRESS, b""] for i in range(count)] if count <= 100 else [0] * count
    frames = listing(*entries)
    assert len(frames[0]) <= MAX_HEADER_BYTES
    assert reason_of(frames) is RejectReason.TOO_MANY_MEMBERS


def test_a_sender_entry_for_another_id_is_a_sender_mismatch() -> None:
    """``me`` must be the sender: an entry with another id (6) from node 5 is refused as a spoof of 6."""
    assert reason_of(raw_frames(me=[6, GOOD_ADDRESS, b""])) is RejectReason.SENDER_MISMATCH


@pytest.mark.parametrize("me", [None, [5, SENDER.address], 5], ids=["missing", "short", "not-an-entry"])
def test_a_sender_entry_must_be_present_and_well_formed(me: Any) -> None:
    """A membership message without ``me`` is a malformed header; a malformed ``me`` is a bad member."""
    reason = RejectReason.BAD_HEADER if me is None else RejectReason.BAD_MEMBER
    assert reason_of(raw_frames(me=me)) is reason


def test_a_member_list_that_is_not_a_list_is_a_bad_header() -> None:
    """``m`` is an array or absent."""
    assert reason_of(raw_frames(m={"0": 1})) is RejectReason.BAD_HEADER


@pytest.mark.parametrize(
    "spoof",
    [[0, "tcp://10.9.9.9:7000", b""], [0, US.address, KEY]],
    ids=["other-address", "other-key"],
)
def test_an_entry_claiming_to_be_the_receiver_is_a_bad_member(spoof: list[Any]) -> None:
    """A peer that names our id with another address or key would have others send our traffic elsewhere."""
    assert reason_of(listing([7, GOOD_ADDRESS, b""], spoof)) is RejectReason.BAD_MEMBER


def test_a_sender_claiming_the_receivers_id_is_a_bad_member() -> None:
    """A sender whose own entry takes our id at another address (an id collision, or an impostor) is refused."""
    frames = raw_frames(src=0, me=[0, "tcp://10.9.9.9:7000", b""])
    assert reason_of(frames, sender=0) is RejectReason.BAD_MEMBER


def test_an_entry_for_the_sender_other_than_its_own_is_a_bad_member() -> None:
    """The sender's own entry is ``me``; another address for its id in the list contradicts it."""
    assert reason_of(listing([5, "tcp://10.0.0.6:7005", b""])) is RejectReason.BAD_MEMBER


def test_two_entries_with_one_id_are_a_bad_member() -> None:
    """An id named twice (here with two addresses) leaves the receiver no way to tell which is true."""
    assert reason_of(listing([7, GOOD_ADDRESS, b""], [7, "tcp://10.2.0.2:7001", b""])) is RejectReason.BAD_MEMBER


@pytest.mark.parametrize(
    "address",
    [
        "tcp://192.168.1.1:7000",  # another network
        "tcp://10.0.0.1:80",  # a port outside the range
        "tcp://10.0.0.1:8000",
        "ipc:///tmp/gossip.sock",
        "tcp://node-b.example:7000",  # a host name not on the list
        "tcp://" + "a" * 120 + ":7000",  # too long
        "",
        1234,  # not a string
        b"tcp://10.0.0.1:7000",
        None,
    ],
)
@pytest.mark.parametrize("where", ["me", "m"])
def test_an_address_outside_the_policy_is_not_allowed(address: Any, where: str) -> None:
    """Every address a peer names, its own or another's, must pass the run's allow-list: nothing else is ever learnt."""
    frames = raw_frames(me=[5, address, b""]) if where == "me" else listing([7, address, b""])
    assert reason_of(frames) is RejectReason.ADDRESS_NOT_ALLOWED


@pytest.mark.parametrize("key", [b"k" * 31, b"k" * 33, b"k", "k" * 32, None], ids=["31", "33", "1", "text", "nil"])
def test_a_key_of_the_wrong_length_is_a_bad_member(key: Any) -> None:
    """A CURVE public key is 32 bytes, or empty without CURVE."""
    assert reason_of(listing([7, GOOD_ADDRESS, key])) is RejectReason.BAD_MEMBER


@pytest.mark.parametrize(
    "bad",
    [[7, GOOD_ADDRESS], [7, GOOD_ADDRESS, b"", 0], [-1, GOOD_ADDRESS, b""], [MAX_MEMBER_ID, GOOD_ADDRESS, b""], [True, GOOD_ADDRESS, b""]]
    + [[1.0, GOOD_ADDRESS, b""], ["7", GOOD_ADDRESS, b""], "tcp://10.2.0.1:7001", {"id": 7}],
    ids=["two-items", "four-items", "negative-id", "id-too-large", "bool-id", "float-id", "text-id", "a-string", "a-map"],
)
def test_a_malformed_entry_is_a_bad_member(bad: Any) -> None:
    """An entry is exactly [id, address, key] with an id in 0..MAX_MEMBER_ID-1."""
    assert reason_of(listing([7, GOOD_ADDRESS, b""], bad)) is RejectReason.BAD_MEMBER


# --- fuzzing --------------------------------------------------------------------------------------------


def _hostile(rng: random.Random) -> Any:
    """A value that could sit anywhere in a header: right types with wrong values, wrong types, nesting."""
    choices: list[Any] = [
        rng.choice([-1, 0, 5, 7, 9999, MAX_MEMBER_ID, 2**63 - 1, -(2**63), 2**64 - 1]),
        rng.choice([1.5, float("nan"), float("inf"), True, False, None]),
        rng.choice([GOOD_ADDRESS, US.address, SENDER.address, "tcp://192.168.0.1:7000", "tcp://10.0.0.1:1", "x" * 200, "", "é"]),
        bytes(rng.choice([0, 1, 31, 32, 33, 64])),
        [rng.randrange(-2, MAX_MEMBER_ID + 2), rng.choice([GOOD_ADDRESS, "tcp://10.3.3.3:7777"]), bytes(rng.choice([0, 32]))],
        [[rng.randrange(20), GOOD_ADDRESS, b""] for _ in range(rng.randrange(32))],
        {"me": [5]},
        [[[]]],
    ]
    return rng.choice(choices)


def _mutated(rng: random.Random, header: dict[str, Any]) -> bytes:
    """``header`` with one to three fields, entries or entry items replaced, removed or added, or its packed bytes damaged."""
    header = copy.deepcopy(header)
    for _ in range(rng.randint(1, 3)):
        place = rng.choice(["top", "me", "m", "entry"])
        if place == "top":
            key = rng.choice([*header, "zz"])
            if rng.random() < 0.2:
                header.pop(key, None)
            else:
                header[key] = _hostile(rng)
        elif place == "me" and isinstance(header.get("me"), list) and header["me"]:
            header["me"][rng.randrange(len(header["me"]))] = _hostile(rng)
        elif place == "m" and isinstance(header.get("m"), list):
            header["m"].insert(rng.randrange(len(header["m"]) + 1), _hostile(rng))
        elif isinstance(header.get("m"), list) and header["m"] and isinstance(header["m"][0], list) and header["m"][0]:
            entry = header["m"][rng.randrange(len(header["m"]))]
            if isinstance(entry, list) and entry:
                entry[rng.randrange(len(entry))] = _hostile(rng)
    packed = bytearray(msgpack.packb(header, use_bin_type=True))
    if rng.random() < 0.2:
        packed[rng.randrange(len(packed))] = rng.randrange(256)
    if rng.random() < 0.1:
        del packed[rng.randrange(len(packed)) :]
    return bytes(packed)


def _sound(msg: Message) -> bool:
    """What an accepted message promises the node: a sender entry that is the sender, few members, all inside the policy."""
    everyone = (msg.me, *msg.listed)
    return (
        msg.me is not None
        and msg.me.id == msg.src
        and len(msg.listed) <= MAX_LISTED
        and len({m.id for m in msg.listed}) == len(msg.listed)
        and all(m is not None and POLICY.refusal(m.address) is None and len(m.key) in (0, 32) for m in everyone)
        and all(m == US for m in everyone if m is not None and m.id == US.id)
    )


def test_random_mutations_of_a_membership_header_only_ever_raise_wire_error() -> None:
    """2,000 mutations of a valid shuffle: each decodes to a sound message or raises WireError, nothing else escapes."""
    rng = random.Random(20_26)
    valid = msgpack.unpackb(member_frames(listed=(US, *OTHERS))[0], raw=False)
    reasons: set[RejectReason] = set()
    accepted = 0
    for _ in range(2000):
        head = _mutated(rng, valid)
        try:
            msg = decode([head], open_expect(), SENDER.id)
        except WireError as refused:
            reasons.add(refused.reason)
            continue
        assert _sound(msg), (head, msg)
        accepted += 1
    assert accepted > 0  # some mutations are harmless (an extra field, a member swapped for a valid one) ...
    expected = {RejectReason.BAD_HEADER, RejectReason.BAD_MEMBER, RejectReason.ADDRESS_NOT_ALLOWED, RejectReason.SENDER_MISMATCH}
    assert expected | {RejectReason.TOO_MANY_MEMBERS} <= reasons  # ... and the mutations reach every check
