"""What a run exposes live: Prometheus metrics, alert and recording rules, scrape configs and Grafana dashboards."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gossip.exports import lazy_exports

if TYPE_CHECKING:
    from gossip.ops.endpoint import MetricsServer
    from gossip.ops.metrics import NodeMetrics

__all__ = [
    "MetricsServer",
    "NodeMetrics",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "gossip.ops.metrics": ("NodeMetrics",),
        "gossip.ops.endpoint": ("MetricsServer",),
    },
)
