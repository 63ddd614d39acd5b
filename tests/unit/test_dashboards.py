"""Dashboards and rules as code: the committed files match the code, and the code is self-consistent.

What Grafana itself would check cannot be run here (it cannot be installed); what it needs from us —
unique ids, a grid that does not overlap, variables that exist, metrics that nodes export — is
checked below. Whether each query returns data is tests/e2e/test_prometheus.py's job.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from gossip.cli import main
from gossip.ops.alerts import ALERTS, RECORDINGS
from gossip.ops.dashboards import DASHBOARDS, GRID_WIDTH, Dashboard
from gossip.ops.generated import generated_files, stale_files
from gossip.ops.metrics import NodeMetrics
from tests.conftest import REPO

DEPLOY = REPO / "deploy"


def _exported_metric_names() -> set[str]:
    """Every sample name a node's /metrics has once every gauge was set (histograms as _bucket/_sum/_count)."""
    metrics = NodeMetrics(0, [1], "dsgd")
    for gauge in (metrics.train_loss, metrics.test_accuracy, metrics.test_loss, metrics.consensus_distance):
        gauge.set(1.0)
    metrics.layer_variance(["fc1.weight"], [1.0], [1.0])
    metrics.merged(2, 1.0)
    text = generate_latest(metrics.registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def _metric_names(expr: str) -> set[str]:
    """The gossip metric names an expression reads (recorded rule names, with colons, excluded)."""
    return set(re.findall(r"(?<![\w:])(gossip_[a-z_]+)(?![\w:])", expr))


def _all_dashboards() -> list[Dashboard]:
    return [build() for build in DASHBOARDS.values()]


def test_committed_files_match_the_code() -> None:
    """Every generated file under deploy/ is what the code makes today (else: run `gossip dashboards`)."""
    for rel, text in generated_files().items():
        path = DEPLOY / rel
        assert path.is_file(), f"{path} is missing: run `gossip dashboards`"
        assert path.read_text(encoding="utf-8") == text, f"{path} drifted from the code: run `gossip dashboards`"
    assert stale_files(DEPLOY) == []


def test_dashboards_command_checks_and_regenerates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`gossip dashboards --check` passes on the repository, fails on an edited copy naming the file,
    and `gossip dashboards` puts the file back."""
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    assert main(["dashboards", "--deploy-dir", str(copy), "--check"]) == 0
    edited = copy / "grafana" / "dashboards" / "node-detail.json"
    edited.write_text(edited.read_text().replace("gossip_round", "gossip_rnd"))
    capsys.readouterr()
    assert main(["dashboards", "--deploy-dir", str(copy), "--check"]) == 1
    assert str(edited) in capsys.readouterr().err
    assert main(["dashboards", "--deploy-dir", str(copy)]) == 0
    assert str(edited) in capsys.readouterr().out
    assert edited.read_text() == (DEPLOY / "grafana" / "dashboards" / "node-detail.json").read_text()


def test_dashboards_command_without_a_deploy_dir_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Run from the wrong directory: one line naming the problem, exit 2."""
    assert main(["dashboards", "--deploy-dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such directory" in err[0]


@pytest.mark.parametrize("dashboard", _all_dashboards(), ids=lambda d: d.uid)
def test_dashboard_layout_is_valid(dashboard: Dashboard) -> None:
    """Unique panel ids, every panel inside the 24-column grid, no two panels overlapping."""
    panels = dashboard.to_json()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= GRID_WIDTH, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine


@pytest.mark.parametrize("dashboard", _all_dashboards(), ids=lambda d: d.uid)
def test_dashboard_queries_are_consistent(dashboard: Dashboard) -> None:
    """Every query: reads the $datasource variable, filters its job, uses only defined variables and
    only metrics a node exports."""
    model = dashboard.to_json()
    defined = {v["name"] for v in model["templating"]["list"]} | {"__rate_interval"}
    exported = _exported_metric_names()
    for panel in model["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'job="$job"' in expr, f"{panel['title']}: {expr} does not filter on the job"
            used = set(re.findall(r"\$(\w+)", expr))
            assert used <= defined, f"{panel['title']}: undefined variables {used - defined}"
            unknown = _metric_names(expr) - exported
            assert not unknown, f"{panel['title']}: {expr} reads metrics no node exports: {unknown}"


def test_rules_read_only_exported_metrics() -> None:
    """Recording and alerting rules, and the alerts' signals, read only metrics nodes export, series
    recorded by an earlier recording rule, or Prometheus' own ``up``."""
    exported = _exported_metric_names()
    recorded: set[str] = set()
    exprs = [r.expr for r in RECORDINGS] + [a.expr for a in ALERTS] + [s for a in ALERTS for s in a.signals]
    for rule in RECORDINGS:
        used = set(re.findall(r"\b\w+:\w+:\w+\b", rule.expr))
        assert used <= recorded, f"{rule.record} reads {used - recorded} before it is recorded"
        recorded.add(rule.record)
    for expr in exprs:
        assert _metric_names(expr) <= exported, expr
        reads_up = re.search(r"(?<![\w:])up(?![\w:])", expr) is not None
        assert _metric_names(expr) or reads_up or set(re.findall(r"\b\w+:\w+:\w+\b", expr)), f"{expr} reads nothing we know"


def test_node_dashboard_filters_every_per_node_query_on_the_node() -> None:
    """On the node dashboard, a query either selects node="$node" or is a cluster mean labelled as such."""
    for panel in DASHBOARDS["node-detail.json"]().panels():
        for q in panel.queries:
            assert 'node="$node"' in q.expr or q.legend == "cluster mean", f"{panel.title}: {q.expr}"


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    """The provisioning files parse, declare a Prometheus data source, and load dashboards from the
    folder the compose file mounts the committed JSON into."""
    datasources = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"].startswith("http://")
    providers = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "gossip.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    for name in DASHBOARDS:
        assert json.loads((DEPLOY / "grafana" / "dashboards" / name).read_text())["uid"].startswith("gossip-")
