"""CHOCO-gossip's bookkeeping: public copies stay bit-identical, the residual is fed back, losses resync."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
import torch

from gossip.config import CompressionConfig
from gossip.errors import RejectReason, WireError
from gossip.ids import NodeId
from gossip.net.wire import Expectation, Kind, Message, decode, encode
from gossip.node.choco import ChocoGossip

RUN = b"R" * 8
FP = b"F" * 16
N = 200
A, B = NodeId(0), NodeId(1)


def cfg(**kw: object) -> CompressionConfig:
    base: dict[str, object] = {"method": "topk", "topk_fraction": 0.05, "resync_every": 1000}  # no periodic resync in these tests
    base.update(kw)
    return CompressionConfig(**base)  # type: ignore[arg-type]


def wire(node: ChocoGossip, model: torch.Tensor, round_: int = 3) -> Message:
    """The node's next message, through encode and decode as a neighbour receives it."""
    out = node.outgoing(model)
    frames = encode(out.kind, src=0, round=round_, run_id=RUN, fingerprint=FP, payload=out.values, indices=out.indices, numel=N)
    expect = Expectation(run_id=RUN, fingerprint=FP, numel=N, node_count=2, neighbours=frozenset({0}), round_min=0, round_max=9)
    return decode(frames, expect, 0)


def drift(seed: int) -> torch.Tensor:
    return torch.randn(N, generator=torch.Generator().manual_seed(seed))


def test_receiver_copy_is_bit_identical_to_the_senders_public_copy() -> None:
    """After every round the receiver's x̂ of the sender equals the sender's own x̂ exactly, deltas included."""
    model = drift(0)
    sender, receiver = ChocoGossip(model, [B], cfg()), ChocoGossip(torch.zeros(N), [A], cfg())
    for t in range(10):
        model += 0.1 * drift(t + 1)  # local training moves the model between rounds
        receiver.absorb({A: wire(sender, model)})
        assert torch.equal(receiver.copies[A], sender.public)


def test_first_round_is_dense_then_deltas_of_k_entries() -> None:
    """Nobody holds a copy at the start: round one sends the whole model, later rounds k = ceil(f·n) entries."""
    node = ChocoGossip(drift(0), [B], cfg())
    first = node.outgoing(drift(0))
    assert first.kind is Kind.MODEL and first.indices is None and torch.equal(first.values, drift(0))
    second = node.outgoing(drift(1))
    assert second.kind is Kind.DELTA and second.indices is not None and second.indices.numel() == node.k == 10


def test_k_is_the_exact_ceiling_of_the_fraction_as_written() -> None:
    """k = ⌈f · n⌉ for f as written: 0.07 of 100 entries is 7 (the float product 7.000000000000001 made it 8)."""
    assert ChocoGossip(torch.zeros(100), [B], cfg(topk_fraction=0.07)).k == 7
    assert ChocoGossip(torch.zeros(101), [B], cfg(topk_fraction=0.07)).k == 8


def test_what_top_k_leaves_out_is_sent_later() -> None:
    """Error feedback: a model that stops changing reaches its public copy exactly after n / k deltas."""
    model = drift(0)
    node = ChocoGossip(torch.zeros(N), [B], cfg())
    node.outgoing(torch.zeros(N))  # the dense first round: x̂ = 0
    for _ in range(N // node.k):
        node.outgoing(model)
    assert torch.equal(node.public, model)


@pytest.mark.parametrize("every", [1, 3, 5])
def test_public_copy_goes_out_in_full_every_resync_every_rounds(every: int) -> None:
    """With resync_every = r, rounds 0, r, 2r, ... are dense (they recover losses the sender cannot see)."""
    node = ChocoGossip(drift(0), [B], cfg(resync_every=every))
    kinds = [node.outgoing(drift(t)).kind for t in range(12)]
    assert [t for t, k in enumerate(kinds) if k is Kind.MODEL] == list(range(0, 12, every))


def test_resync_makes_the_next_round_dense() -> None:
    """After a failed send (or a neighbour's restart) the next message carries the public copy in full."""
    node = ChocoGossip(drift(0), [B], cfg())
    node.outgoing(drift(0))
    node.resync()
    out = node.outgoing(drift(1))
    assert out.kind is Kind.MODEL and torch.equal(out.values, drift(1)) and torch.equal(node.public, drift(1))


def test_a_missed_round_takes_the_neighbour_out_of_the_mix_until_its_next_dense_message() -> None:
    """A lost delta would leave our copy silently behind: the neighbour is left out (its weight goes back
    to self) and its later deltas are ignored until it sends its public copy in full."""
    model = drift(0)
    sender, receiver = ChocoGossip(model, [B], cfg()), ChocoGossip(torch.zeros(N), [A], cfg())
    receiver.absorb({A: wire(sender, model)})
    assert receiver.in_step == {A}
    wire(sender, model + drift(1))  # lost on the way
    receiver.absorb({})
    assert receiver.in_step == frozenset()
    receiver.absorb({A: wire(sender, model + drift(2))})  # a delta on top of a copy we no longer hold
    assert receiver.in_step == frozenset()
    mine = drift(9)
    assert receiver.mix(mine, {}, {A: 0.5}) == 0.0 and torch.equal(mine, drift(9))  # no pull: weight back to self
    sender.resync()
    receiver.absorb({A: wire(sender, model + drift(3))})
    assert receiver.in_step == {A} and torch.equal(receiver.copies[A], sender.public)


def test_mix_moves_the_model_by_gamma_times_the_weighted_pull_of_the_public_copies() -> None:
    """x += γ Σ_j W_ij (x̂_j − x̂_i): here x̂_i = 0, x̂_j = 1, W = 1/2, γ = 0.2 → every entry + 0.1."""
    node = ChocoGossip(torch.zeros(N), [A], cfg(choco_gamma=0.2))
    node.outgoing(torch.zeros(N))
    model = torch.zeros(N)
    node.mix(model, {A: Message(Kind.MODEL, A, 3, torch.ones(N))}, {A: 0.5})
    assert torch.allclose(model, torch.full((N,), 0.1))


def test_gamma_defaults_to_four_times_the_share_sent() -> None:
    """choco_gamma = 0 picks 4 × topk_fraction (capped at 1): much larger steps make the copies' errors grow."""
    assert cfg(topk_fraction=0.05).gamma == pytest.approx(0.2)
    assert cfg(topk_fraction=0.3).gamma == 1.0
    assert cfg(choco_gamma=0.3).gamma == 0.3


# -------------------------------------------------------------------------------------------------
# the delta on the wire


def delta_frames(indices: list[int], values: list[float], **header: object) -> list:
    frames = encode(
        Kind.DELTA,
        src=0,
        round=3,
        run_id=RUN,
        fingerprint=FP,
        payload=torch.tensor(values, dtype=torch.float32),
        indices=torch.tensor(indices, dtype=torch.int32),
        numel=N,
    )
    if header:
        frames[0] = msgpack.packb({**msgpack.unpackb(frames[0]), **header})
    return frames


def reason_of(frames: list) -> RejectReason:
    expect = Expectation(run_id=RUN, fingerprint=FP, numel=N, node_count=2, neighbours=frozenset({0}), round_min=0, round_max=9)
    with pytest.raises(WireError) as info:
        decode(frames, expect, 0)
    return info.value.reason


def test_delta_round_trip() -> None:
    """A delta arrives as k int32 indices and k float32 values, 8 bytes an entry."""
    frames = delta_frames([2, 7, 199], [0.5, -1.0, 3.0])
    assert len(frames[1]) == 3 * 8
    expect = Expectation(run_id=RUN, fingerprint=FP, numel=N, node_count=2, neighbours=frozenset({0}), round_min=0, round_max=9)
    msg = decode(frames, expect, 0)
    assert msg.kind is Kind.DELTA and msg.indices is not None and msg.payload is not None
    assert msg.indices.tolist() == [2, 7, 199] and msg.payload.tolist() == [0.5, -1.0, 3.0]


@pytest.mark.parametrize(
    ("indices", "values", "reason"),
    [
        ([2, 200], [1.0, 1.0], RejectReason.BAD_INDEX),  # past the end of the model
        ([-1, 5], [1.0, 1.0], RejectReason.BAD_INDEX),
        ([5, 5], [1.0, 1.0], RejectReason.BAD_INDEX),  # a repeat would add twice
        ([7, 5], [1.0, 1.0], RejectReason.BAD_INDEX),  # not increasing
        ([1, 2], [1.0, float("nan")], RejectReason.NON_FINITE),
        ([1, 2], [float("-inf"), 1.0], RejectReason.NON_FINITE),
    ],
)
def test_hostile_deltas_are_refused(indices: list[int], values: list[float], reason: RejectReason) -> None:
    """Indices must be strictly increasing inside the model and values finite, or nothing is applied."""
    assert reason_of(delta_frames(indices, values)) is reason


@pytest.mark.parametrize(
    ("header", "body", "reason"),
    [
        ({"k": 3}, None, RejectReason.BAD_PAYLOAD_SIZE),  # k says 3, the frame holds 2 entries
        ({"k": N + 1}, None, RejectReason.BAD_PAYLOAD_SIZE),
        ({"k": -1}, None, RejectReason.BAD_PAYLOAD_SIZE),
        ({"k": "2"}, None, RejectReason.BAD_HEADER),
        ({"dtype": "int8"}, None, RejectReason.BAD_DTYPE),
        ({"n": N + 1}, None, RejectReason.BAD_PAYLOAD_SIZE),
        ({}, b"\x00" * 15, RejectReason.BAD_PAYLOAD_SIZE),
    ],
)
def test_deltas_with_a_bad_header_or_size_are_refused(header: dict, body: bytes | None, reason: RejectReason) -> None:
    """k, dtype, n and the frame's exact length 8k are all checked before anything is read."""
    frames = delta_frames([1, 2], [1.0, 2.0], **header)
    if body is not None:
        frames[1] = body
    assert reason_of(frames) is reason


def test_delta_values_are_float32_little_endian_after_the_indices() -> None:
    """The frame is the int32 indices, then the float32 values: the layout other implementations read."""
    frames = delta_frames([3, 4], [1.5, -2.0])
    body = bytes(frames[1])
    assert np.frombuffer(body[:8], "<i4").tolist() == [3, 4] and np.frombuffer(body[8:], "<f4").tolist() == [1.5, -2.0]
