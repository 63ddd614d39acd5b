"""Prometheus metrics of one node: its own registry, named metrics, and an HTTP endpoint it owns.

Each node builds a private ``CollectorRegistry`` (client_python's advice for libraries: no global
registry, so many nodes can live in one test process). Names follow Prometheus conventions:
counters end in ``_total``, durations are ``_seconds`` histograms, sizes ``_bytes``. Labels are
bounded: ``node`` and ``peer`` are vertex ids of the topology (a node only labels its neighbours),
``reason`` is a :class:`~gossip.errors.RejectReason` (or, for refused connections, one of
:data:`~gossip.errors.REFUSAL_REASONS`), ``aggregator`` a rule name.

The registry is served, with ``/healthz`` and ``/readyz``, by :class:`~gossip.ops.endpoint.MetricsServer`
(re-exported here).

Gauges that describe a measurement (loss, accuracy, consensus distance) are absent until the node
first measures them: "not measured yet" must not read as 0 on a dashboard or in an alert.

Adding a metric (e.g. a per-layer variance gauge, labelled by layer name: bounded by the model):
1. create it in :class:`NodeMetrics` with ``registry=r`` and ``node`` as its first label;
2. give it a panel in :mod:`gossip.ops.dashboards` (and a rule in :mod:`gossip.ops.alerts` if it needs an alert),
   then ``gossip dashboards`` to regenerate ``deploy/``;
3. ``tests/e2e/test_prometheus.py`` then fails until a real run makes that panel's query return data
   for every node.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gossip.errors import REFUSAL_REASONS, RejectReason
from gossip.ops.endpoint import MetricsServer

__all__ = ["MembershipMetrics", "MetricsServer", "NodeMetrics"]  # MetricsServer lives in gossip.ops.endpoint

_ROUND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class _FirstSetGauge:
    """One node's child of a labelled gauge, created on the first ``set``: absent until measured."""

    def __init__(self, parent: Gauge, node: str) -> None:
        self._parent = parent
        self._node = node

    def set(self, value: float) -> None:
        self._parent.labels(self._node).set(value)


class NodeMetrics:
    """Every metric a node exports, bound to the node's label; one instance per node."""

    def __init__(self, node: int, neighbours: Iterable[int], aggregator: str = "dsgd", registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        n = str(node)
        self.node = n
        self.aggregator = aggregator
        self._children: dict[tuple[int, int], Any] = {}  # per-peer label children, see _peer

        self.info = Gauge("gossip_node_info", "Static facts about the node (value is always 1).", ["node", "aggregator"], registry=r)
        self.info.labels(n, aggregator).set(1)
        self._progress_metrics(r, n)
        self._learning_metrics(r, n)
        self._traffic_metrics(r, n)
        self._refusal_metrics(r, n)
        self._precreate([str(p) for p in neighbours])
        self._algorithm_metrics(r, n)

    def _progress_metrics(self, r: CollectorRegistry, n: str) -> None:
        """Progress and timing: rounds done, planned and current, and the round, step and wait histograms."""
        labels = ["node"]
        self.rounds = Counter("gossip_rounds_total", "Rounds this node has completed.", labels, registry=r).labels(n)
        self.rounds_planned = Gauge(
            "gossip_rounds_planned",
            "Rounds this node is configured to run; it is finished when gossip_rounds_total reaches this.",
            labels,
            registry=r,
        ).labels(n)
        self.round = Gauge(
            "gossip_round", "The round this node is in (0-based: the current round, not the last completed one).", labels, registry=r
        ).labels(n)
        self.round_duration = Histogram(
            "gossip_round_duration_seconds",
            "Wall time of one full round: train, send, wait, aggregate, evaluate.",
            labels,
            buckets=_ROUND_BUCKETS,
            registry=r,
        ).labels(n)
        self.train_step = Histogram(
            "gossip_train_step_duration_seconds", "Wall time of one local optimiser step.", labels, buckets=_STEP_BUCKETS, registry=r
        ).labels(n)
        self.wait = Histogram(
            "gossip_wait_duration_seconds",
            "Time spent in a round waiting for the neighbours' models.",
            labels,
            buckets=_ROUND_BUCKETS,
            registry=r,
        ).labels(n)

    def _learning_metrics(self, r: CollectorRegistry, n: str) -> None:
        """Learning: losses, accuracy and consensus distance, each absent until first measured."""
        labels = ["node"]
        self.train_loss = _FirstSetGauge(
            Gauge("gossip_train_loss", "Mean training loss of the last round's local steps.", labels, registry=r), n
        )
        self.test_accuracy = _FirstSetGauge(
            Gauge("gossip_test_accuracy", "Test accuracy (0..1) of the node's model at its last evaluation.", labels, registry=r), n
        )
        self.test_loss = _FirstSetGauge(
            Gauge("gossip_test_loss", "Test loss of the node's model at its last evaluation.", labels, registry=r), n
        )
        self.consensus_distance = _FirstSetGauge(
            Gauge(
                "gossip_consensus_distance",
                "L2 distance between the node's model and its neighbourhood's weighted average, before mixing.",
                labels,
                registry=r,
            ),
            n,
        )

    def _traffic_metrics(self, r: CollectorRegistry, n: str) -> None:
        """Neighbours and traffic: who was heard, and messages and bytes by peer."""
        labels = ["node"]
        peer_labels = ["node", "peer"]
        self.peers_alive = Gauge("gossip_peers_alive", "Neighbours whose model arrived in the last round.", labels, registry=r).labels(n)
        self.neighbours = Gauge(
            "gossip_neighbours", "Neighbours this node has in the topology (in an open network: now).", labels, registry=r
        ).labels(n)
        # Unit before _total (gossip_sent_bytes_total), as Prometheus names counters of a unit.
        self._bytes_sent = Counter(
            "gossip_sent_bytes_total", "Bytes (header and payload frames) handed to the transport, by peer.", peer_labels, registry=r
        )
        self._bytes_received = Counter(
            "gossip_received_bytes_total", "Bytes of messages that passed validation, by peer.", peer_labels, registry=r
        )
        self._messages_sent = Counter("gossip_messages_sent_total", "Messages handed to the transport, by peer.", peer_labels, registry=r)
        self._messages_received = Counter(
            "gossip_messages_received_total", "Messages that passed validation, by peer.", peer_labels, registry=r
        )
        self._send_dropped = Counter(
            "gossip_messages_send_dropped_total",
            "Messages not sent because the peer was down or its queue full, by peer.",
            peer_labels,
            registry=r,
        )
        self._missed = Counter(
            "gossip_peer_missed_rounds_total",
            "Rounds in which a neighbour's model did not arrive before the timeout, by peer.",
            peer_labels,
            registry=r,
        )
        self._last_seen = Gauge(
            "gossip_peer_last_seen_round", "Last round in which a neighbour's model arrived (-1: never), by peer.", peer_labels, registry=r
        )

    def _refusal_metrics(self, r: CollectorRegistry, n: str) -> None:
        """Refusals: messages dropped by validation, connections refused, models a robust rule discarded."""
        self._rejected = Counter(
            "gossip_messages_rejected_total", "Messages dropped by validation, by reason.", ["node", "reason"], registry=r
        )
        self._refused = Counter(
            "gossip_connections_refused_total",
            "Inbound connections the node shut down (over a cap, an unfinished message held too long, no handshake in time) "
            "or the kernel could not accept (descriptor table full), by reason.",
            ["node", "reason"],
            registry=r,
        )
        self._discarded = Counter(
            "gossip_aggregation_inputs_discarded_total",
            "Neighbour models a robust aggregation rule discarded or clipped, by action.",
            ["node", "aggregator", "action"],
            registry=r,
        )

    def _precreate(self, peers: list[str]) -> None:
        """Pre-create every bounded label value, so a zero is a visible zero and not a missing series
        (rate() over a missing series is empty, and a dashboard panel would show "No data")."""
        n = self.node
        self.neighbours.set(len(peers))
        for reason in RejectReason:
            self._rejected.labels(n, reason.value)
        for refusal in REFUSAL_REASONS:
            self._refused.labels(n, refusal)
        for p in peers:
            for metric in (
                self._bytes_sent,
                self._bytes_received,
                self._messages_sent,
                self._messages_received,
                self._send_dropped,
                self._missed,
            ):
                metric.labels(n, p)
            self._last_seen.labels(n, p).set(-1)
        for action in ("discarded", "clipped"):
            self._discarded.labels(n, self.aggregator, action)

    def _algorithm_metrics(self, r: CollectorRegistry, n: str) -> None:
        """Algorithms: layer variance (labels bounded by the architecture's weight tensors; absent until the
        first round measured it), local-only rounds of a sparse schedule, the global merge."""
        labels = ["node"]
        self._layer_variance = Gauge(
            "gossip_layer_weight_variance",
            "Element variance of one weight tensor of the node's model: stage=before is the average before the variance "
            "correction, stage=after the model leaving the aggregation (equal without the correction).",
            ["node", "layer", "stage"],
            registry=r,
        )
        self.local_only_rounds = Counter(
            "gossip_local_only_rounds_total",
            "Rounds in which the schedule had the node neither send nor wait (local training only).",
            labels,
            registry=r,
        ).labels(n)
        self.merge_members = _FirstSetGauge(
            Gauge("gossip_merge_members", "Models averaged by the final global merge.", labels, registry=r), n
        )
        self.merge_duration = _FirstSetGauge(
            Gauge("gossip_merge_duration_seconds", "Wall time of the final global merge.", labels, registry=r), n
        )

    def layer_variance(self, names: Iterable[str], before: Iterable[float], after: Iterable[float]) -> None:
        """The per-layer variances of this round, in the order of ``names``."""
        for name, b, a in zip(names, before, after, strict=True):
            self._layer_variance.labels(self.node, name, "before").set(b)
            self._layer_variance.labels(self.node, name, "after").set(a)

    def on_gpu(self, device: str) -> None:
        """Export ``gossip_gpu_memory_bytes{device,kind}`` (a CPU node never has the series: absent, not a fake 0)."""
        self._gpu = Gauge(
            "gossip_gpu_memory_bytes",
            "GPU memory torch holds for this node: in_use now, peak since it started.",
            ["node", "device", "kind"],
            registry=self.registry,
        )
        self._gpu_device = device

    def gpu_memory(self, in_use: int, peak: int) -> None:
        """This node's GPU memory now and at its peak (only after :meth:`on_gpu`)."""
        self._gpu.labels(self.node, self._gpu_device, "in_use").set(in_use)
        self._gpu.labels(self.node, self._gpu_device, "peak").set(peak)

    def merged(self, members: int, seconds: float) -> None:
        """The global merge averaged ``members`` models in ``seconds``."""
        self.merge_members.set(members)
        self.merge_duration.set(seconds)

    def _peer(self, metric: Any, peer: int) -> Any:
        """``metric.labels(node, peer)``, looked up once per (metric, peer): ``labels()`` validates and
        locks on every call, a dozen times a round. Bounded: peers are validated node ids."""
        key = (id(metric), peer)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(self.node, str(peer))
        return child

    def sent(self, peer: int, nbytes: int, ok: bool) -> None:
        """A message to ``peer``: counted as sent (with its bytes) if the transport took it, else as dropped."""
        if ok:
            self._peer(self._messages_sent, peer).inc()
            self._peer(self._bytes_sent, peer).inc(nbytes)
        else:
            self._peer(self._send_dropped, peer).inc()

    def received(self, peer: int, nbytes: int, round_: int) -> None:
        """A message from ``peer`` that passed validation."""
        self._peer(self._messages_received, peer).inc()
        self._peer(self._bytes_received, peer).inc(nbytes)

    def arrived(self, peer: int, round_: int) -> None:
        """``peer``'s model for ``round_`` was mixed in."""
        self._peer(self._last_seen, peer).set(round_)

    def missed(self, peer: int) -> None:
        """``peer``'s model did not arrive before the round's timeout."""
        self._peer(self._missed, peer).inc()

    def rejected(self, reason: RejectReason) -> None:
        """A message dropped by validation."""
        self._rejected.labels(self.node, reason.value).inc()

    def connection_refused(self, reason: str) -> None:
        """The transport refused an inbound connection (called from its guard thread: counters are thread-safe)."""
        self._refused.labels(self.node, reason).inc()

    def discarded(self, count: int, action: Literal["discarded", "clipped"] = "discarded") -> None:
        """``count`` neighbour models a robust rule discarded or clipped this round."""
        if count:
            self._discarded.labels(self.node, self.aggregator, action).inc(count)


class MembershipMetrics:
    """An open network's metrics (``[membership] enabled``), beside a member's :class:`NodeMetrics`: a fixed-topology
    node does not export them. ``gossip_neighbours`` follows the member's neighbours as they change."""

    EVENTS = ("joins", "leaves", "failures", "neighbour_changes")

    def __init__(self, node: NodeMetrics) -> None:
        self._neighbours = node.neighbours
        r, n = node.registry, node.node
        events = Counter(
            "gossip_membership_events_total",
            "Open membership: members that joined through this node, neighbours that left or failed, neighbour changes.",
            ["node", "event"],
            registry=r,
        )
        self._events = {event: events.labels(n, event) for event in self.EVENTS}
        self._view = Gauge(
            "gossip_membership_view_size", "Open membership: members in this node's partial view.", ["node"], registry=r
        ).labels(n)

    def happened(self, event: str, count: int) -> None:
        """``count`` more ``event``s (one of :attr:`EVENTS`) seen by this member."""
        self._events[event].inc(count)

    def size(self, view: int, neighbours: int) -> None:
        """The members in this member's partial view, and its neighbours now."""
        self._view.set(view)
        self._neighbours.set(neighbours)
