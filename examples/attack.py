"""A "mimic" attack for gossip, as a plug-in: every attacker sends one honest node's model (Karimireddy et al. 2022).

PYTHONPATH=examples gossip launch --set byzantine.nodes=[4] --set byzantine.attack=attack:Mimic --set byzantine.options=victim=0 ...
"""

from collections.abc import Mapping, Sequence

import torch

from gossip.algorithms.attacks import Target
from gossip.ids import NodeId


class Mimic:
    """Send a copy of one honest model: nothing about it looks wrong, but that node's data now counts once more per attacker."""

    name = "mimic"  # shown in the attacker's summary
    omniscient = True  # wait for the honest neighbours' round-t models before sending
    trains = False  # the attacker's own model plays no part in what it sends

    def __init__(self, victim: int = -1) -> None:  # [byzantine] options set it; -1: the lowest id this round brought
        self.victim = NodeId(victim)

    def payloads(
        self, t: int, own: torch.Tensor, honest: Mapping[NodeId, torch.Tensor], targets: Sequence[Target]
    ) -> dict[NodeId, torch.Tensor]:
        copied = honest.get(self.victim, honest[min(honest)]) if honest else own  # nothing arrived in time: its own, not silence
        return {target.id: copied for target in targets}  # the same copy to every honest neighbour; inputs are never modified
