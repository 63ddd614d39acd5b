"""The wire format: round trip, one test per rejection reason, and fuzzing of the decoder."""

from __future__ import annotations

import msgpack
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.errors import RejectReason, WireError
from gossip.net.wire import MAX_HEADER_BYTES, Expectation, Kind, decode, encode

RUN = b"R" * 8
FP = b"F" * 16
N = 10


def expect(**kw: object) -> Expectation:
    base = dict(run_id=RUN, fingerprint=FP, numel=N, node_count=4, neighbours=frozenset({1, 3}), round_min=5, round_max=7)
    base.update(kw)
    return Expectation(**base)  # type: ignore[arg-type]


def model_frames(src: int = 1, round_: int = 5, payload: torch.Tensor | None = None, **kw: object) -> list:
    payload = torch.arange(N, dtype=torch.float32) if payload is None else payload
    return encode(Kind.MODEL, src=src, round=round_, run_id=RUN, fingerprint=FP, payload=payload, **kw)  # type: ignore[arg-type]


def header_frames(**fields: object) -> list:
    header = {"v": 1, "kind": "model", "run": RUN, "src": 1, "round": 5, "fp": FP, "dtype": "float32", "n": N}
    header.update(fields)
    header = {k: v for k, v in header.items() if v is not None}
    return [msgpack.packb(header, use_bin_type=True), torch.zeros(N).numpy().tobytes()]


def reason_of(frames: list, sender: int | None = 1, **kw: object) -> RejectReason:
    with pytest.raises(WireError) as info:
        decode(frames, expect(**kw), sender)
    return info.value.reason


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_model_round_trip(dtype: str) -> None:
    """What encode sends, decode returns: same sender, round, info, and values (up to the wire dtype)."""
    payload = torch.linspace(-3, 3, N)
    msg = decode(model_frames(payload=payload, dtype=dtype, info={"loss": 0.5}), expect(), 1)
    assert msg.kind is Kind.MODEL and msg.src == 1 and msg.round == 5
    assert msg.info == {"loss": 0.5}
    assert msg.payload is not None and msg.payload.dtype == torch.float32
    tol = 0 if dtype == "float32" else 2e-2
    assert torch.allclose(msg.payload, payload, atol=tol)


def test_payload_frame_is_zero_copy() -> None:
    """The float32 payload frame is a view of the tensor's memory, not a copy."""
    payload = torch.zeros(N)
    frames = model_frames(payload=payload)
    payload[0] = 42.0
    assert torch.frombuffer(bytearray(frames[1]), dtype=torch.float32)[0] == 42.0


def test_a_float32_vectors_bytes_travel_as_they_are() -> None:
    """A memoryview payload (a node's ``FlatModel.wire_bytes``) is sent without a copy and decodes like the tensor."""
    vector = torch.linspace(-3, 3, N)
    view = memoryview(vector.numpy()).cast("B")
    frames = encode(Kind.MODEL, src=1, round=5, run_id=RUN, fingerprint=FP, payload=view, info={"loss": 0.5})
    assert frames[1] is view
    assert frames[0] == model_frames(payload=vector, info={"loss": 0.5})[0]
    msg = decode(frames, expect(), 1)
    assert msg.payload is not None and torch.equal(msg.payload, vector)


@pytest.mark.parametrize(
    "view, dtype",
    [
        (memoryview(torch.zeros(N).numpy()), "float32"),  # a float view, not bytes
        (memoryview(bytes(4 * N + 2)), "float32"),  # not a whole number of floats
        (memoryview(bytes(4 * N)), "float16"),  # bytes are sent as they are: float32 only
    ],
)
def test_a_memoryview_payload_must_be_float32_bytes(view: memoryview, dtype: str) -> None:
    """Bytes go out as they are, so only a byte view of whole float32 values is taken: anything else is the caller's bug."""
    with pytest.raises(ValueError):
        encode(Kind.MODEL, src=1, round=5, run_id=RUN, fingerprint=FP, payload=view, dtype=dtype)


def test_hello_has_no_payload() -> None:
    """Control messages are a header alone."""
    frames = encode(Kind.HELLO, src=3, round=0, run_id=RUN)
    assert len(frames) == 1
    msg = decode(frames, expect(), 3)
    assert msg.kind is Kind.HELLO and msg.payload is None


@pytest.mark.parametrize(
    ("frames", "sender", "reason"),
    [
        (lambda: [], 1, RejectReason.BAD_FRAME_COUNT),
        (lambda: model_frames() + [b"x"], 1, RejectReason.BAD_FRAME_COUNT),
        (lambda: [b"\x00" * (MAX_HEADER_BYTES + 1), b""], 1, RejectReason.TOO_LARGE),
        (lambda: [b"\xc1\xc1garbage", b""], 1, RejectReason.BAD_HEADER),
        (lambda: [msgpack.packb([1, 2, 3]), b""], 1, RejectReason.BAD_HEADER),
        (lambda: header_frames(kind="gimme"), 1, RejectReason.BAD_HEADER),
        (lambda: header_frames(src="one"), 1, RejectReason.BAD_HEADER),
        (lambda: header_frames(v=2), 1, RejectReason.BAD_VERSION),
        (lambda: header_frames(run=b"other-rn"), 1, RejectReason.WRONG_RUN),
        (lambda: model_frames(), None, RejectReason.UNKNOWN_SENDER),
        (lambda: model_frames(src=9), 9, RejectReason.UNKNOWN_SENDER),
        (lambda: model_frames(src=3), 1, RejectReason.SENDER_MISMATCH),
        (lambda: model_frames(src=2), 2, RejectReason.NOT_A_NEIGHBOUR),
        (lambda: header_frames(fp=b"G" * 16), 1, RejectReason.FINGERPRINT_MISMATCH),
        (lambda: model_frames(round_=4), 1, RejectReason.STALE_ROUND),
        (lambda: model_frames(round_=8), 1, RejectReason.FUTURE_ROUND),
        (lambda: header_frames(dtype="float64"), 1, RejectReason.BAD_DTYPE),
        (lambda: header_frames(n=N + 1), 1, RejectReason.BAD_PAYLOAD_SIZE),
        (lambda: model_frames()[:1] + [bytes(model_frames()[1])[:-3]], 1, RejectReason.BAD_PAYLOAD_SIZE),
        (lambda: model_frames(payload=torch.tensor([float("nan")] + [0.0] * (N - 1))), 1, RejectReason.NON_FINITE),
        (lambda: model_frames(payload=torch.tensor([float("inf")] + [0.0] * (N - 1))), 1, RejectReason.NON_FINITE),
    ],
    ids=[
        "no-frames",
        "extra-frame",
        "huge-header",
        "not-msgpack",
        "not-a-map",
        "unknown-kind",
        "mistyped-src",
        "version",
        "other-run",
        "no-identity",
        "id-out-of-range",
        "spoofed-src",
        "not-neighbour",
        "fingerprint",
        "stale",
        "future",
        "float64",
        "count",
        "truncated",
        "nan",
        "inf",
    ],
)
def test_each_bad_message_has_its_reason(frames, sender, reason) -> None:
    """Every way a message can be wrong maps to exactly the RejectReason the metrics count it under."""
    assert reason_of(frames(), sender) is reason


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=0, max_size=4), st.one_of(st.none(), st.integers(-5, 10)))
def test_random_bytes_only_ever_raise_wire_error(frames: list[bytes], sender: int | None) -> None:
    """Whatever bytes arrive, decode returns a Message or raises WireError — nothing else escapes."""
    try:
        decode(frames, expect(), sender)
    except WireError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["v", "kind", "run", "src", "round", "fp", "dtype", "n", "info", "zz"]),
        st.one_of(
            st.integers(-(2**63), 2**64 - 1),
            st.text(max_size=10),
            st.binary(max_size=20),
            st.floats(),
            st.none(),
            st.booleans(),
            st.dictionaries(st.text(max_size=5), st.floats(), max_size=3),
        ),
    ),
    st.binary(max_size=64),
)
def test_random_headers_only_ever_raise_wire_error(header: dict, body: bytes) -> None:
    """Well-formed msgpack with hostile field types and values is refused cleanly too."""
    try:
        decode([msgpack.packb(header, use_bin_type=True), body], expect(), 1)
    except WireError:
        pass


def test_all_finite_agrees_with_isfinite() -> None:
    """The one-pass finiteness check is exact, including huge finite values and ±inf pairs."""
    from gossip.net.wire import all_finite

    big = torch.full((1000,), 3.0e38)
    assert all_finite(big)
    for bad in (float("nan"), float("inf"), float("-inf")):
        x = torch.zeros(1000)
        x[500] = bad
        assert not all_finite(x)
    pair = torch.zeros(10)
    pair[0], pair[1] = float("inf"), float("-inf")
    assert not all_finite(pair)


@pytest.mark.parametrize("numel", [10, (1 << 16) - 1, 1 << 16, 200_000])  # numpy's check below 2^16, torch's from there
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "inf and -inf"])
def test_non_finite_float32_payloads_are_refused_at_any_size(numel: int, bad: str) -> None:
    """Both finiteness checks decode uses refuse NaN and ±inf anywhere, and accept huge finite values."""
    payload = torch.full((numel,), 3.0e38)
    assert decode(model_frames(payload=payload), expect(numel=numel), 1).payload is not None
    if bad == "inf and -inf":
        payload[0], payload[-1] = float("inf"), float("-inf")
    else:
        payload[numel // 2] = float(bad)
    assert reason_of(model_frames(payload=payload), numel=numel) is RejectReason.NON_FINITE


def test_decoded_payload_is_zero_copy() -> None:
    """A float32 payload is validated and returned as a view of the frame: nothing proportional to
    the model is copied on receipt."""
    import numpy as np

    frames = model_frames(payload=torch.randn(N))
    msg = decode(frames, expect(), 1)
    assert msg.payload is not None
    assert msg.payload.data_ptr() == np.frombuffer(frames[1], dtype=np.uint8).ctypes.data


# --- the merge kinds and the push-sum mass -----------------------------------------------------------


def merge_frames(kind: Kind = Kind.MERGE, src: int = 2, round_: int = 9, dtype: str = "float32") -> list:
    return encode(kind, src=src, round=round_, run_id=RUN, fingerprint=FP, payload=torch.arange(N, dtype=torch.float32), dtype=dtype)


def test_merge_model_from_any_node_of_the_run_when_merging() -> None:
    """A merge message may come from a non-neighbour (node 2), but only for the merge epoch."""
    msg = decode(merge_frames(), expect(merge_epoch=9), 2)
    assert msg.kind is Kind.MERGE and msg.src == 2 and msg.payload is not None
    assert torch.equal(msg.payload, torch.arange(N, dtype=torch.float32))
    stats = decode(merge_frames(Kind.MERGE_STATS), expect(merge_epoch=9), 2)
    assert stats.kind is Kind.MERGE_STATS


@pytest.mark.parametrize(
    ("frames", "kw", "reason"),
    [
        (lambda: merge_frames(), {}, RejectReason.UNEXPECTED),  # merge disabled at this node
        (lambda: merge_frames(round_=8), {"merge_epoch": 9}, RejectReason.STALE_ROUND),
        (lambda: merge_frames(round_=10), {"merge_epoch": 9}, RejectReason.FUTURE_ROUND),
        (lambda: merge_frames(dtype="float16"), {"merge_epoch": 9}, RejectReason.BAD_DTYPE),  # the merge is exact: float32 only
        (lambda: merge_frames(src=7), {"merge_epoch": 9}, RejectReason.UNKNOWN_SENDER),
    ],
)
def test_bad_merge_messages_are_rejected(frames, kw: dict, reason: RejectReason) -> None:  # type: ignore[no-untyped-def]
    """Merge messages get the same checks as models, plus: merge enabled, exact epoch, float32."""
    assert reason_of(frames(), sender=7 if reason is RejectReason.UNKNOWN_SENDER else 2, **kw) is reason


def test_merge_view_round_trip_and_validation() -> None:
    """A view is one 0/1 byte per node; anything else is refused."""
    frames = encode(Kind.MERGE_VIEW, src=2, round=9, run_id=RUN, members=(True, False, True, True))
    msg = decode(frames, expect(merge_epoch=9), 2)
    assert msg.members == frozenset({0, 2, 3})
    header = msgpack.unpackb(frames[0])
    bad_bytes = [frames[0], b"\x01\x00\x02\x01"]
    assert reason_of(bad_bytes, sender=2, merge_epoch=9) is RejectReason.BAD_HEADER
    short = [msgpack.packb({**header, "n": 3}), b"\x01\x00\x01"]
    assert reason_of(short, sender=2, merge_epoch=9) is RejectReason.BAD_PAYLOAD_SIZE
    assert reason_of([frames[0], b"\x01\x00\x01"], sender=2, merge_epoch=9) is RejectReason.BAD_PAYLOAD_SIZE


@pytest.mark.parametrize("mass", [0.0, -1.0, 5.0, float("nan"), float("inf")])
def test_push_sum_mass_must_be_in_range(mass: float) -> None:
    """The push-sum mass is the one number a receiver takes from a message, so it is bounded: the whole
    network holds mass n, so a share is in (0, n]."""
    header = msgpack.unpackb(model_frames()[0])
    frames = [msgpack.packb({**header, "w": mass}), model_frames()[1]]
    assert reason_of(frames) is RejectReason.BAD_MASS


def test_push_sum_mass_round_trip() -> None:
    """A valid mass arrives as sent; without one, ``mass`` is None."""
    assert decode(model_frames(mass=0.25), expect(), 1).mass == 0.25
    assert decode(model_frames(), expect(), 1).mass is None
