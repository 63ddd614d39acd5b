"""A geometric-median aggregation rule for gossip, as a plug-in (Weiszfeld's iterations).

PYTHONPATH=examples gossip launch --set aggregation.rule=geomedian:GeoMedian --set aggregation.options=iterations=20 ...
"""

from collections.abc import Mapping

import torch


class GeoMedian:
    """The point with the least total distance to the node's own model and the models that arrived."""

    def __init__(self, iterations: int = 10, eps: float = 1e-6) -> None:  # [aggregation] options set these
        self.iterations = iterations
        self.eps = eps  # floors each distance: no division by zero when the estimate sits on an input

    @staticmethod
    def tolerated(inputs: int) -> int:
        """Breakdown point 1/2: it holds while attackers are a minority of a node's inputs."""
        return (inputs - 1) // 2

    def aggregate(self, local: torch.Tensor, received: Mapping[int, torch.Tensor], weights: Mapping[int, float]) -> torch.Tensor:
        points = torch.stack([local, *received.values()])  # (k, P); like the median, it ignores the mixing weights
        estimate = points.mean(dim=0)
        for _ in range(self.iterations):  # Weiszfeld: re-average, each input weighted by 1 / its distance
            w = 1.0 / torch.linalg.vector_norm(points - estimate, dim=1).clamp_min(self.eps)
            estimate = (w[:, None] * points).sum(dim=0) / w.sum()
        return estimate
