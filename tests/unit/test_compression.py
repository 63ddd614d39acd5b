"""int8 block quantisation on the wire, and top-k sparsification: error bounds, sizes, hostile payloads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gossip.algorithms.choco import top_k
from gossip.errors import RejectReason, WireError
from gossip.net.codec import INT8_BLOCK, dequantise_int8, int8_nbytes, quantise_int8
from gossip.net.wire import Expectation, Kind, decode, encode

RUN = b"R" * 8
FP = b"F" * 16
N = 2 * INT8_BLOCK + 37  # two full blocks and a partial one


def expect() -> Expectation:
    return Expectation(run_id=RUN, fingerprint=FP, numel=N, node_count=4, neighbours=frozenset({1}), round_min=0, round_max=9)


def int8_frames(payload: torch.Tensor) -> list:
    return encode(Kind.MODEL, src=1, round=3, run_id=RUN, fingerprint=FP, payload=payload, dtype="int8")


def vector(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, generator=g)
    x[INT8_BLOCK : INT8_BLOCK + 10] *= 100  # one block with outliers: its own scale, not everyone's
    x[-37:] = 0  # an all-zero partial block
    return x


def reason_of(frames: list) -> RejectReason:
    with pytest.raises(WireError) as info:
        decode(frames, expect(), 1)
    return info.value.reason


def test_int8_round_trip_error_is_at_most_half_a_step_per_element() -> None:
    """Every element comes back within scale/2 of its value, where scale is its block's max|x| / 127."""
    x = vector()
    msg = decode(int8_frames(x), expect(), 1)
    assert msg.payload is not None and msg.payload.dtype == torch.float32
    blocks = torch.nn.functional.pad(x, (0, 3 * INT8_BLOCK - N)).view(3, INT8_BLOCK)
    step = (blocks.abs().amax(dim=1) / 127).repeat_interleave(INT8_BLOCK)[:N]
    assert bool(((msg.payload - x).abs() <= step / 2 * (1 + 1e-6)).all())


def test_int8_zero_block_and_block_maximum_are_exact() -> None:
    """An all-zero block comes back as zeros, and each block's largest element comes back exactly (q = ±127)."""
    x = vector()
    _, out = dequantise_int8(quantise_int8(x), N)
    assert bool((out[-37:] == 0).all())
    i = int(x[:INT8_BLOCK].abs().argmax())
    assert out[i] == pytest.approx(float(x[i]), rel=1e-6)


def test_int8_quantisation_is_deterministic() -> None:
    """The same vector gives the same bytes: two runs with the same config stay bit-identical."""
    assert quantise_int8(vector()) == quantise_int8(vector())


def test_int8_payload_is_a_quarter_of_float32_plus_one_scale_per_block() -> None:
    """n int8 values plus a float32 scale per 1024 elements: about 1/4 of the float32 frame."""
    frames = int8_frames(vector())
    assert len(frames[1]) == int8_nbytes(N) == N + 4 * 3
    float32 = len(encode(Kind.MODEL, src=1, round=3, run_id=RUN, fingerprint=FP, payload=vector())[1])
    assert 0.25 < len(frames[1]) / float32 < 0.26


@pytest.mark.parametrize("delta", [-1, 1, -4])
def test_int8_payload_of_the_wrong_size_is_refused(delta: int) -> None:
    """The frame must be exactly scales + values for our model's n; a byte more or less is refused."""
    frames = int8_frames(vector())
    body = bytes(frames[1])
    bad = body[:delta] if delta < 0 else body + b"\x00" * delta
    assert reason_of([frames[0], bad]) is RejectReason.BAD_PAYLOAD_SIZE


@pytest.mark.parametrize(
    ("scale", "reason"),
    [
        (float("nan"), RejectReason.NON_FINITE),
        (float("inf"), RejectReason.NON_FINITE),
        (-1.0, RejectReason.BAD_SCALE),
        (3e38, RejectReason.NON_FINITE),  # finite, but 127 × scale overflows float32
    ],
)
def test_int8_hostile_scales_are_refused(scale: float, reason: RejectReason) -> None:
    """A block scale that is NaN, infinite, negative, or that overflows when dequantised never reaches the model."""
    frames = int8_frames(vector())
    body = bytearray(frames[1])
    body[4:8] = np.array([scale], dtype="<f4").tobytes()  # the second block's scale
    assert reason_of([frames[0], bytes(body)]) is reason


def test_top_k_keeps_the_largest_magnitudes_in_index_order() -> None:
    """top_k returns the k largest |d| with increasing int32 indices and the values at those indices."""
    d = torch.tensor([0.1, -5.0, 0.0, 3.0, -0.2, 4.0])
    idx, values = top_k(d, 3)
    assert idx.dtype == torch.int32 and idx.tolist() == [1, 3, 5]
    assert values.tolist() == [-5.0, 3.0, 4.0]
