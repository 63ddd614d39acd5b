"""Readers (and fixture writers) for the on-disk formats of MNIST (IDX) and CIFAR-10 (python batches).

IDX (LeCun's MNIST format) is a 4-byte magic ``00 00 <dtype code> <ndim>``, ``ndim`` big-endian
``uint32`` dimensions, then the big-endian payload. :func:`read_idx` checks every one of those against
the file's real length, so a truncated download is a :class:`~gossip.errors.DataError` naming the file,
never a short array or a numpy reshape error.

CIFAR-10's "python version" batches are pickles. Unpickling runs whatever callables the file names, so
:func:`read_cifar_batch` never calls ``pickle.load``: it uses :class:`_CifarUnpickler`, whose
``find_class`` hands out only the few globals a numpy array needs (see its docstring for the threat
reasoning; it is what ``torch.load(weights_only=True)`` does for tensors). Nothing in the package writes a
pickle: the test fixture writer lives in ``tests/cifar_fixtures.py``. Both formats may be gzip-compressed;
compression is detected from the gzip magic bytes.
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gossip.errors import DataError

__all__ = ["read_cifar_batch", "read_idx", "write_idx"]

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


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped if it starts with the gzip magic."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is a corrupt or truncated gzip file ({exc})") from exc


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
    raw = _read_bytes(path)
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
    expected = header_bytes + math.prod(shape) * dtype.itemsize
    if len(raw) < expected:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, shape {shape} of {dtype.name} needs {expected}")
    if len(raw) > expected:
        raise DataError(f"{path} has {len(raw) - expected} trailing bytes after shape {shape} of {dtype.name}")
    data = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=header_bytes)
    # astype copies: the result is writable and owns native-endian memory, not a view of ``raw``.
    return data.astype(dtype.newbyteorder("=")).reshape(shape)


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


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 uses it to pickle ``bytes`` at protocol < 3, and nothing more."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_reconstruct() -> Callable[..., Any]:
    # ndarray's own pickling names this function; asking the array finds it under numpy 1.x
    # (numpy.core) and 2.x (numpy._core) alike, without touching the deprecated numpy.core alias.
    return np.empty(0).__reduce__()[0]  # type: ignore[no-any-return,index]


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild dicts, lists, ints, bytes, str and numpy arrays, and nothing else.

    Why not ``pickle.load``: a pickle is a program. Its ``GLOBAL``/``STACK_GLOBAL``/``INST``/``EXT``
    opcodes import any callable by name and ``REDUCE`` calls it, so a file named ``data_batch_1``
    dropped into the data directory (or a dataset mirror that was tampered with) could run
    ``os.system`` the moment it is loaded. Every one of those opcodes resolves names through
    :meth:`find_class`, which is therefore the single choke point, and it allows exactly:

    - ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``
      and ``numpy.dtype``: what an ndarray pickles to. They allocate an array of a given dtype and fill
      it from a byte string; they cannot import or call anything else.
    - ``_codecs.encode``, wrapped so that only ``latin1`` works: Python 3 pickles ``bytes`` at protocol
      2 as ``_codecs.encode(str, "latin1")`` (the official Python 2 files do not need it, batches
      re-saved by Python 3 do). Other codec names are refused so a file cannot pick codecs by name.

    Everything else raises, before anything is called. Persistent ids are refused by the base class.
    What stays possible is a large allocation, which a local file can cause anyway.
    """

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _numpy_reconstruct()
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _field(batch: dict[Any, Any], key: str) -> Any:
    """``batch[key]`` whether the file was pickled by Python 2 (bytes keys) or Python 3 (str keys)."""
    if key.encode() in batch:
        return batch[key.encode()]
    return batch.get(key)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: ``data`` as uint8 ``(N, 3072)`` and ``labels`` as int64 ``(N,)``.

    Only builtin containers and numpy arrays are rebuilt (see :class:`_CifarUnpickler`); a file that
    names any other global is refused with :class:`~gossip.errors.DataError` without running it.
    """
    path = Path(path)
    raw = _read_bytes(path)
    try:
        # encoding="bytes" is how the official Python 2 batches must be read: their str objects,
        # including the array payloads, come back as bytes.
        batch = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # whatever a malformed stream makes the unpickler or numpy raise is a bad file
        raise DataError(f"{path} is not a valid CIFAR-10 batch: {exc}") from exc
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
