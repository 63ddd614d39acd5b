"""The checks every section runs on load: numeric ranges, text a file or path can hold, closed choices.

A numeric field declares its range where it is defined (``lr: float = real(0.05, 0, 1e6)``), so the
range is stated once: the section checks against it, error messages quote it, and ``check_link_value``
holds a topology file's link attributes to the same bounds as ``[links]``. Every failure is one
:class:`~gossip.errors.ConfigError` line naming ``[section] key``.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field, fields
from typing import Any, get_args

from gossip.errors import ConfigError

__all__ = [
    "DAY_S",
    "FOREVER",
    "MAX_CONFIG_BYTES",
    "MAX_NODES",
    "MAX_SEED",
    "MAX_TEXT",
    "Range",
    "check",
    "check_choice",
    "check_fields",
    "check_path_text",
    "check_text",
    "integer",
    "integers",
    "name_text",
    "range_of",
    "real",
    "share_of",
    "show",
]

MAX_NODES = 10_000  # the most nodes a run may have (a process or container each); the memory check refuses far fewer on one machine
MAX_SEED = 2**32 - 1  # seeds derived from it (seed * 1_000_003 + node) stay inside torch's 64-bit generator seeds
MAX_TEXT = 4096  # the longest string setting (PATH_MAX): paths, names, addresses
MAX_CONFIG_BYTES = 1 << 20  # the largest TOML file (or --set / GOSSIP_* value) read; real configs are a few kB
DAY_S = 86_400.0
FOREVER = 1e100  # the bound of attack magnitudes: any finite number an experiment may want to try


def check(cond: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``cond``."""
    if not cond:
        raise ConfigError(message)


def show(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error message stays one short line whatever was typed."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def name_text(text: str) -> str:
    """A name or path as typed, or its cut-down repr when it holds characters that would break the line."""
    return text if len(text) <= 200 and text.isprintable() else show(text, 200)


def _number_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else repr(float(x))


@dataclass(frozen=True)
class Range:
    """The values a numeric setting may take: every section checks its fields against theirs on load."""

    kind: type  # int or float
    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    max_len: int | None = None  # set for a list of such numbers: its longest length

    def __str__(self) -> str:
        if self.kind is int:
            return f"{int(self.lo)}..{int(self.hi)}"
        return f"{'(' if self.lo_open else '['}{_number_text(self.lo)}, {_number_text(self.hi)}{')' if self.hi_open else ']'}"

    def admits(self, value: object) -> bool:
        """Whether ``value`` is a number of this kind (never a bool, NaN or infinity) inside the range."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        number = int(value) if isinstance(value, numbers.Integral) else float(value)  # an int compares exactly, however large
        if not math.isfinite(number):
            return False
        above = number > self.lo if self.lo_open else number >= self.lo
        below = number < self.hi if self.hi_open else number <= self.hi
        return above and below

    def checked(self, value: object, where: str) -> Any:
        """``value`` as the field stores it (a float for a float field, a tuple for a list), or ConfigError naming ``where``."""
        what = "an integer" if self.kind is int else "a number"
        if self.max_len is not None:
            items = value if isinstance(value, (tuple, list)) else None
            ok = items is not None and len(items) <= self.max_len and all(self.admits(v) for v in items)
            shown = list(value) if isinstance(value, tuple) else value
            check(ok, f"{where} must be a list of at most {self.max_len} integers in {self}, got {show(shown)}")
            return tuple(int(v) for v in items or ())
        if not (isinstance(value, numbers.Real) and self.admits(value)):
            raise ConfigError(f"{where} must be {what} in {self}, got {show(value)}")
        if self.kind is int and isinstance(value, numbers.Integral):  # admits() took no other kind of int
            return int(value)
        return float(value)


def integer(default: int, lo: int, hi: int) -> Any:
    """A field holding an integer in ``lo..hi``."""
    return field(default=default, metadata={"range": Range(int, lo, hi)})


def real(default: float, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Any:
    """A field holding a finite number in ``[lo, hi]`` (or an open end)."""
    return field(default=default, metadata={"range": Range(float, lo, hi, lo_open, hi_open)})


def integers(lo: int, hi: int, max_len: int) -> Any:
    """A field holding a list of at most ``max_len`` integers in ``lo..hi`` (default: empty)."""
    return field(default=(), metadata={"range": Range(int, lo, hi, max_len=max_len)})


# C0 and C1 control characters (newline, tab, NUL, DEL, ...) and lone surrogates (bytes of invalid UTF-8 on a command line)
_UNWRITABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def check_text(where: str, text: str) -> None:
    """Refuse a string that would break a file, a path or an address it ends up in."""
    check(len(text) <= MAX_TEXT, f"{where} is longer than {MAX_TEXT} characters")
    bad = _UNWRITABLE.search(text)
    if bad is not None:
        what = "bytes that are not UTF-8" if "\ud800" <= bad.group() <= "\udfff" else "control characters (newline, tab, ...)"
        raise ConfigError(f"{where} must not contain {what}, got {show(text)}")


def check_path_text(where: str, text: str) -> None:
    """Refuse a path that a run's files could not hold (a newline in it, say): ConfigError naming ``where``."""
    check_text(where, text)


def check_fields(section: Any, name: str) -> None:
    """Check every field of a section: numbers against their ranges, strings for what files and paths cannot hold.

    Runs first in every section's ``__post_init__``, so the checks after it compare real numbers (never NaN).
    """
    for f in fields(section):
        value = getattr(section, f.name)
        where = f"[{name}] {f.name}"
        rng = f.metadata.get("range")
        if rng is not None:
            object.__setattr__(section, f.name, rng.checked(value, where))
        elif isinstance(value, str):
            check_text(where, value)
        elif isinstance(value, tuple):
            check(len(value) <= MAX_NODES, f"{where} has more than {MAX_NODES} entries")
            for item in value:
                if isinstance(item, str):
                    check_text(where, item)


def check_choice(section: str, key: str, value: object, kind: Any) -> None:
    """Refuse ``value`` unless it is one of the ``Literal`` type ``kind``'s values."""
    choices = get_args(kind)
    check(value in choices, f"[{section}] {key} = {show(value)} is not one of {', '.join(map(repr, choices))}")


def share_of(fraction: float, n: int, *, up: bool = False) -> int:
    """⌊fraction · n⌋ (⌈fraction · n⌉ with ``up``), exact for the fraction as it was written.

    Why: the float product is not the product of the decimals a user writes, so ``int(0.29 * 100)``
    is 28 and ``math.ceil(0.07 * 100)`` is 8. A float's shortest ``repr`` is the decimal that was
    typed (TOML, ``--set``), so the count is computed from it in integer arithmetic (no ``fractions``
    import: it pulls in ``decimal``, ~0.5 MiB in every node). ``fraction`` must be finite.
    """
    mantissa, _, exponent = repr(float(fraction)).lower().partition("e")
    whole, _, decimals = mantissa.partition(".")
    numerator = int(whole + decimals)
    denominator: int = 10 ** len(decimals)
    shift = int(exponent or 0)
    scale: int = 10 ** abs(shift)
    numerator, denominator = (numerator * scale, denominator) if shift >= 0 else (numerator, denominator * scale)
    return -((-numerator * n) // denominator) if up else (numerator * n) // denominator


def range_of(cls: type, key: str) -> Range:
    """The range the field ``key`` of section ``cls`` declares."""
    found: Range = next(f.metadata["range"] for f in fields(cls) if f.name == key)
    return found
