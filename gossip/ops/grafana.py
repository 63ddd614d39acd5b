"""A small builder for Grafana dashboards: queries, panels, rows and variables as values, rendered to Grafana's JSON model.

Why not grafanalib or the Grafana Foundation SDK: the dashboards use three panel kinds and a handful
of options; forty lines of dataclasses are easier to read than a dependency whose releases track
Grafana's schema epochs, and neither validates against Grafana anyway (it cannot be installed here).

Conventions the builder enforces: every panel reads the ``$datasource`` variable (so the dashboards
work with whichever Prometheus data source a user has), and panels are laid out left to right in rows
of :data:`GRID_WIDTH` columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["DATASOURCE", "GRID_WIDTH", "SCHEMA_VERSION", "Dashboard", "Panel", "PanelKind", "Query", "Row", "Variable", "render"]

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
