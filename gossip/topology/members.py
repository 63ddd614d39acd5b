"""Who a member of an open network is, as its peers know it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_MEMBER_ID", "Member"]

MAX_MEMBER_ID = 10_000  # member ids are node ids: 0 <= id < MAX_NODES


@dataclass(frozen=True, order=True)
class Member:
    """A member as peers know it: its node id, the address it listens on, its CURVE public key (32 bytes, or empty)."""

    id: int
    address: str
    key: bytes = b""
