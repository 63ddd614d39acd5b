"""Grafana dashboards for gossip, built from code: a small builder and the two dashboards.

Why not hand-edited JSON: one source of truth that the tests can read. ``gossip dashboards``
renders these to ``deploy/grafana/dashboards/*.json`` (a test fails when the committed JSON drifts),
and ``tests/e2e/test_prometheus.py`` runs every query of every panel against a real Prometheus
scraping a real run, and fails on any panel that would show "No data".

Why not grafanalib or the Grafana Foundation SDK: the dashboards use three panel kinds and a handful
of options; forty lines of dataclasses are easier to read than a dependency whose releases track
Grafana's schema epochs, and neither validates against Grafana anyway (it cannot be installed here).

Conventions the builder enforces: every panel reads the ``$datasource`` variable (so the dashboards
work with whichever Prometheus data source a user has), every query filters ``job="$job"``, legends
name the node (``node {{node}}``) or say ``mean``, and rates use ``$__rate_interval`` (Grafana's
window that always spans at least four scrapes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["DASHBOARDS", "Dashboard", "Panel", "Query", "Row", "Variable", "cluster_overview", "node_detail", "render"]

SCHEMA_VERSION = 39  # Grafana 10.x/11.x dashboard schema
GRID_WIDTH = 24
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PanelKind = Literal["timeseries", "stat", "table"]


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel; ``legend`` is Grafana's legend format (``node {{node}}``)."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """A panel: its kind, its queries, and how to show them."""

    title: str
    description: str
    queries: tuple[Query, ...]
    kind: PanelKind = "timeseries"
    unit: str = "short"
    log_scale: bool = False
    width: int = 12
    height: int = 8
    columns: tuple[str, ...] = ()  # table only: one column header per query, in order

    def __post_init__(self) -> None:
        if self.kind == "table" and len(self.columns) != len(self.queries):
            raise ValueError(f"table {self.title!r}: {len(self.queries)} queries but {len(self.columns)} column names")
        if not 1 <= self.width <= GRID_WIDTH:
            raise ValueError(f"panel {self.title!r}: width {self.width} outside 1..{GRID_WIDTH}")


@dataclass(frozen=True)
class Row:
    """A collapsible row heading; the panels after it belong to it."""

    title: str


@dataclass(frozen=True)
class Variable:
    """A template variable filled from ``label_values(<selector>, <label>)``."""

    name: str
    label: str
    selector: str
    label_name: str
    numeric_sort: bool = False

    @property
    def query(self) -> str:
        return f"label_values({self.selector}, {self.label_name})"


@dataclass(frozen=True)
class Dashboard:
    """A dashboard: identity, variables, and rows of panels laid out left to right."""

    uid: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    items: tuple[Panel | Row, ...]
    tags: tuple[str, ...] = ("gossip",)
    links: tuple[str, ...] = field(default=())  # uids of dashboards to link to

    def panels(self) -> Iterator[Panel]:
        """The panels, rows left out."""
        return (item for item in self.items if isinstance(item, Panel))

    def to_json(self) -> dict[str, Any]:
        """The Grafana dashboard model."""
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "editable": True,
            "graphTooltip": 1,  # shared crosshair: one round lines up across panels
            "refresh": "5s",
            "time": {"from": "now-15m", "to": "now"},
            "timezone": "browser",
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "links": [
                {"type": "dashboards", "title": "gossip", "tags": ["gossip"], "asDropdown": False, "includeVars": True, "keepTime": True}
            ]
            if self.links
            else [],
            "templating": {"list": [_datasource_variable(), *(_variable(v) for v in self.variables)]},
            "annotations": {"list": []},
            "panels": _layout(self.items),
        }


# ------------------------------------------------------------------------------------------------
# rendering


def _datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
    }


def _variable(v: Variable) -> dict[str, Any]:
    return {
        "name": v.name,
        "label": v.label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": v.query, "refId": f"{v.name}-variable"},
        "definition": v.query,
        "refresh": 2,  # on time range change: nodes come and go between runs
        "includeAll": False,
        "multi": False,
        "sort": 3 if v.numeric_sort else 1,  # 3: numerical ascending, so node 10 comes after node 9
        "current": {},
        "hide": 0,
    }


def _layout(items: Sequence[Panel | Row]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    x = y = row_height = 0
    for pid, item in enumerate(items, start=1):
        if isinstance(item, Row):
            y += row_height
            out.append(
                {
                    "id": pid,
                    "type": "row",
                    "title": item.title,
                    "collapsed": False,
                    "gridPos": {"x": 0, "y": y, "w": GRID_WIDTH, "h": 1},
                    "panels": [],
                }
            )
            x, y, row_height = 0, y + 1, 0
            continue
        if x + item.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        out.append(_panel(pid, item, {"x": x, "y": y, "w": item.width, "h": item.height}))
        x += item.width
        row_height = max(row_height, item.height)
    return out


def _panel(pid: int, panel: Panel, grid: dict[str, int]) -> dict[str, Any]:
    targets = [_target(chr(ord("A") + i), q, panel.kind) for i, q in enumerate(panel.queries)]
    body: dict[str, Any] = {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "targets": targets,
    }
    if panel.kind == "timeseries":
        custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0, "showPoints": "never", "spanNulls": True}
        if panel.log_scale:
            custom["scaleDistribution"] = {"type": "log", "log": 10}
        body["fieldConfig"] = {
            "defaults": {"unit": panel.unit, "custom": custom},
            # The cluster mean stands out from the per-node lines it summarises.
            "overrides": [
                {
                    "matcher": {"id": "byRegexp", "options": "^(mean|cluster mean)$"},
                    "properties": [
                        {"id": "custom.lineWidth", "value": 3},
                        {"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}},
                    ],
                }
            ],
        }
        body["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif panel.kind == "stat":
        body["fieldConfig"] = {"defaults": {"unit": panel.unit}, "overrides": []}
        body["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        }
    else:
        body["fieldConfig"] = {"defaults": {"unit": panel.unit}, "overrides": []}
        body["options"] = {"showHeader": True, "sortBy": [{"displayName": "node", "desc": False}]}
        # One instant query per column, joined on the node label; Grafana names them "Value #A", ….
        rename = {f"Value #{t['refId']}": name for t, name in zip(targets, panel.columns, strict=True)}
        body["transformations"] = [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": rename, "indexByName": {"node": 0}}},
        ]
    return body


def _target(ref: str, query: Query, kind: PanelKind) -> dict[str, Any]:
    target: dict[str, Any] = {"refId": ref, "datasource": DATASOURCE, "expr": query.expr, "legendFormat": query.legend or "__auto"}
    if kind == "table":
        target.update(format="table", instant=True, range=False)
    else:
        target.update(format="time_series", instant=False, range=True)
    return target


def render(dashboard: Dashboard) -> str:
    """The dashboard as the JSON text committed under ``deploy/grafana/dashboards/``."""
    return json.dumps(dashboard.to_json(), indent=2, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------------------------------------
# the dashboards

JOB = 'job="$job"'
NODE = 'job="$job", node="$node"'
RATE = "[$__rate_interval]"
_JOB_VAR = Variable("job", "Job", "gossip_node_info", "job")


def _per_node_and_mean(metric: str) -> tuple[Query, ...]:
    return (Query(f"{metric}{{{JOB}}}", "node {{node}}"), Query(f"avg({metric}{{{JOB}}})", "mean"))


def cluster_overview() -> Dashboard:
    """Every node of one run at a glance: learning, progress, traffic, refusals, and a per-node table."""
    items: tuple[Panel | Row, ...] = (
        Row("Cluster"),
        Panel(
            "Nodes reporting",
            "Nodes whose /metrics Prometheus scrapes.",
            (Query(f"count(gossip_node_info{{{JOB}}})"),),
            "stat",
            width=4,
            height=4,
        ),
        Panel(
            "Slowest node's round", "The lowest round any node is in.", (Query(f"min(gossip_round{{{JOB}}})"),), "stat", width=4, height=4
        ),
        Panel(
            "Mean test accuracy",
            "Mean over nodes of each node's last test accuracy.",
            (Query(f"avg(gossip_test_accuracy{{{JOB}}})"),),
            "stat",
            unit="percentunit",
            width=4,
            height=4,
        ),
        Panel(
            "Mean consensus distance",
            "Mean over nodes of the distance to their neighbourhood's average.",
            (Query(f"avg(gossip_consensus_distance{{{JOB}}})"),),
            "stat",
            width=4,
            height=4,
        ),
        Panel(
            "Traffic sent",
            "Bytes per second all nodes hand to the transport.",
            (Query(f"sum(rate(gossip_sent_bytes_total{{{JOB}}}{RATE}))"),),
            "stat",
            unit="Bps",
            width=4,
            height=4,
        ),
        Panel(
            "Rejected messages",
            "Messages per second dropped by validation, all reasons, all nodes.",
            (Query(f"sum(rate(gossip_messages_rejected_total{{{JOB}}}{RATE}))"),),
            "stat",
            unit="short",
            width=4,
            height=4,
        ),
        Row("Learning"),
        Panel(
            "Test accuracy",
            "Each node's test accuracy at its last evaluation, and their mean.",
            _per_node_and_mean("gossip_test_accuracy"),
            unit="percentunit",
        ),
        Panel("Training loss", "Mean loss of each node's last local steps, and their mean.", _per_node_and_mean("gossip_train_loss")),
        Panel("Test loss", "Each node's test loss at its last evaluation, and their mean.", _per_node_and_mean("gossip_test_loss")),
        Panel(
            "Consensus distance",
            "L2 distance from each node's model to its neighbourhood's average, before mixing (log scale): it shrinks as the nodes agree.",
            _per_node_and_mean("gossip_consensus_distance"),
            log_scale=True,
        ),
        Row("Progress and traffic"),
        Panel(
            "Round rate",
            "Rounds each node completes per second.",
            (Query(f"rate(gossip_rounds_total{{{JOB}}}{RATE})", "node {{node}}"),),
            unit="suffix: rounds/s",
        ),
        Panel(
            "Round duration (p90)",
            "90th percentile of each node's round wall time.",
            (
                Query(
                    f"histogram_quantile(0.9, sum by (node, le) (rate(gossip_round_duration_seconds_bucket{{{JOB}}}{RATE})))",
                    "node {{node}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Bytes sent",
            "Bytes per second each node hands to the transport, all peers together.",
            (Query(f"sum by (node) (rate(gossip_sent_bytes_total{{{JOB}}}{RATE}))", "node {{node}}"),),
            unit="Bps",
        ),
        Panel(
            "Bytes received",
            "Bytes per second of valid messages each node receives.",
            (Query(f"sum by (node) (rate(gossip_received_bytes_total{{{JOB}}}{RATE}))", "node {{node}}"),),
            unit="Bps",
        ),
        Panel(
            "Rejected messages by reason",
            "Messages per second dropped by validation, all nodes together, by reason.",
            (Query(f"sum by (reason) (rate(gossip_messages_rejected_total{{{JOB}}}{RATE}))", "{{reason}}"),),
        ),
        Panel(
            "Neighbours heard",
            "Share of its neighbours whose model reached each node in its last round.",
            (Query(f"gossip_peers_alive{{{JOB}}} / gossip_neighbours{{{JOB}}}", "node {{node}}"),),
            unit="percentunit",
        ),
        Row("Nodes"),
        Panel(
            "Per node",
            "The last value of each node's figures (instant queries joined on the node label).",
            (
                Query(f"max by (node) (up{{{JOB}}})"),
                Query(f"max by (node) (gossip_round{{{JOB}}})"),
                Query(f"max by (node) (gossip_test_accuracy{{{JOB}}})"),
                Query(f"max by (node) (gossip_train_loss{{{JOB}}})"),
                Query(f"max by (node) (gossip_consensus_distance{{{JOB}}})"),
                Query(f"max by (node) (gossip_peers_alive{{{JOB}}})"),
                Query(f"sum by (node) (rate(gossip_sent_bytes_total{{{JOB}}}{RATE}))"),
                Query(f"sum by (node) (gossip_messages_rejected_total{{{JOB}}})"),
            ),
            "table",
            columns=("up", "round", "test accuracy", "train loss", "consensus distance", "peers alive", "sent B/s", "rejected"),
            width=24,
            height=10,
        ),
    )
    return Dashboard(
        uid="gossip-cluster",
        title="gossip / cluster overview",
        description="All nodes of a gossip run: accuracy, loss, consensus, progress, traffic and refusals. Generated by `gossip dashboards`.",
        variables=(_JOB_VAR,),
        items=items,
        links=("gossip-node",),
    )


def node_detail() -> Dashboard:
    """One node in depth: its learning against the cluster, its timings, and each of its links."""
    items: tuple[Panel | Row, ...] = (
        Row("Node $node"),
        Panel("Round", "The round this node is in.", (Query(f"gossip_round{{{NODE}}}"),), "stat", width=4, height=4),
        Panel(
            "Test accuracy",
            "At the node's last evaluation.",
            (Query(f"gossip_test_accuracy{{{NODE}}}"),),
            "stat",
            unit="percentunit",
            width=4,
            height=4,
        ),
        Panel(
            "Consensus distance",
            "To its neighbourhood's average, before mixing.",
            (Query(f"gossip_consensus_distance{{{NODE}}}"),),
            "stat",
            width=4,
            height=4,
        ),
        Panel(
            "Neighbours heard",
            "Neighbours whose model arrived in the last round, out of all.",
            (Query(f"gossip_peers_alive{{{NODE}}} / gossip_neighbours{{{NODE}}}"),),
            "stat",
            unit="percentunit",
            width=4,
            height=4,
        ),
        Panel(
            "Traffic sent",
            "Bytes per second to all peers.",
            (Query(f"sum by (node) (rate(gossip_sent_bytes_total{{{NODE}}}{RATE}))"),),
            "stat",
            unit="Bps",
            width=4,
            height=4,
        ),
        Panel(
            "Rejected messages",
            "Messages dropped by validation so far, all reasons.",
            (Query(f"sum by (node) (gossip_messages_rejected_total{{{NODE}}})"),),
            "stat",
            width=4,
            height=4,
        ),
        Row("Learning"),
        Panel(
            "Test accuracy",
            "This node against the mean of all nodes.",
            (Query(f"gossip_test_accuracy{{{NODE}}}", "node {{node}}"), Query(f"avg(gossip_test_accuracy{{{JOB}}})", "cluster mean")),
            unit="percentunit",
            width=8,
        ),
        Panel(
            "Loss",
            "Training loss of the last local steps and test loss at the last evaluation.",
            (Query(f"gossip_train_loss{{{NODE}}}", "train"), Query(f"gossip_test_loss{{{NODE}}}", "test")),
            width=8,
        ),
        Panel(
            "Consensus distance",
            "This node against the mean of all nodes (log scale).",
            (
                Query(f"gossip_consensus_distance{{{NODE}}}", "node {{node}}"),
                Query(f"avg(gossip_consensus_distance{{{JOB}}})", "cluster mean"),
            ),
            log_scale=True,
            width=8,
        ),
        Panel(
            "Layer weight variance",
            "Element variance of each weight tensor (log scale): before = the average before the variance correction, after = the model "
            "leaving the aggregation. Averaging uncorrelated models divides it by their number (Tian et al. 2024); the correction restores it.",
            (Query(f"gossip_layer_weight_variance{{{NODE}}}", "{{layer}} {{stage}}"),),
            log_scale=True,
            width=24,
        ),
        Row("Time per round"),
        Panel(
            "Round duration",
            "Quantiles of the round's wall time: train, send, wait, aggregate, evaluate.",
            tuple(
                Query(
                    f"histogram_quantile({q}, sum by (le) (rate(gossip_round_duration_seconds_bucket{{{NODE}}}{RATE})))",
                    f"p{round(q * 100)}",
                )
                for q in (0.5, 0.9, 0.99)
            ),
            unit="s",
            width=8,
        ),
        Panel(
            "Local step",
            "Quantiles of one optimiser step's wall time.",
            tuple(
                Query(
                    f"histogram_quantile({q}, sum by (le) (rate(gossip_train_step_duration_seconds_bucket{{{NODE}}}{RATE})))",
                    f"p{round(q * 100)}",
                )
                for q in (0.5, 0.9)
            ),
            unit="s",
            width=8,
        ),
        Panel(
            "Waiting for neighbours",
            "Quantiles of the time spent waiting for the neighbours' models: a slow neighbour shows here.",
            tuple(
                Query(
                    f"histogram_quantile({q}, sum by (le) (rate(gossip_wait_duration_seconds_bucket{{{NODE}}}{RATE})))",
                    f"p{round(q * 100)}",
                )
                for q in (0.5, 0.9)
            ),
            unit="s",
            width=8,
        ),
        Row("Links"),
        Panel(
            "Bytes sent per peer",
            "Bytes per second to each neighbour.",
            (Query(f"rate(gossip_sent_bytes_total{{{NODE}}}{RATE})", "to {{peer}}"),),
            unit="Bps",
            width=8,
        ),
        Panel(
            "Bytes received per peer",
            "Bytes per second of valid messages from each neighbour.",
            (Query(f"rate(gossip_received_bytes_total{{{NODE}}}{RATE})", "from {{peer}}"),),
            unit="Bps",
            width=8,
        ),
        Panel(
            "Rounds since heard",
            "How many rounds ago each neighbour's model last arrived (1 is on time).",
            (Query(f"gossip_round{{{NODE}}} - ignoring (peer) group_right gossip_peer_last_seen_round{{{NODE}}}", "peer {{peer}}"),),
            width=8,
        ),
        Panel(
            "Messages per peer",
            "Messages per second sent to, received from, and dropped before sending to each neighbour.",
            (
                Query(f"rate(gossip_messages_sent_total{{{NODE}}}{RATE})", "sent to {{peer}}"),
                Query(f"rate(gossip_messages_received_total{{{NODE}}}{RATE})", "received from {{peer}}"),
                Query(f"rate(gossip_messages_send_dropped_total{{{NODE}}}{RATE})", "dropped to {{peer}}"),
            ),
            width=8,
        ),
        Panel(
            "Missed rounds per peer",
            "Rounds per second in which a neighbour's model missed the timeout.",
            (Query(f"rate(gossip_peer_missed_rounds_total{{{NODE}}}{RATE})", "peer {{peer}}"),),
            width=8,
        ),
        Panel(
            "Neighbours heard",
            "Neighbours whose model arrived in each round, and how many the node has.",
            (Query(f"gossip_peers_alive{{{NODE}}}", "heard"), Query(f"gossip_neighbours{{{NODE}}}", "neighbours")),
            width=8,
        ),
        Row("Refusals"),
        Panel(
            "Rejected messages by reason",
            "Messages per second dropped by validation.",
            (Query(f"rate(gossip_messages_rejected_total{{{NODE}}}{RATE})", "{{reason}}"),),
            width=8,
        ),
        Panel(
            "Refused connections by reason",
            "Inbound connections per second the node shut down (over a cap, an unfinished message, "
            "no handshake in time) or could not accept (descriptors): 0 unless someone hammers its port.",
            (Query(f"rate(gossip_connections_refused_total{{{NODE}}}{RATE})", "{{reason}}"),),
            width=8,
        ),
        Panel(
            "Robust aggregation",
            "Neighbour models per second a robust rule discarded or clipped (always 0 under plain D-SGD).",
            (Query(f"rate(gossip_aggregation_inputs_discarded_total{{{NODE}}}{RATE})", "{{aggregator}} {{action}}"),),
            width=8,
        ),
    )
    return Dashboard(
        uid="gossip-node",
        title="gossip / node detail",
        description="One gossip node in depth: learning against the cluster, time per round, each link, refusals. Generated by `gossip dashboards`.",
        variables=(_JOB_VAR, Variable("node", "Node", 'gossip_node_info{job="$job"}', "node", numeric_sort=True)),
        items=items,
        links=("gossip-cluster",),
    )


# file name (under deploy/grafana/dashboards/) → dashboard (read-only: no module-level mutable state)
DASHBOARDS: Mapping[str, Callable[[], Dashboard]] = MappingProxyType(
    {"cluster-overview.json": cluster_overview, "node-detail.json": node_detail}
)
