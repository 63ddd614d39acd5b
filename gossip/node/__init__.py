"""How one node runs: its plan, its parts (send path, receiver, peers, mixer, records), its two drivers, and its daemon.

Its public names are imported on first use (:mod:`gossip.exports`): the CLI imports
:mod:`gossip.node.daemon` for the node's flags, and that must not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gossip.exports import lazy_exports

if TYPE_CHECKING:
    from gossip.node.byzantine import ByzantineNode, build_node
    from gossip.node.daemon import run_node
    from gossip.node.node import Node
    from gossip.node.plan import NodePlan, plan_node
    from gossip.node.records import NodeResult

__all__ = [
    "ByzantineNode",
    "Node",
    "NodePlan",
    "NodeResult",
    "build_node",
    "plan_node",
    "run_node",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "gossip.node.node": ("Node",),
        "gossip.node.plan": ("NodePlan", "plan_node"),
        "gossip.node.records": ("NodeResult",),
        "gossip.node.byzantine": ("ByzantineNode", "build_node"),
        "gossip.node.daemon": ("run_node",),
    },
)
