"""Node identity: the one integer type every module uses for a vertex of the topology."""

from __future__ import annotations

from typing import NewType

__all__ = ["NodeId"]

NodeId = NewType("NodeId", int)
"""A vertex of the topology, 0..N-1. Also the node's transport identity and its process index."""
