"""How the topology modules refuse input: one-line TopologyError messages, and node ids as files and specs write them.

Every reader (the constructor, the generators, the file formats) quotes what it refuses through these,
so a hostile value (a 5 000-digit id, a megabyte string, an unhashable object) never makes a message
long, raise something else, or spell out a number ``str()`` would refuse to print.
"""

from __future__ import annotations

import math
import re
from typing import TypeGuard

import numpy as np

from gossip.config import MAX_NODES
from gossip.errors import TopologyError
from gossip.inputs import quote

__all__ = ["ID_LIMIT", "MAX_ID_DIGITS", "as_int", "count_text", "is_id", "need", "shown"]

MAX_ID_DIGITS = 18  # an id with more digits is outside 0..MAX_NODES-1 anyway; int() of 4300+ digits raises
ID_LIMIT = 10**MAX_ID_DIGITS


def need(ok: bool, message: str) -> None:
    """Raise ``TopologyError(message)`` unless ``ok``."""
    if not ok:
        raise TopologyError(message)


def is_id(i: object, n: int) -> TypeGuard[int | np.integer]:
    """Whether ``i`` is an integer node id in ``0..n-1`` (a bool is not)."""
    return isinstance(i, int | np.integer) and not isinstance(i, bool) and bool(0 <= i < n)


def count_text(k: int) -> str:
    """``12,345``, or ``a 31-digit number``: a number as a message shows it (str() of a huge int is long, or raises)."""
    if abs(k) < ID_LIMIT:
        return f"{k:,}"
    if k.bit_length() <= 13_000:  # under int()'s 4300-digit limit for str
        return f"a {len(str(abs(k)))}-digit number"
    return f"a number of about {int(k.bit_length() * math.log10(2))} digits"


def shown(x: object) -> str:
    """A value from a file as a message quotes it: short, whatever its type and size."""
    if isinstance(x, int | np.integer) and not isinstance(x, bool):
        return count_text(int(x))
    if isinstance(x, str):
        return quote(x)
    if x is None or isinstance(x, bool | float):
        return repr(x)
    return f"a {type(x).__name__}"


def as_int(label: object, where: str) -> int | None:
    """An integer id (``3``, ``"3"``, ``" +3 "``), or None for a name. Ids of many digits are refused, not parsed."""
    if isinstance(label, int | np.integer) and not isinstance(label, bool):
        return int(label)
    if isinstance(label, str) and (digits := re.fullmatch(r"\s*[+-]?0*(\d+)\s*", label)):
        if len(digits[1]) > MAX_ID_DIGITS:
            raise TopologyError(
                f"{where}: node id {quote(label.strip(), 30)} has {len(digits[1]):,} digits; ids are 0..{MAX_NODES - 1:,} at most"
            )
        return int(label)
    return None
