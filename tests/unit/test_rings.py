"""The shared-memory ring: what a reference must match before a slot is read, and the seqlock against torn writes.

Both sides map one real memfd here (the receiver read-only through a second descriptor, as after a handover).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from gossip.errors import RejectReason
from gossip.net.handover import new_ring
from gossip.net.rings import MAX_SLOTS, MIN_SLOTS, REF, ReceiveRing, slots_for

SLOT_BYTES = 4096 * 3 + 12


@pytest.fixture
def rings():
    send = new_ring(MIN_SLOTS, SLOT_BYTES)
    assert send.fd is not None
    receive = ReceiveRing(os.dup(send.fd), send.geometry, send.generation)
    yield send, receive
    receive.close()
    send.close()


def _payload(seed: int, n: int = SLOT_BYTES) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_a_written_slot_reads_back_as_a_private_copy_of_the_same_bytes(rings) -> None:
    """What the sender wrote is what the receiver gets, in memory of its own (a later write cannot change it)."""
    send, receive = rings
    ref = send.write(_payload(1))
    got = receive.read(ref)
    assert isinstance(got, np.ndarray) and got.tobytes() == _payload(1)
    for k in range(MIN_SLOTS):  # a whole lap rewrites that slot
        send.write(_payload(10 + k))
    assert got.tobytes() == _payload(1)


def test_a_shorter_payload_reads_back_with_its_own_length(rings) -> None:
    send, receive = rings
    got = receive.read(send.write(b"\x07" * 100))
    assert isinstance(got, np.ndarray) and got.tobytes() == b"\x07" * 100


def test_a_reference_from_an_earlier_lap_is_refused_as_torn(rings) -> None:
    """Once the sender wrote that slot again, the old reference names a seq the slot no longer holds."""
    send, receive = rings
    old = send.write(_payload(1))
    for k in range(MIN_SLOTS):
        newest = send.write(_payload(2 + k))
    assert receive.read(old) is RejectReason.TORN_SLOT
    assert isinstance(receive.read(newest), np.ndarray)


def test_a_slot_being_written_is_refused_as_torn(rings) -> None:
    """A sender that died between marking the slot and finishing it leaves an odd seq: never read as a model."""
    send, receive = rings
    ref = send.write(_payload(1))
    slot, generation, seq, n = REF.unpack(ref)
    send._words[slot * 8] = seq + 1  # the next write of this slot began ...
    send._bytes[send.geometry.offset(slot) : send.geometry.offset(slot) + 10] = 0  # ... and got this far
    assert receive.read(ref) is RejectReason.TORN_SLOT
    assert receive.read(REF.pack(slot, generation, seq + 1, n)) is RejectReason.BAD_SLOT  # an odd seq is no reference


@pytest.mark.parametrize(
    "change",
    [
        {"generation": 1},  # a ring this sender handed over before, or never
        {"slot": MIN_SLOTS},  # past the last slot
        {"n": SLOT_BYTES + 1},  # more than a slot holds
        {"seq": 0},  # never written
    ],
    ids=["generation", "slot", "size", "seq"],
)
def test_a_reference_that_names_no_slot_of_this_ring_is_refused(rings, change: dict[str, int]) -> None:
    send, receive = rings
    slot, generation, seq, n = REF.unpack(send.write(_payload(1)))
    fields = {"slot": slot, "generation": generation, "seq": seq, "n": n}
    fields = {k: v + change[k] if k == "generation" and k in change else change.get(k, v) for k, v in fields.items()}
    assert receive.read(REF.pack(fields["slot"], fields["generation"], fields["seq"], fields["n"])) is RejectReason.BAD_SLOT


def test_a_reference_of_the_wrong_length_is_refused(rings) -> None:
    _send, receive = rings
    assert receive.read(b"\x00" * (REF.size - 1)) is RejectReason.BAD_SLOT


def test_a_reference_whose_length_differs_from_the_slot_header_is_refused_as_torn(rings) -> None:
    send, receive = rings
    slot, generation, seq, n = REF.unpack(send.write(_payload(1)))
    assert receive.read(REF.pack(slot, generation, seq, n - 1)) is RejectReason.TORN_SLOT


def test_the_receiver_maps_the_ring_read_only(rings) -> None:
    _send, receive = rings
    with pytest.raises((ValueError, TypeError)):
        receive._bytes[0] = 1


def test_a_ring_is_sealed_against_resizing(rings) -> None:
    """A ring a sender could shrink would crash its reader with SIGBUS: the seals forbid it."""
    send, _receive = rings
    fd = os.dup(send.fd)
    try:
        with pytest.raises(PermissionError):
            os.ftruncate(fd, 4096)
    finally:
        os.close(fd)


def test_slots_cover_the_rounds_a_sender_may_be_ahead() -> None:
    assert slots_for(2) == MIN_SLOTS
    assert slots_for(10) == 12
    assert slots_for(1000) == MAX_SLOTS
