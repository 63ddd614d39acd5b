"""Prometheus metrics of one node: its own registry, named metrics, and an HTTP endpoint it owns.

Each node builds a private ``CollectorRegistry`` (client_python's advice for libraries: no global
registry, so many nodes can live in one test process). Names follow Prometheus conventions:
counters end in ``_total``, durations are ``_seconds`` histograms, sizes ``_bytes``. Labels are
bounded: ``node`` and ``peer`` are vertex ids of the topology (a node only labels its neighbours),
``reason`` is a :class:`~gossip.errors.RejectReason` (or, for refused connections, one of
:data:`~gossip.errors.REFUSAL_REASONS`), ``aggregator`` a rule name.

The endpoint also answers ``/healthz`` (the process is alive: 200) and ``/readyz`` (200 once every
neighbour said hello, 503 before), for Docker health checks and Kubernetes probes.

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

import collections
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import make_wsgi_app

from gossip.errors import REFUSAL_REASONS, RejectReason, TransportError

__all__ = ["MetricsServer", "NodeMetrics"]

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
        peers = [str(p) for p in neighbours]
        self.node = n
        self.aggregator = aggregator
        self._children: dict[tuple[int, int], Any] = {}  # per-peer label children, see _peer
        labels = ["node"]
        peer_labels = ["node", "peer"]

        self.info = Gauge("gossip_node_info", "Static facts about the node (value is always 1).", ["node", "aggregator"], registry=r)
        self.info.labels(n, aggregator).set(1)

        # progress and timing
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

        # learning
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

        # neighbours and traffic
        self.peers_alive = Gauge("gossip_peers_alive", "Neighbours whose model arrived in the last round.", labels, registry=r).labels(n)
        self.neighbours = Gauge("gossip_neighbours", "Neighbours this node has in the topology.", labels, registry=r).labels(n)
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

        # refusals
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

        # Pre-create every bounded label value, so a zero is a visible zero and not a missing series
        # (rate() over a missing series is empty, and a dashboard panel would show "No data").
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
            self._discarded.labels(n, aggregator, action)

        # algorithms: layer variance (labels bounded by the architecture's weight tensors; absent until
        # the first round measured it), local-only rounds of a sparse schedule, the global merge
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

    def rejected_count(self, reason: RejectReason) -> float:
        """How many messages were rejected for ``reason`` so far (for tests and summaries)."""
        return float(self._rejected.labels(self.node, reason.value)._value.get())


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on one port, served by one thread with bounded resources.

    Why not prometheus_client's server: it starts a thread per connection and never times a request
    out, so clients that send half a request pile up threads and descriptors until the node dies (1,004
    half-sent requests: 1,002 threads). Here one thread runs a selector loop over non-blocking sockets:
    at most ``MAX_CONNECTIONS`` open at once (a new one displaces an unfinished request, see
    :func:`_victim`), a request must arrive whole within ``READ_TIMEOUT_S`` and fit in
    ``MAX_REQUEST_BYTES``, and the response must be taken within ``WRITE_TIMEOUT_S``. Each response
    closes its connection. A scrape takes milliseconds, so a flood of slow clients delays it by one
    turn of the loop, not by their timeouts.
    """

    MAX_CONNECTIONS = 16
    READ_TIMEOUT_S = 5.0
    WRITE_TIMEOUT_S = 10.0
    MAX_REQUEST_BYTES = 8192

    def __init__(self, metrics: NodeMetrics, host: str, port: int, ready: Callable[[], bool]) -> None:
        self._metrics_app = make_wsgi_app(metrics.registry)
        self._ready = ready
        self._host = host
        self._port = port
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._waker: tuple[socket.socket, socket.socket] | None = None

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1]) if self._listener is not None else self._port

    def start(self) -> None:
        """Bind and serve; raises TransportError when the port is taken."""
        try:
            family, kind, proto, _name, address = socket.getaddrinfo(
                self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            listener = socket.socket(family, kind, proto)
            try:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(address)
                listener.listen(64)
            except OSError:
                listener.close()
                raise
        except OSError as exc:
            raise TransportError(f"metrics: cannot listen on {self._host}:{self._port}: {exc.strerror or exc}") from None
        listener.setblocking(False)
        self._listener = listener
        self._waker = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        assert self._waker is not None
        self._waker[1].send(b"x")
        self._thread.join(timeout=5)
        self._thread = None
        for sock in (self._listener, *self._waker):
            if sock is not None:
                sock.close()
        self._listener = None
        self._waker = None

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ok = self._ready()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ready\n" if ok else b"waiting for neighbours\n"]
        return self._metrics_app(environ, start_response)

    # -- the serving thread ---------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._listener is not None and self._waker is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ, None)
            selector.register(self._waker[0], selectors.EVENT_READ, None)
            open_: dict[socket.socket, _HttpConnection] = {}  # in the order they were accepted
            try:
                while not self._stopping.is_set():
                    now = time.monotonic()
                    timeout = min((c.deadline for c in open_.values()), default=now + 1.0) - now
                    ready = [key.fileobj for key, _mask in selector.select(max(0.0, timeout))]
                    # the open connections first: a request that arrived is served before new
                    # connections can push its connection out
                    for sock in ready:
                        conn = open_.get(sock)  # type: ignore[call-overload]
                        if conn is not None:
                            self._advance(selector, open_, conn)
                    if self._listener in ready:
                        self._accept(selector, open_)
                    now = time.monotonic()
                    for conn in [c for c in open_.values() if c.deadline <= now]:
                        self._close(selector, open_, conn)
            finally:
                for conn in list(open_.values()):
                    self._close(selector, open_, conn)

    def _advance(self, selector: selectors.BaseSelector, open_: dict[socket.socket, _HttpConnection], conn: _HttpConnection) -> None:
        """Read or write what ``conn``'s socket allows; close it when done, watch for writing once answered."""
        reading = conn.response is None
        if not self._step(conn):
            self._close(selector, open_, conn)
        elif reading and conn.response is not None:
            selector.modify(conn.sock, selectors.EVENT_WRITE, None)

    def _accept(self, selector: selectors.BaseSelector, open_: dict[socket.socket, _HttpConnection]) -> None:
        assert self._listener is not None
        for _ in range(self.MAX_CONNECTIONS):  # a bounded batch, then the loop serves the open ones
            try:
                sock, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of descriptors, or the client gave up already: try again next turn
                return
            if len(open_) >= self.MAX_CONNECTIONS:
                self._close(selector, open_, _victim(open_))
            sock.setblocking(False)
            conn = _HttpConnection(sock, str(peer[0]) if isinstance(peer, tuple) else "", time.monotonic() + self.READ_TIMEOUT_S)
            open_[sock] = conn
            selector.register(sock, selectors.EVENT_READ, None)
            self._advance(selector, open_, conn)  # a client usually sends its request with the connection

    def _step(self, conn: _HttpConnection) -> bool:
        """Read or write what the socket allows; False when the connection is done (or broken)."""
        try:
            if conn.response is None:
                chunk = conn.sock.recv(4096)
                if not chunk:
                    return False
                conn.request += chunk
                if len(conn.request) > self.MAX_REQUEST_BYTES:
                    conn.respond(_plain_response("431 Request Header Fields Too Large", b"request too large\n"), self.WRITE_TIMEOUT_S)
                elif b"\r\n\r\n" in conn.request:
                    conn.respond(self._response(bytes(conn.request)), self.WRITE_TIMEOUT_S)
                else:
                    return True
            assert conn.response is not None
            sent = conn.sock.send(conn.response)
            conn.response = conn.response[sent:]
            return bool(conn.response)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False

    def _response(self, request: bytes) -> bytes:
        """The whole HTTP response to one request (status line, headers, body)."""
        head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _plain_response("400 Bad Request", b"bad request\n")
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return _plain_response("405 Method Not Allowed", b"GET only\n")
        path, _sep, query = target.partition("?")
        environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                environ["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
        started: list[Any] = []
        body = b"".join(self._app(environ, lambda status, headers: started.extend((status, headers))))
        status, headers = started
        return _head(status, [*headers, ("Content-Length", str(len(body)))]) + (b"" if method == "HEAD" else body)

    def _close(self, selector: selectors.BaseSelector, open_: dict[socket.socket, _HttpConnection], conn: _HttpConnection) -> None:
        open_.pop(conn.sock, None)
        try:
            selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()


class _HttpConnection:
    """One client of the metrics endpoint: what it sent so far, what is left to send it, its deadline."""

    def __init__(self, sock: socket.socket, address: str, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.deadline = deadline
        self.request = bytearray()
        self.response: bytes | None = None

    def respond(self, response: bytes, timeout_s: float) -> None:
        self.response = response
        self.deadline = time.monotonic() + timeout_s


def _victim(open_: dict[socket.socket, _HttpConnection]) -> _HttpConnection:
    """The connection to close for a new one: the oldest still sending its request, from the address that
    holds the most (a client elsewhere, a Prometheus, keeps its place in a flood from one address)."""
    reading = [c for c in open_.values() if c.response is None] or list(open_.values())
    held = collections.Counter(c.address for c in reading)
    busiest = max(held.values())
    return next(c for c in reading if held[c.address] == busiest)


def _head(status: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers), "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _plain_response(status: str, body: bytes) -> bytes:
    return _head(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]) + body
