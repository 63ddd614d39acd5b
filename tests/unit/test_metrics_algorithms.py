"""The metrics the algorithms add: per-layer weight variance (bounded labels), local-only rounds, the merge."""

from __future__ import annotations

from prometheus_client import generate_latest

from gossip.ops.metrics import NodeMetrics


def test_layer_variance_series_are_absent_until_measured_then_follow_updates() -> None:
    """Like every measurement gauge: no series before the first round (not a misleading 0), then one
    per (layer, stage), set each round; the merge gauges appear only once the merge ran."""
    m = NodeMetrics(3, [1, 2])
    text = generate_latest(m.registry).decode()
    assert "gossip_layer_weight_variance{" not in text and "gossip_merge_members{" not in text
    m.layer_variance(["hidden.0.weight", "out.weight"], [0.002, 0.003], [0.014, 0.018])
    text = generate_latest(m.registry).decode()
    assert 'gossip_layer_weight_variance{layer="hidden.0.weight",node="3",stage="before"} 0.002' in text
    assert 'gossip_layer_weight_variance{layer="out.weight",node="3",stage="after"} 0.018' in text
    m.local_only_rounds.inc()
    m.merged(5, 1.5)
    text = generate_latest(m.registry).decode()
    assert 'gossip_local_only_rounds_total{node="3"} 1.0' in text
    assert 'gossip_merge_members{node="3"} 5.0' in text
