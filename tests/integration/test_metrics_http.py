"""A node's metrics endpoint over real HTTP: the names, types and labels Prometheus will see."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from gossip.errors import RejectReason
from gossip.ops.metrics import MetricsServer, NodeMetrics
from tests.conftest import free_port
from tests.prom import require

# Every family a node exports, with its type: dashboards, rules and docs rely on exactly these.
EXPECTED = {
    "gossip_node_info": "gauge",
    "gossip_rounds": "counter",
    "gossip_rounds_planned": "gauge",
    "gossip_round": "gauge",
    "gossip_round_duration_seconds": "histogram",
    "gossip_train_step_duration_seconds": "histogram",
    "gossip_wait_duration_seconds": "histogram",
    "gossip_train_loss": "gauge",
    "gossip_test_accuracy": "gauge",
    "gossip_test_loss": "gauge",
    "gossip_consensus_distance": "gauge",
    "gossip_peers_alive": "gauge",
    "gossip_neighbours": "gauge",
    "gossip_sent_bytes": "counter",
    "gossip_received_bytes": "counter",
    "gossip_messages_sent": "counter",
    "gossip_messages_received": "counter",
    "gossip_messages_send_dropped": "counter",
    "gossip_peer_missed_rounds": "counter",
    "gossip_peer_last_seen_round": "gauge",
    "gossip_messages_rejected": "counter",
    "gossip_connections_refused": "counter",
    "gossip_aggregation_inputs_discarded": "counter",
    "gossip_local_only_rounds": "counter",
    "gossip_layer_weight_variance": "gauge",
    "gossip_merge_members": "gauge",
    "gossip_merge_duration_seconds": "gauge",
}
BOUNDED_LABELS = {"node", "peer", "reason", "aggregator", "action", "le"}
MEASURED = (
    "gossip_train_loss",
    "gossip_test_accuracy",
    "gossip_test_loss",
    "gossip_consensus_distance",
    "gossip_layer_weight_variance",
    "gossip_merge_members",
    "gossip_merge_duration_seconds",
)


@pytest.fixture
def served() -> Iterator[tuple[NodeMetrics, str, list[bool]]]:
    """Node 3 of a graph where it has neighbours 2 and 4, serving on a free loopback port."""
    metrics = NodeMetrics(3, iter([2, 4]), "dsgd")  # an iterator: the constructor must read it once only
    ready = [False]
    server = MetricsServer(metrics, "127.0.0.1", free_port(), lambda: ready[0])
    server.start()
    try:
        yield metrics, f"http://127.0.0.1:{server.port}", ready
    finally:
        server.stop()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _families(text: str) -> dict[str, Metric]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _exercise(metrics: NodeMetrics) -> None:
    """What one round of a node does to its metrics."""
    metrics.rounds_planned.set(10)
    metrics.round.set(0)
    metrics.train_step.observe(0.002)
    metrics.sent(2, 1000, ok=True)
    metrics.sent(4, 1000, ok=False)
    metrics.received(2, 900, 0)
    metrics.arrived(2, 0)
    metrics.missed(4)
    metrics.wait.observe(0.01)
    metrics.rejected(RejectReason.NON_FINITE)
    metrics.rounds.inc()
    metrics.round_duration.observe(0.05)
    metrics.train_loss.set(2.3)
    metrics.test_accuracy.set(0.1)
    metrics.test_loss.set(2.2)
    metrics.consensus_distance.set(0.5)
    metrics.peers_alive.set(1)


def test_metrics_names_types_and_labels(served: tuple[NodeMetrics, str, list[bool]]) -> None:
    """/metrics has every expected family with its type and help text, labels from the bounded set,
    a node label on every sample, and a zero (not a gap) for every reason and every neighbour."""
    metrics, url, _ = served
    _exercise(metrics)
    status, text = _get(f"{url}/metrics")
    assert status == 200
    families = _families(text)
    exported = {name: f.type for name, f in families.items() if name.startswith("gossip_") and not name.endswith("_created")}
    assert exported == EXPECTED
    for name in EXPECTED:
        family = families[name]
        assert family.documentation, f"{name} has no help text"
        for sample in family.samples:
            assert sample.labels.get("node") == "3", sample
            assert set(sample.labels) <= BOUNDED_LABELS, sample
    reasons = {s.labels["reason"] for s in families["gossip_messages_rejected"].samples if s.name.endswith("_total")}
    assert reasons == {r.value for r in RejectReason}
    peers = {s.labels["peer"] for s in families["gossip_sent_bytes"].samples if s.name.endswith("_total")}
    assert peers == {"2", "4"}
    sent = {s.labels["peer"]: s.value for s in families["gossip_sent_bytes"].samples if s.name.endswith("_total")}
    assert sent == {"2": 1000.0, "4": 0.0}


def test_measured_gauges_are_absent_until_first_measured(served: tuple[NodeMetrics, str, list[bool]]) -> None:
    """Loss, accuracy and consensus distance have no sample before the node measures them: a fresh
    node must not read as 0 % accurate on a dashboard or in an alert."""
    metrics, url, _ = served
    before = _families(_get(f"{url}/metrics")[1])
    for name in MEASURED:
        assert name in before and before[name].samples == [], name
    metrics.test_accuracy.set(0.25)
    after = _families(_get(f"{url}/metrics")[1])
    assert [s.value for s in after["gossip_test_accuracy"].samples] == [0.25]


def test_health_and_readiness(served: tuple[NodeMetrics, str, list[bool]]) -> None:
    """/healthz answers 200 at once; /readyz 503 until the node says it is ready, then 200."""
    _, url, ready = served
    assert _get(f"{url}/healthz")[0] == 200
    assert _get(f"{url}/readyz")[0] == 503
    ready[0] = True
    assert _get(f"{url}/readyz")[0] == 200


@pytest.mark.prometheus
def test_promtool_accepts_the_exposition(served: tuple[NodeMetrics, str, list[bool]]) -> None:
    """Prometheus' own linter (``promtool check metrics``) finds nothing to complain about."""
    metrics, url, _ = served
    _exercise(metrics)
    text = _get(f"{url}/metrics")[1]
    result = subprocess.run([require("promtool"), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_slow_clients_hold_no_thread_and_a_scrape_still_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """200 clients that send half a request: the endpoint keeps one thread, holds at most
    MAX_CONNECTIONS of them (a newer one closes the oldest), closes the rest at the read deadline,
    and answers a normal scrape meanwhile."""
    import socket
    import threading
    import time

    monkeypatch.setattr(MetricsServer, "READ_TIMEOUT_S", 0.5)
    server = MetricsServer(NodeMetrics(3, [2, 4]), "127.0.0.1", free_port(), lambda: True)
    threads_before = threading.active_count()
    server.start()
    try:
        slow = []
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.settimeout(None)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        status, text = _get(f"http://127.0.0.1:{server.port}/metrics")
        assert status == 200 and "gossip_rounds_total" in text
        assert threading.active_count() == threads_before + 1
        time.sleep(1.0)  # past the read deadline
        closed = 0
        for s in slow:
            try:
                closed += s.recv(4096, socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
            s.close()
        assert closed == 200
    finally:
        server.stop()
    assert threading.active_count() == threads_before


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"nonsense\r\n\r\n", 400),
    ],
)
def test_requests_it_does_not_serve_get_an_error_status(
    served: tuple[NodeMetrics, str, list[bool]], request_bytes: bytes, status: int
) -> None:
    """A method other than GET/HEAD, headers over 8 KiB, or a malformed request line: an HTTP error, then closed."""
    import socket

    _, url, _ = served
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request_bytes)
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    assert reply.startswith(f"HTTP/1.1 {status} ".encode()), reply[:60]


@pytest.mark.slow
def test_a_scraper_keeps_its_place_in_a_flood_from_another_address() -> None:
    """While 1,000 half-sent requests a second come from 127.0.0.1, scrapes from 127.0.0.2 are all
    answered: the connection a new one displaces is taken from the address that holds the most."""
    import http.client
    import subprocess
    import sys

    from tests.conftest import REPO

    server = MetricsServer(NodeMetrics(3, [2, 4]), "0.0.0.0", free_port(), lambda: True)
    server.start()
    answered, failed = 0, []
    try:
        for _ in range(2):
            attack = subprocess.Popen(
                [sys.executable, "-m", "tests.attacks", "slow-http", "--port", str(server.port), "--count", "1000", "--hold", "1"],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
            )
            while attack.poll() is None:
                scrape = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10, source_address=("127.0.0.2", 0))
                try:
                    scrape.request("GET", "/metrics")
                    answered += scrape.getresponse().status == 200
                except OSError as exc:
                    failed.append(repr(exc))
                finally:
                    scrape.close()
            attack.wait()
    finally:
        server.stop()
    assert answered > 50 and not failed, (answered, failed[:3])
