"""Hostile and mistaken dataset files: bounded reads, bounded inflation, and no dataset that cannot be scored.

Each refusal is one DataError line naming the file. The fixtures are written here and stay small on
disk: a gzip bomb is a few hundred KB that would inflate to hundreds of MB, an oversized file is sparse.
"""

from __future__ import annotations

import io
import os
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from gossip.data import Dataset, load_dataset, load_npz, load_part, save_npz, save_parts
from gossip.data.datasets import MNIST_FILES
from gossip.data.files import MAX_CIFAR_BATCH_BYTES, MAX_IDX_BYTES, MAX_NPZ_BYTES, read_cifar_batch, read_idx, write_idx
from gossip.errors import DataError
from tests.cifar_fixtures import write_cifar_batch

MIB = 1 << 20


def refusal(call: Callable[[], object]) -> str:
    """Run ``call``, expect a DataError, return its message: one line, and short."""
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert message and "\n" not in message and len(message) < 400, message
    return message


def traced_peak(call: Callable[[], object]) -> int:
    """Peak bytes traced while ``call`` runs (numpy reports its buffers to tracemalloc)."""
    tracemalloc.start()
    try:
        call()
    except DataError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def gzip_of(head: bytes, zeros: int) -> bytes:
    """``head`` then ``zeros`` zero bytes, gzipped in a stream: a bomb without holding its content."""
    out = io.BytesIO()
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out.write(deflate.compress(head))
    block = bytes(MIB)
    for _ in range(zeros // MIB):
        out.write(deflate.compress(block))
    out.write(deflate.compress(bytes(zeros % MIB)) + deflate.flush())
    return out.getvalue()


def write_mnist(directory: Path, n_train: int = 20, n_test: int = 10) -> None:
    rng = np.random.default_rng(0)
    arrays = (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train).astype(np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test).astype(np.uint8),
    )
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in zip(MNIST_FILES, arrays, strict=True):
        write_idx(directory / name, array)


# --- datasets that cannot be scored ----------------------------------------------------------------------


@pytest.mark.parametrize(("n_train", "n_test", "empty"), [(20, 0, "t10k-images-idx3-ubyte"), (0, 10, "train-images-idx3-ubyte")])
def test_an_mnist_directory_without_test_or_training_images_is_refused(tmp_path: Path, n_train: int, n_test: int, empty: str) -> None:
    """No test samples used to train and report accuracy 0.0000; no training samples, to train nothing."""
    write_mnist(tmp_path, n_train, n_test)

    assert f"{tmp_path / empty} holds no images" in refusal(lambda: load_dataset("mnist", root=tmp_path))


def test_a_cifar_directory_without_test_images_is_refused(tmp_path: Path) -> None:
    """An empty test_batch is named, not scored."""
    rng = np.random.default_rng(0)
    for k in range(1, 6):
        write_cifar_batch(tmp_path / f"data_batch_{k}", rng.integers(0, 256, (2, 3072), dtype=np.uint8), [0, 1])
    write_cifar_batch(tmp_path / "test_batch", np.zeros((0, 3072), dtype=np.uint8), [])

    assert "test_batch hold no images" in refusal(lambda: load_dataset("cifar10", root=tmp_path))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x_test": np.zeros((0, 2), dtype=np.float32), "y_test": np.zeros(0, dtype=np.int64)}, "has no test samples"),
        ({"x_train": np.zeros((0, 2), dtype=np.float32), "y_train": np.zeros(0, dtype=np.int64)}, "has no training samples"),
        ({"num_classes": 2}, "labels outside 0..1"),  # fewer classes than the labels claim
        ({"num_classes": 10**9}, "num_classes must be in 1..100,000"),
    ],
    ids=["no-test", "no-train", "fewer-classes-than-labels", "absurd-classes"],
)
def test_a_dataset_value_that_cannot_be_trained_and_scored_is_refused(change: dict[str, object], message: str) -> None:
    """Every loader (and a cache) goes through Dataset, which refuses empty splits and impossible class counts."""
    fields: dict[str, object] = {
        "name": "t",
        "x_train": np.zeros((4, 2), dtype=np.float32),
        "y_train": np.array([0, 1, 2, 0]),
        "x_test": np.zeros((1, 2), dtype=np.float32),
        "y_test": np.zeros(1, dtype=np.int64),
        "num_classes": 3,
        "input_shape": (2,),
    }

    assert message in refusal(lambda: Dataset(**{**fields, **change}))  # type: ignore[arg-type]


# --- compressed and oversized files ----------------------------------------------------------------------


def test_an_idx_gzip_that_expands_past_its_header_stops_at_the_header(tmp_path: Path) -> None:
    """A header declaring 20 images followed by 256 MiB of zeros (260 KB gzipped) is refused after
    inflating one byte more than the header declares: a few KB traced, not 256 MiB (gzip.decompress
    inflated all of it; a 28 MB archive of 6 GB exhausted memory)."""
    header = bytes([0, 0, 8, 3]) + np.asarray((20, 28, 28), dtype=">u4").tobytes()
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip_of(header, 256 * MIB))

    assert "has more bytes than its header declares" in refusal(lambda: read_idx(path))
    assert traced_peak(lambda: read_idx(path)) < 2 * MIB


def test_an_idx_header_declaring_more_than_the_cap_is_refused_before_inflating(tmp_path: Path) -> None:
    """(60000, 28, 28, 28) uint8 is 1.3 GB: over MAX_IDX_BYTES, refused from the header alone."""
    header = bytes([0, 0, 8, 4]) + np.asarray((60_000, 28, 28, 28), dtype=">u4").tobytes()
    for name, content in (("plain-idx", header), ("gz-idx.gz", gzip_of(header, 4 * MIB))):
        (tmp_path / name).write_bytes(content)

        assert f"more than {MAX_IDX_BYTES >> 20} MiB; gossip reads no larger IDX file" in refusal(lambda: read_idx(tmp_path / name))  # noqa: B023


def test_a_cifar_batch_gzip_that_expands_past_the_cap_is_refused_within_the_cap(tmp_path: Path) -> None:
    """A batch has no header to bound it, so MAX_CIFAR_BATCH_BYTES does: inflation stops one byte past it."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(gzip_of(b"\x80\x02", MAX_CIFAR_BATCH_BYTES + MIB))

    assert "expands to more than 64 MiB" in refusal(lambda: read_cifar_batch(path))
    assert traced_peak(lambda: read_cifar_batch(path)) < 2 * MAX_CIFAR_BATCH_BYTES + 4 * MIB


def test_a_plain_file_larger_than_its_cap_is_refused_before_reading(tmp_path: Path) -> None:
    """fstat says the size: a sparse file one byte over the cap costs nothing to refuse."""
    path = tmp_path / "train-images-idx3-ubyte"
    with open(path, "wb") as handle:
        handle.truncate(MAX_IDX_BYTES + 1)

    assert "larger than 256 MiB, the most gossip reads" in refusal(lambda: read_idx(path))
    assert traced_peak(lambda: read_idx(path)) < MIB


@pytest.mark.timeout(30)
def test_a_fifo_or_a_device_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO would block the read until a writer came, /dev/zero would never end: both are one line."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "zero").symlink_to("/dev/zero")

    for name in ("fifo", "zero"):
        assert "is not a regular file" in refusal(lambda: read_idx(tmp_path / name))  # noqa: B023
        assert "is not a regular file" in refusal(lambda: read_cifar_batch(tmp_path / name))  # noqa: B023
        assert "is not a regular file" in refusal(lambda: load_npz(tmp_path / name))  # noqa: B023


def test_a_multi_member_gzip_is_read_whole(tmp_path: Path) -> None:
    """Concatenated gzip members are one stream (as gzip.decompress reads them): the capped inflater keeps that."""
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 8, 3]) + np.asarray(array.shape, dtype=">u4").tobytes() + array.tobytes()
    (tmp_path / "two.gz").write_bytes(gzip_of(raw[:10], 0) + gzip_of(raw[10:], 0))

    assert np.array_equal(read_idx(tmp_path / "two.gz"), array)


# --- .npz caches -----------------------------------------------------------------------------------------


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    """A .npy header (magic included) declaring ``shape``: what numpy allocates before it reads the data."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": shape})
    return out.getvalue()


def npy_of(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, array, allow_pickle=False)
    return out.getvalue()


def cache_with(tmp_path: Path, key: str, member: bytes, *, name: str | None = None) -> Path:
    """A real dataset cache with one member replaced by ``member`` (stored under ``name``, default KEY.npy)."""
    good = tmp_path / "good.npz"
    save_npz(load_dataset("synthetic", train=10, test=5), good)
    path = tmp_path / "data.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename != f"{key}.npy":
                dst.writestr(info.filename, src.read(info))
        dst.writestr(name or f"{key}.npy", member)
    return path


def test_an_npz_member_declaring_terabytes_is_refused_from_its_header(tmp_path: Path) -> None:
    """numpy allocates what a .npy header declares before reading: 10^12 floats raised MemoryError (4 TB)."""
    path = cache_with(tmp_path, "x_train", npy_header((10**12,)) + bytes(64))

    assert "declares 3725.3 GiB of arrays; gossip reads at most 1 GiB" in refusal(lambda: load_npz(path))


def test_an_npz_member_that_is_not_npy_is_not_inflated(tmp_path: Path) -> None:
    """A member without the .npy magic came back as its whole inflated content (a zip bomb); now it is refused."""
    path = cache_with(tmp_path, "x_train", bytes(64 * MIB), name="x_train")

    assert "cannot read dataset cache" in refusal(lambda: load_npz(path))
    assert traced_peak(lambda: load_npz(path)) < 8 * MIB


def test_a_single_npy_declaring_terabytes_in_place_of_the_cache_is_refused(tmp_path: Path) -> None:
    """np.load of a bare .npy allocated its declared shape; the magic is checked first."""
    path = tmp_path / "data.npz"
    path.write_bytes(npy_header((10**12,)) + bytes(16))

    assert "a single .npy array, not an .npz archive" in refusal(lambda: load_npz(path))


@pytest.mark.parametrize(
    ("key", "array", "message"),
    [
        ("input_shape", np.asarray(5), "wrong shapes or types"),
        ("num_classes", np.asarray([3, 4]), "wrong shapes or types"),
        ("format", np.asarray("one"), "wrong shapes or types"),
        ("num_classes", np.asarray(10**12), "num_classes must be in 1..100,000"),
    ],
    ids=["scalar-shape", "vector-classes", "string-format", "huge-classes"],
)
def test_a_cache_with_malformed_fields_is_a_data_error(tmp_path: Path, key: str, array: np.ndarray, message: str) -> None:
    """Fields of the wrong shape raised TypeError out of int() or iteration; now they are named."""
    path = cache_with(tmp_path, key, npy_of(array))

    assert message in refusal(lambda: load_npz(path))


def test_a_split_cache_that_declares_too_much_is_ignored(tmp_path: Path) -> None:
    """A node reads its part of shards.npz, or computes it: an oversized or foreign cache is never loaded."""
    good = tmp_path / "shards.npz"
    save_parts([np.arange(3), np.arange(3, 6)], "k", good)
    assert np.array_equal(load_part(good, "k", 1, 6), np.arange(3, 6))
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w") as dst:
        dst.writestr("key.npy", npy_of(np.asarray("k")))
        dst.writestr("part_0.npy", npy_header((10**12,), "<i8") + bytes(64))

    assert load_part(bad, "k", 0, 6) is None


def test_the_npz_cap_holds_a_cifar10_sized_cache() -> None:
    """The cache cap is above CIFAR-10's cache (50 000 + 10 000 float32 images of 3 072 values, 737 MB)."""
    assert 60_000 * 3072 * 4 + 60_000 * 8 < MAX_NPZ_BYTES
