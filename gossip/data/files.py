"""Readers (and fixture writers) for the on-disk formats of MNIST (IDX) and CIFAR-10 (python batches).

IDX (LeCun's MNIST format) is a 4-byte magic ``00 00 <dtype code> <ndim>``, ``ndim`` big-endian
``uint32`` dimensions, then the big-endian payload. :func:`read_idx` checks every one of those against
the file's real length, so a truncated download is a :class:`~gossip.errors.DataError` naming the file,
never a short array or a numpy reshape error.

CIFAR-10's "python version" batches are pickles. Unpickling runs whatever callables the file names, so
:func:`read_cifar_batch` does not use the ``pickle`` module at all: :func:`_parse_pickle` reads the
opcodes itself, keeps imported names as inert values and rebuilds only containers, numbers, strings and
numpy arrays (see its docstring for the threat reasoning). Nothing in the package writes a pickle: the
test fixture writer lives in ``tests/cifar_fixtures.py``. Both formats may be gzip-compressed;
compression is detected from the gzip magic bytes.

Every read is bounded before it happens: a file is read only if it is a regular file no larger than its
format's cap (:data:`MAX_IDX_BYTES`, :data:`MAX_CIFAR_BATCH_BYTES`), and gzip is inflated in a stream
that stops at the cap, so a small archive that expands to gigabytes costs one line, not the memory.
For IDX the cap is tighter still: the header says how many bytes follow, and no more are inflated.
"""

from __future__ import annotations

import codecs
import gzip
import math
import re
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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


class _Refused(ValueError):
    """A batch that names or does something the reader does not allow."""


@dataclass(frozen=True)
class _Global:
    """A name a pickle imports: only ever compared, never imported or called."""

    module: str
    name: str


_RECONSTRUCT = frozenset({_Global("numpy.core.multiarray", "_reconstruct"), _Global("numpy._core.multiarray", "_reconstruct")})
_NDARRAY, _DTYPE, _ENCODE = _Global("numpy", "ndarray"), _Global("numpy", "dtype"), _Global("_codecs", "encode")
_BYTES = frozenset({_Global("__builtin__", "bytes"), _Global("builtins", "bytes")})  # an empty array's payload: bytes()
_DTYPE_NAME = re.compile(r"[|<>=]?[biuf][1248]")  # plain numeric dtypes: all an image batch needs


class _ArrayStub:
    """``_reconstruct(ndarray, ...)`` before ``BUILD`` gives it shape, dtype and bytes."""


def _call(func: Any, args: tuple[Any, ...]) -> Any:
    """``REDUCE``: the calls an ndarray pickles to, done by hand; anything else is refused."""
    if func in _RECONSTRUCT and args[:1] == (_NDARRAY,):
        return _ArrayStub()
    if func == _DTYPE and args and isinstance(args[0], str) and _DTYPE_NAME.fullmatch(args[0]):
        return np.dtype(args[0])
    if func == _ENCODE and len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
        return args[0].encode("latin1")  # Python 3 pickles bytes at protocol 2 as _codecs.encode(str, "latin1")
    if func == _ENCODE:
        raise _Refused(f"refusing _codecs.encode with encoding {args[1:2]!r}")
    if func in _BYTES and args == ():
        return b""
    named = func if isinstance(func, _Global) else f"a {type(func).__name__}"  # never the repr of a file's arbitrary value
    raise _Refused(f"refusing to call {named} with {len(args)} arguments")


def _build(target: Any, state: Any) -> Any:
    """``BUILD``: a dtype's byte order, or an array's shape, dtype and payload."""
    if isinstance(target, np.dtype) and isinstance(state, tuple) and len(state) == 8 and state[1] in "|<>=":
        return target.newbyteorder(state[1]) if state[1] in "<>" else target
    if isinstance(target, _ArrayStub) and isinstance(state, tuple) and len(state) == 5:
        _version, shape, dtype, fortran, payload = state
        if not (
            isinstance(shape, tuple)
            and all(isinstance(d, int) and d >= 0 for d in shape)
            and isinstance(dtype, np.dtype)
            and isinstance(payload, (bytes, str))
        ):
            raise _Refused("malformed array state")
        raw = payload.encode("latin1") if isinstance(payload, str) else payload
        count = math.prod(shape)
        if len(raw) != count * dtype.itemsize:
            raise _Refused(f"array payload of {len(raw)} bytes for shape {shape} of {dtype}")
        return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()  # writable, owns its memory
    raise _Refused(f"refusing to build {type(target).__name__}")


def _parse_pickle(raw: bytes) -> Any:
    """The value of a pickle made of builtin containers, numbers, strings and numpy arrays — without pickle.

    Why not ``pickle.load``: a pickle is a program. ``GLOBAL`` imports any callable by name and
    ``REDUCE`` calls it, so a file named ``data_batch_1`` dropped into the data directory (or a
    tampered mirror) could run ``os.system`` the moment it is loaded. This reader is a stack machine
    for the opcodes CIFAR-10's batches use (protocols 2–4): globals stay inert names, and the only
    calls are the four an ndarray pickles to (``_reconstruct``, ``dtype``, latin-1 ``_codecs.encode``,
    and ``bytes()`` for an empty one), done here by hand. Anything else is refused before it could matter. Python 2 ``str`` comes back as
    ``bytes`` (how the official batches must be read: their payloads are such strings).
    """
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(raw):
            raise _Refused("truncated")
        out = raw[pos : pos + n]
        pos += n
        return out

    def line() -> bytes:
        nonlocal pos
        end = raw.find(b"\n", pos)
        if end < 0:
            raise _Refused("truncated")
        out = raw[pos:end]
        pos = end + 1
        return out

    def pop_mark() -> list[Any]:
        if not marks:
            raise _Refused("no mark")
        at = marks.pop()
        items = stack[at:]
        del stack[at:]
        return items

    def pop() -> Any:
        if not stack:
            raise _Refused("stack underflow")
        return stack.pop()

    def u(fmt: str, n: int) -> int:
        return int(struct.unpack(fmt, take(n))[0])

    while True:
        op = take(1)
        if op == b".":  # STOP
            if len(stack) != 1:
                raise _Refused("stack not a single value at STOP")
            return stack[0]
        if op in (b"\x80", b"\x95"):  # PROTO, FRAME
            take(1 if op == b"\x80" else 8)
        elif op == b"(":
            marks.append(len(stack))
        elif op == b"}":
            stack.append({})
        elif op == b"]":
            stack.append([])
        elif op == b")":
            stack.append(())
        elif op == b"N":
            stack.append(None)
        elif op in (b"\x88", b"\x89"):
            stack.append(op == b"\x88")
        elif op == b"K":
            stack.append(u("<B", 1))
        elif op == b"M":
            stack.append(u("<H", 2))
        elif op == b"J":
            stack.append(u("<i", 4))
        elif op == b"\x8a":  # LONG1
            stack.append(int.from_bytes(take(u("<B", 1)), "little", signed=True))
        elif op == b"G":
            stack.append(float(struct.unpack(">d", take(8))[0]))
        elif op == b"U":  # SHORT_BINSTRING (Python 2 str)
            stack.append(take(u("<B", 1)))
        elif op == b"T":  # BINSTRING
            stack.append(take(u("<I", 4)))
        elif op in (b"C", b"B"):  # SHORT_BINBYTES, BINBYTES
            stack.append(take(u("<B", 1) if op == b"C" else u("<I", 4)))
        elif op in (b"X", b"\x8c"):  # BINUNICODE, SHORT_BINUNICODE
            stack.append(take(u("<I", 4) if op == b"X" else u("<B", 1)).decode("utf-8"))
        elif op == b"V":  # UNICODE (protocol 0)
            stack.append(line().decode("raw_unicode_escape"))
        elif op == b"S":  # STRING (protocol 0): a quoted repr
            text = line()
            if len(text) < 2 or text[:1] not in (b"'", b'"') or text[-1:] != text[:1]:
                raise _Refused("malformed STRING")
            stack.append(codecs.escape_decode(text[1:-1])[0])
        elif op == b"c":  # GLOBAL: a name, refused unless allowed
            module, name = line().decode("ascii", "replace"), line().decode("ascii", "replace")
            stack.append(_allowed(module, name))
        elif op == b"\x93":  # STACK_GLOBAL
            name, module = pop(), pop()
            stack.append(_allowed(str(module), str(name)))
        elif op in (b"q", b"r", b"\x94"):  # BINPUT, LONG_BINPUT, MEMOIZE
            key = u("<B", 1) if op == b"q" else u("<I", 4) if op == b"r" else len(memo)
            if not stack:
                raise _Refused("stack underflow")
            memo[key] = stack[-1]
        elif op in (b"h", b"j"):  # BINGET, LONG_BINGET
            key = u("<B", 1) if op == b"h" else u("<I", 4)
            if key not in memo:
                raise _Refused("memo miss")
            stack.append(memo[key])
        elif op == b"t":
            stack.append(tuple(pop_mark()))
        elif op in (b"\x85", b"\x86", b"\x87"):  # TUPLE1..3
            k = op[0] - 0x84
            if len(stack) < k:
                raise _Refused("stack underflow")
            items = tuple(stack[-k:])
            del stack[-k:]
            stack.append(items)
        elif op in (b"a", b"e"):  # APPEND, APPENDS
            items = [pop()] if op == b"a" else pop_mark()
            target = pop() if op == b"a" else (stack[-1] if stack else None)
            if not isinstance(target, list):
                raise _Refused("append to a non-list")
            target.extend(items)
            if op == b"a":
                stack.append(target)
        elif op in (b"s", b"u"):  # SETITEM, SETITEMS
            items = [pop(), pop()][::-1] if op == b"s" else pop_mark()
            if not stack or not isinstance(stack[-1], dict) or len(items) % 2:
                raise _Refused("setitem on a non-dict")
            for k in range(0, len(items), 2):
                stack[-1][items[k]] = items[k + 1]
        elif op == b"R":  # REDUCE
            args = pop()
            func = pop()
            if not isinstance(args, tuple):
                raise _Refused("REDUCE without an argument tuple")
            stack.append(_call(func, args))
        elif op == b"b":  # BUILD
            state = pop()
            stack.append(_build(pop(), state))
        else:
            raise _Refused(f"refusing opcode {op!r} at byte {pos - 1}")


def _allowed(module: str, name: str) -> _Global:
    found = _Global(module, name)
    if found in _RECONSTRUCT or found in _BYTES or found in (_NDARRAY, _DTYPE, _ENCODE):
        return found
    raise _Refused(f"refusing to load global {module}.{name}")


def _field(batch: dict[Any, Any], key: str) -> Any:
    """``batch[key]`` whether the file was pickled by Python 2 (bytes keys) or Python 3 (str keys)."""
    if key.encode() in batch:
        return batch[key.encode()]
    return batch.get(key)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: ``data`` as uint8 ``(N, 3072)`` and ``labels`` as int64 ``(N,)``.

    Only builtin containers and numpy arrays are rebuilt (see :func:`_parse_pickle`); a file that
    names any other global is refused with :class:`~gossip.errors.DataError` without running it.
    """
    path = Path(path)
    raw = _read_bytes(path, MAX_CIFAR_BATCH_BYTES)
    try:
        # the official batches are Python 2 pickles: their str objects, array payloads included, come back as bytes
        batch = _parse_pickle(raw)
    except Exception as exc:  # whatever a malformed stream makes the parser or numpy raise is a bad file
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
