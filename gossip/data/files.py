"""Readers (and fixture writers) for the on-disk formats of MNIST (IDX) and CIFAR-10 (python batches).

IDX (LeCun's MNIST format) is a 4-byte magic ``00 00 <dtype code> <ndim>``, ``ndim`` big-endian
``uint32`` dimensions, then the big-endian payload. :func:`read_idx` checks every one of those against
the file's real length, so a truncated download is a :class:`~gossip.errors.DataError` naming the file,
never a short array or a numpy reshape error.

CIFAR-10's "python version" batches are pickles. Unpickling runs whatever callables the file names, so
:func:`read_cifar_batch` does not use the ``pickle`` module at all: :func:`gossip.data.unpickle.unpickle` reads the
opcodes itself, keeps imported names as inert values and rebuilds only containers, numbers, strings and
numpy arrays (see its module docstring for the threat reasoning). Nothing in the package writes a pickle: the
test fixture writer lives in ``tests/cifar_fixtures.py``. Both formats may be gzip-compressed;
compression is detected from the gzip magic bytes.

Every read is bounded before it happens: a file is read only if it is a regular file no larger than its
format's cap (:data:`MAX_IDX_BYTES`, :data:`MAX_CIFAR_BATCH_BYTES`), and gzip is inflated in a stream
that stops at the cap, so a small archive that expands to gigabytes costs one line, not the memory.
For IDX the cap is tighter still: the header says how many bytes follow, and no more are inflated.
"""

from __future__ import annotations

import gzip
import math
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gossip.data.unpickle import unpickle
from gossip.errors import DataError
from gossip.inputs import clip, open_capped, read_capped, size_text

__all__ = ["MAX_CIFAR_BATCH_BYTES", "MAX_IDX_BYTES", "MAX_NPZ_BYTES", "read_cifar_batch", "read_idx", "read_npz", "write_idx"]

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
CIFAR_SAMPLE_BYTES = 3 * 32 * 32
MAX_IDX_BYTES = 256 << 20
"""Largest IDX file read, after gunzip: MNIST's training images are 47 MB (60 000 × 28 × 28)."""
MAX_CIFAR_BATCH_BYTES = 64 << 20
"""Largest CIFAR-10 batch read, after gunzip: each official batch is 31 MB (10 000 × 3 072 bytes and labels)."""
MAX_NPZ_BYTES = 1 << 30
"""Largest .npz cache read (a dataset cache, a split): CIFAR-10's dataset cache is 740 MB of float32 images."""
_IDX_HEADER_MAX = 4 + 4 * 255  # magic, then up to 255 big-endian uint32 dimensions
_NPY_MAGIC = b"\x93NUMPY"


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's content, gunzipped if it starts with the gzip magic; at most ``max_bytes`` either way."""
    raw = read_capped(path, max_bytes, DataError, "dataset file")
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    out = _gunzip(raw, max_bytes, path)
    if len(out) > max_bytes:
        raise DataError(f"{path} expands to more than {size_text(max_bytes)}, the most gossip reads of such a file")
    return out


def _gunzip(raw: bytes, limit: int, path: Path) -> bytes:
    """Inflate ``raw`` (gzip, one or more members) up to ``limit + 1`` bytes: one more than ``limit`` says there is more.

    zlib's ``max_length`` bounds what each call produces, so an archive that would expand to gigabytes
    costs ``limit`` bytes and stops there.
    """
    out = bytearray()
    rest = raw
    while rest and len(out) <= limit:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise DataError(f"{path} is a corrupt or truncated gzip file ({exc})") from None
        if len(out) > limit:
            break
        if not inflater.eof:  # it took all the input and wants more
            raise DataError(f"{path} is a corrupt or truncated gzip file (it ends inside a compressed stream)")
        rest = inflater.unused_data  # a next member, as gzip.decompress reads it
    return bytes(out)


def _write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload``, gzipped when the name ends in ``.gz`` (mtime 0, so the bytes are reproducible)."""
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a native-endian array of its declared dtype and shape.

    Raises
    ------
    DataError
        If the file is missing, not IDX (bad magic), or its length disagrees with its header
        (truncated, or trailing bytes).
    """
    path = Path(path)
    raw = read_capped(path, MAX_IDX_BYTES, DataError, "dataset file")
    gz = raw.startswith(_GZIP_MAGIC)
    shape, dtype, expected = _idx_layout(_gunzip(raw, _IDX_HEADER_MAX, path) if gz else raw, path)
    if expected > MAX_IDX_BYTES:
        raise DataError(
            f"{path} declares shape {_brief(shape)} of {dtype.name}, more than {size_text(MAX_IDX_BYTES)}; gossip reads no larger IDX file"
        )
    if gz:
        raw = _gunzip(raw, expected, path)  # what the header declares and one byte more, if there is more
    if len(raw) < expected:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, shape {_brief(shape)} of {dtype.name} needs {expected}")
    if len(raw) > expected:
        extra = "more bytes than its header declares" if gz else f"{len(raw) - expected} trailing bytes"
        raise DataError(f"{path} has {extra} after shape {_brief(shape)} of {dtype.name}")
    data = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=expected - math.prod(shape) * dtype.itemsize)
    # astype copies: the result is writable and owns native-endian memory, not a view of ``raw``.
    return data.astype(dtype.newbyteorder("=")).reshape(shape)


def _brief(shape: tuple[int, ...]) -> str:
    """A shape in a message: an IDX header may declare 255 dimensions."""
    return clip(str(shape), 60)


def _idx_layout(raw: bytes, path: Path) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """The shape, dtype and total file size (header included) an IDX header declares; DataError when malformed."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic {raw[:4].hex() or 'empty'})")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise DataError(f"{path} has unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise DataError(f"{path} declares 0 dimensions")
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, the header alone needs {header_bytes}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    return shape, dtype, header_bytes + math.prod(shape) * dtype.itemsize


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzipped if ``path`` ends in ``.gz``); used to make test fixtures."""
    path = Path(path)
    array = np.asarray(array)
    code = _IDX_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"IDX cannot store dtype {array.dtype}; use one of uint8, int8, int16, int32, float32, float64")
    if not 1 <= array.ndim <= 255:
        raise DataError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    _write_bytes(path, header + np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes())


def _field(batch: dict[Any, Any], key: str) -> Any:
    """``batch[key]`` whether the file was pickled by Python 2 (bytes keys) or Python 3 (str keys)."""
    if key.encode() in batch:
        return batch[key.encode()]
    return batch.get(key)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: ``data`` as uint8 ``(N, 3072)`` and ``labels`` as int64 ``(N,)``.

    Only builtin containers and numpy arrays are rebuilt (see :mod:`gossip.data.unpickle`); a file that
    names any other global is refused with :class:`~gossip.errors.DataError` without running it.
    """
    path = Path(path)
    raw = _read_bytes(path, MAX_CIFAR_BATCH_BYTES)
    try:
        # the official batches are Python 2 pickles: their str objects, array payloads included, come back as bytes
        batch = unpickle(raw)
    except DataError as exc:
        raise DataError(f"{path} is not a valid CIFAR-10 batch: {clip(str(exc))}") from exc
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a valid CIFAR-10 batch: expected a dict, got {type(batch).__name__}")
    data, labels = _field(batch, "data"), _field(batch, "labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_SAMPLE_BYTES:
        described = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, {CIFAR_SAMPLE_BYTES}), got {described}")
    if not isinstance(labels, (list, np.ndarray)) or not all(isinstance(v, (int, np.integer)) for v in labels):
        raise DataError(f"{path}: 'labels' must be a list of integers")
    label_array = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(label_array) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(label_array)} labels")
    return np.ascontiguousarray(data), label_array


def read_npz(path: str | Path, keys: Sequence[str], what: str, max_bytes: int = MAX_NPZ_BYTES) -> dict[str, np.ndarray]:
    """The arrays named ``keys`` that the .npz archive at ``path`` holds (``allow_pickle=False``), or one
    :class:`~gossip.errors.DataError` line naming ``what`` and ``path``.

    numpy allocates whatever an array's .npy header declares before it reads a byte of it, so a small
    archive could claim terabytes (and a member that is not a .npy comes back as its whole inflated
    content). Each wanted member's header is read first, and the sizes they declare must add up to at
    most ``max_bytes``, like the file itself.
    """
    path = Path(path)
    with open_capped(path, max_bytes, DataError, what) as handle:
        if handle.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
            raise DataError(f"{path} is not a {what} (a single .npy array, not an .npz archive)")
        handle.seek(0)
        try:
            archive = np.load(handle, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"cannot read {what} {path}: {clip(str(exc))}") from None
        with archive:
            present = [k for k in keys if k in archive.files]
            try:
                declared = sum(_npy_bytes(archive.zip, k) for k in present)
                if declared > max_bytes:
                    raise DataError(f"{what} {path} declares {size_text(declared)} of arrays; gossip reads at most {size_text(max_bytes)}")
                return {k: archive[k] for k in present}
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
                raise DataError(f"cannot read {what} {path}: {clip(str(exc))}") from None


def _npy_bytes(archive: zipfile.ZipFile, key: str) -> int:
    """The bytes the .npy member ``key`` declares (shape × itemsize), read from its header alone."""
    name = f"{key}.npy" if f"{key}.npy" in archive.namelist() else key
    with archive.open(name) as member:
        version = np.lib.format.read_magic(member)  # ValueError unless it is a .npy
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f"member {key!r} is .npy format {version}, which gossip does not read")
    return math.prod(shape) * dtype.itemsize
