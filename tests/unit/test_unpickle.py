"""The restricted unpickler: real batches read back exactly, and any other stream is one DataError.

The fuzz properties feed it random bytes, streams made only of the opcodes it executes, and real
CIFAR-style pickles with bytes flipped, inserted or cut: whatever comes in, :func:`unpickle` returns a
value or raises :class:`~gossip.errors.DataError`, never another exception.
"""

from __future__ import annotations

import pickle
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossip.data.unpickle import _OPCODES, unpickle
from gossip.errors import DataError

SETTINGS = settings(
    max_examples=300,
    deadline=timedelta(seconds=5),  # generous: an example takes well under a millisecond, but this machine is shared
    suppress_health_check=[HealthCheck.too_slow],
)


def _batch_pickles() -> list[bytes]:
    """Small CIFAR-shaped batches as Python 3 writes them at protocols 2 to 4 (test-only pickle.dumps of our own value)."""
    batch = {"batch_label": "x", "labels": [7, 1], "data": np.arange(2 * 12, dtype=np.uint8).reshape(2, 12), "filenames": [b"a", b"b"]}
    return [pickle.dumps(batch, protocol=protocol) for protocol in (2, 3, 4)]


VALID = _batch_pickles()
OPCODE_BYTES = sorted({*_OPCODES, b"."})


def _only_data_errors(raw: bytes) -> None:
    try:
        unpickle(raw)
    except DataError:
        pass


@st.composite
def mutated_batches(draw: st.DrawFn) -> bytes:
    """A real batch pickle with a few bytes overwritten, inserted or removed, or cut short."""
    raw = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw) - 1))
        change = draw(st.sampled_from(["overwrite", "insert", "delete", "truncate"]))
        if change == "overwrite":
            raw[at] = draw(st.integers(0, 255))
        elif change == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif change == "delete":
            del raw[at]
        else:
            del raw[at:]
        if not raw:
            break
    return bytes(raw)


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_a_batch_pickled_by_python3_reads_back_exactly(protocol: int) -> None:
    """Dicts, lists, str and bytes, ints and a uint8 array come back as the values pickled."""
    data = np.arange(2 * 12, dtype=np.uint8).reshape(2, 12)

    back = unpickle(pickle.dumps({"labels": [7, -1, 1 << 40], "data": data, "names": (b"a", "é")}, protocol=protocol))

    assert back["labels"] == [7, -1, 1 << 40] and back["names"] == (b"a", "é")
    assert np.array_equal(back["data"], data) and back["data"].flags.writeable


def test_a_global_outside_the_array_allowlist_is_refused_by_name() -> None:
    """GLOBAL os.system is a DataError naming it, raised before anything could call it."""
    with pytest.raises(DataError, match=r"refusing to load global os\.system"):
        unpickle(b"cos\nsystem\n(S'true'\ntR.")


@SETTINGS
@given(st.binary(max_size=512))
def test_random_bytes_raise_nothing_but_data_error(raw: bytes) -> None:
    """Any byte string is a value or a DataError."""
    _only_data_errors(raw)


@SETTINGS
@given(st.lists(st.one_of(st.sampled_from(OPCODE_BYTES), st.binary(min_size=1, max_size=4)), max_size=80).map(b"".join))
def test_streams_of_executed_opcodes_raise_nothing_but_data_error(raw: bytes) -> None:
    """Streams made mostly of the opcodes the reader runs (so they get past the first byte) are a value or a DataError."""
    _only_data_errors(raw)


@SETTINGS
@given(mutated_batches())
def test_damaged_batches_raise_nothing_but_data_error(raw: bytes) -> None:
    """A real batch with bytes flipped, inserted, removed or cut is a value or a DataError."""
    _only_data_errors(raw)


def test_a_batch_cut_before_stop_is_a_truncated_data_error() -> None:
    """A real batch missing only its final STOP byte is read to the end and refused there."""
    with pytest.raises(DataError, match="truncated"):
        unpickle(VALID[0][:-1])
