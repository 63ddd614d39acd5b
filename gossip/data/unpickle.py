"""A restricted unpickler: the value of a pickle of builtin containers, numbers, strings and numpy arrays, without ``pickle``.

Why not ``pickle.load``: a pickle is a program. ``GLOBAL`` imports any callable by name and ``REDUCE``
calls it, so a file named ``data_batch_1`` dropped into the data directory (or a tampered mirror) could
run ``os.system`` the moment it is loaded. This reader is a stack machine for the opcodes CIFAR-10's
batches use (protocols 2–4), one small handler per opcode in :data:`_OPCODES`: globals stay inert names,
and the only calls are the four an ndarray pickles to (``_reconstruct``, ``dtype``, latin-1
``_codecs.encode``, and ``bytes()`` for an empty one), done here by hand. Anything else is refused before
it could matter. Python 2 ``str`` comes back as ``bytes`` (how the official batches must be read: their
payloads are such strings).
"""

from __future__ import annotations

import codecs
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gossip.errors import DataError

__all__ = ["unpickle"]


class _Refused(ValueError):
    """A stream that names or does something the reader does not allow."""


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


def unpickle(raw: bytes) -> Any:
    """The value ``raw`` pickles, rebuilt without importing or calling anything it names.

    Raises :class:`~gossip.errors.DataError` (and nothing else) for any stream this reader refuses or
    cannot parse: whatever a malformed stream makes the parser or numpy raise is a bad file.
    """
    try:
        return _Machine(raw).run()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(str(exc)) from exc


class _Machine:
    """The unpickler's state: the input and its read position, the value stack, the marks and the memo."""

    __slots__ = ("marks", "memo", "pos", "raw", "stack")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.pos = 0
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}

    def run(self) -> Any:
        """Execute opcodes until ``STOP``; its single stack value is the result."""
        while True:
            op = self.take(1)
            if op == b".":  # STOP
                if len(self.stack) != 1:
                    raise _Refused("stack not a single value at STOP")
                return self.stack[0]
            handler = _OPCODES.get(op)
            if handler is None:
                raise _Refused(f"refusing opcode {op!r} at byte {self.pos - 1}")
            handler(self, op)

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes of the stream."""
        if self.pos + n > len(self.raw):
            raise _Refused("truncated")
        out = self.raw[self.pos : self.pos + n]
        self.pos += n
        return out

    def line(self) -> bytes:
        """The bytes up to the next newline (protocol 0's text arguments), newline consumed."""
        end = self.raw.find(b"\n", self.pos)
        if end < 0:
            raise _Refused("truncated")
        out = self.raw[self.pos : end]
        self.pos = end + 1
        return out

    def uint(self, fmt: str, n: int) -> int:
        """The next ``n`` bytes as the integer ``struct`` format ``fmt`` reads."""
        return int(struct.unpack(fmt, self.take(n))[0])

    def pop(self) -> Any:
        if not self.stack:
            raise _Refused("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        """The values pushed since the last ``MARK``, removed from the stack."""
        if not self.marks:
            raise _Refused("no mark")
        at = self.marks.pop()
        items = self.stack[at:]
        del self.stack[at:]
        return items


_Handler = Callable[[_Machine, bytes], None]

# Constants pushed by a one-byte opcode: a fresh container each time, hence factories.
_CONSTANTS: dict[bytes, Callable[[], Any]] = {
    b"}": dict,  # EMPTY_DICT
    b"]": list,  # EMPTY_LIST
    b")": tuple,  # EMPTY_TUPLE
    b"N": lambda: None,  # NONE
    b"\x88": lambda: True,  # NEWTRUE
    b"\x89": lambda: False,  # NEWFALSE
}


def _framing(m: _Machine, op: bytes) -> None:
    """``PROTO`` (one byte of version) and ``FRAME`` (eight bytes of length): nothing to keep."""
    m.take(1 if op == b"\x80" else 8)


def _mark(m: _Machine, op: bytes) -> None:
    m.marks.append(len(m.stack))


def _constant(m: _Machine, op: bytes) -> None:
    m.stack.append(_CONSTANTS[op]())


# Integers: opcode -> (struct format, byte count) of the little-endian value that follows.
_INTS = {b"K": ("<B", 1), b"M": ("<H", 2), b"J": ("<i", 4)}  # BININT1, BININT2, BININT


def _int(m: _Machine, op: bytes) -> None:
    m.stack.append(m.uint(*_INTS[op]))


def _long1(m: _Machine, op: bytes) -> None:
    m.stack.append(int.from_bytes(m.take(m.uint("<B", 1)), "little", signed=True))


def _float(m: _Machine, op: bytes) -> None:
    m.stack.append(float(struct.unpack(">d", m.take(8))[0]))  # BINFLOAT


# Length-prefixed byte strings: opcode -> (struct format, byte count) of the length. Python 2 str stays bytes.
_SIZED_BYTES = {
    b"U": ("<B", 1),  # SHORT_BINSTRING (Python 2 str)
    b"T": ("<I", 4),  # BINSTRING
    b"C": ("<B", 1),  # SHORT_BINBYTES
    b"B": ("<I", 4),  # BINBYTES
}
_SIZED_TEXT = {b"X": ("<I", 4), b"\x8c": ("<B", 1)}  # BINUNICODE, SHORT_BINUNICODE


def _sized_bytes(m: _Machine, op: bytes) -> None:
    m.stack.append(m.take(m.uint(*_SIZED_BYTES[op])))


def _sized_text(m: _Machine, op: bytes) -> None:
    m.stack.append(m.take(m.uint(*_SIZED_TEXT[op])).decode("utf-8"))


def _unicode(m: _Machine, op: bytes) -> None:
    m.stack.append(m.line().decode("raw_unicode_escape"))  # UNICODE (protocol 0)


def _string(m: _Machine, op: bytes) -> None:
    """``STRING`` (protocol 0): a quoted repr."""
    text = m.line()
    if len(text) < 2 or text[:1] not in (b"'", b'"') or text[-1:] != text[:1]:
        raise _Refused("malformed STRING")
    m.stack.append(codecs.escape_decode(text[1:-1])[0])


def _global(m: _Machine, op: bytes) -> None:
    """``GLOBAL``: a module and a name on two lines, refused unless allowed."""
    module, name = m.line().decode("ascii", "replace"), m.line().decode("ascii", "replace")
    m.stack.append(_allowed(module, name))


def _stack_global(m: _Machine, op: bytes) -> None:
    name, module = m.pop(), m.pop()
    m.stack.append(_allowed(str(module), str(name)))


def _allowed(module: str, name: str) -> _Global:
    found = _Global(module, name)
    if found in _RECONSTRUCT or found in _BYTES or found in (_NDARRAY, _DTYPE, _ENCODE):
        return found
    raise _Refused(f"refusing to load global {module}.{name}")


def _put(m: _Machine, op: bytes) -> None:
    """``BINPUT``, ``LONG_BINPUT``, ``MEMOIZE``: remember the top of the stack."""
    key = m.uint("<B", 1) if op == b"q" else m.uint("<I", 4) if op == b"r" else len(m.memo)
    if not m.stack:
        raise _Refused("stack underflow")
    m.memo[key] = m.stack[-1]


def _get(m: _Machine, op: bytes) -> None:
    """``BINGET``, ``LONG_BINGET``: push a remembered value."""
    key = m.uint("<B", 1) if op == b"h" else m.uint("<I", 4)
    if key not in m.memo:
        raise _Refused("memo miss")
    m.stack.append(m.memo[key])


def _tuple(m: _Machine, op: bytes) -> None:
    m.stack.append(tuple(m.pop_mark()))  # TUPLE


def _small_tuple(m: _Machine, op: bytes) -> None:
    """``TUPLE1``..``TUPLE3``: the top one to three values."""
    k = op[0] - 0x84
    if len(m.stack) < k:
        raise _Refused("stack underflow")
    items = tuple(m.stack[-k:])
    del m.stack[-k:]
    m.stack.append(items)


def _append(m: _Machine, op: bytes) -> None:
    """``APPEND`` (one value) and ``APPENDS`` (the values since the mark) onto the list below them."""
    items = [m.pop()] if op == b"a" else m.pop_mark()
    target = m.pop() if op == b"a" else (m.stack[-1] if m.stack else None)
    if not isinstance(target, list):
        raise _Refused("append to a non-list")
    target.extend(items)
    if op == b"a":
        m.stack.append(target)


def _setitem(m: _Machine, op: bytes) -> None:
    """``SETITEM`` (one pair) and ``SETITEMS`` (the pairs since the mark) into the dict below them."""
    items = [m.pop(), m.pop()][::-1] if op == b"s" else m.pop_mark()
    if not m.stack or not isinstance(m.stack[-1], dict) or len(items) % 2:
        raise _Refused("setitem on a non-dict")
    for k in range(0, len(items), 2):
        m.stack[-1][items[k]] = items[k + 1]


def _reduce(m: _Machine, op: bytes) -> None:
    args = m.pop()
    func = m.pop()
    if not isinstance(args, tuple):
        raise _Refused("REDUCE without an argument tuple")
    m.stack.append(_call(func, args))


def _build_op(m: _Machine, op: bytes) -> None:
    state = m.pop()
    m.stack.append(_build(m.pop(), state))


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


# Every opcode the reader executes (STOP is the loop's own); any other byte is refused.
_OPCODES: dict[bytes, _Handler] = {
    b"\x80": _framing,  # PROTO
    b"\x95": _framing,  # FRAME
    b"(": _mark,
    **dict.fromkeys(_CONSTANTS, _constant),
    **dict.fromkeys(_INTS, _int),
    b"\x8a": _long1,
    b"G": _float,
    **dict.fromkeys(_SIZED_BYTES, _sized_bytes),
    **dict.fromkeys(_SIZED_TEXT, _sized_text),
    b"V": _unicode,
    b"S": _string,
    b"c": _global,
    b"\x93": _stack_global,
    b"q": _put,  # BINPUT
    b"r": _put,  # LONG_BINPUT
    b"\x94": _put,  # MEMOIZE
    b"h": _get,  # BINGET
    b"j": _get,  # LONG_BINGET
    b"t": _tuple,
    b"\x85": _small_tuple,
    b"\x86": _small_tuple,
    b"\x87": _small_tuple,
    b"a": _append,
    b"e": _append,
    b"s": _setitem,
    b"u": _setitem,
    b"R": _reduce,
    b"b": _build_op,
}
