"""How one node runs: its plan, its parts (send path, receiver, peers, mixer, records), its two drivers, and its daemon.

Nothing is re-exported: the CLI imports :mod:`gossip.node.daemon` for the node's flags, and that must not
import torch; import the modules themselves (``gossip.node.node.Node``, ``gossip.node.plan.plan_node``).
"""

__all__: list[str] = []
