"""The dashboards and rules against a real Prometheus that scraped a real 4-node run.

``gossip launch --prometheus`` runs 4 real node processes and the real ``prometheus`` binary (scrape
and rule evaluation every second, TSDB in the run directory). Afterwards the test opens that TSDB
with a fresh Prometheus and evaluates, at an instant in the middle of the run, every PromQL
expression of every panel of every dashboard (template variables filled the way Grafana fills them,
from ``label_values``), every recording rule (its expression, and the series the launch-time
server recorded), and every alert (its expression must evaluate without error and stay silent on a
healthy run; its signals must have data for every node). A panel that would show "No data" fails.

Evaluating after the run, at a fixed instant, rather than racing the live run keeps the test
independent of machine load: a slower machine makes a longer run, never a missed query.
"""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest

from gossip.dashboards import DASHBOARDS, Dashboard
from gossip.prometheus import LAUNCH_SCRAPE_INTERVAL_S, run_prometheus_dir
from gossip.promserver import PrometheusServer
from gossip.results import read_jsonl
from gossip.rules import ALERTS, RECORDINGS
from tests.conftest import run_gossip
from tests.prom import PromAPI, require

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.prometheus]

NODES = 4
ROUNDS = 250  # ~15-30 s of rounds on 2 shared cores: dozens of scrapes at 1 s
WARMUP_ROUNDS = 20  # the instant we query at is after every node did this many rounds
ALL_NODES = {str(i) for i in range(NODES)}
# Grafana's $__rate_interval with the data source's scrape interval set to the scrape interval: 4 scrapes.
RATE_INTERVAL = f"{4 * LAUNCH_SCRAPE_INTERVAL_S}s"


def _live_pids(needle: str) -> list[int]:
    """PIDs of live processes whose command line mentions ``needle``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if needle in cmd:
                pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def observed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A finished 4-node ring run that a Prometheus started by ``gossip launch --prometheus`` scraped."""
    require("prometheus")
    run_dir = tmp_path_factory.mktemp("observed") / "run"
    result = run_gossip(
        "launch", "--run-dir", str(run_dir), "--no-progress", "--no-report", "--prometheus",
        "-n", str(NODES), "-t", "ring", "-r", str(ROUNDS), timeout=900,
    )
    assert result.returncode == 0, result.stderr
    return run_dir, result


@pytest.fixture(scope="module")
def history(observed_run: tuple[Path, subprocess.CompletedProcess[str]], tmp_path_factory: pytest.TempPathFactory) -> tuple[PromAPI, float, float, float]:
    """A Prometheus on the run's TSDB (scraping nothing), and (query instant, run start, run end)."""
    run_dir, _ = observed_run
    binary = require("prometheus")
    ends = {}
    starts = {}
    for node in range(NODES):
        records = read_jsonl(run_dir / "nodes" / f"node-{node}.jsonl")
        assert len(records) == ROUNDS
        starts[node] = records[WARMUP_ROUNDS]["time"]
        ends[node] = records[-1]["time"]
    begin, end = max(starts.values()), min(ends.values())
    assert end - begin > 4 * LAUNCH_SCRAPE_INTERVAL_S, f"the run was too short to observe: {end - begin:.1f} s with every node past round {WARMUP_ROUNDS}"
    at = (begin + end) / 2
    work = tmp_path_factory.mktemp("history")
    config = work / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\n")  # reads the history; scrapes and evaluates nothing new
    server = PrometheusServer(binary, config, run_prometheus_dir(run_dir) / "data", work / "prometheus.log")
    server.start()
    try:
        yield PromAPI(server.url), at, begin, end
    finally:
        server.stop()


def test_launch_prometheus_prints_its_url_and_leaves_nothing_running(observed_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    """--prometheus printed a URL, kept the TSDB in the run directory, and stopped the server at the end:
    no process of the run survives and the port no longer answers."""
    run_dir, result = observed_run
    match = re.search(r"gossip: prometheus on http://127\.0\.0\.1:(\d+)", result.stderr)
    assert match, result.stderr
    assert "prometheus stopped" in result.stderr
    assert (run_prometheus_dir(run_dir) / "data" / "wal").is_dir()
    assert _live_pids(str(run_dir)) == []
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", int(match.group(1)))) != 0, "prometheus still listens after the run"


def _check(api: PromAPI, expr: str, at: float, where: str, *, per_node: bool, node: str | None = None) -> list[str]:
    """Problems with one expression at ``at``: an error, no data, or a node missing (or a stranger)."""
    body = api.query(expr, at)
    if body.get("status") != "success":
        return [f"{where}: {body.get('errorType')}: {body.get('error')}\n    {expr}"]
    result = body["data"]["result"]
    if not result:
        return [f"{where}: no data\n    {expr}"]
    nodes = {series["metric"]["node"] for series in result if "node" in series["metric"]}
    if node is not None:
        return [] if nodes <= {node} else [f"{where}: series of nodes {sorted(nodes - {node})}, expected only node {node}\n    {expr}"]
    if per_node or nodes:
        missing = sorted(ALL_NODES - nodes)
        return [f"{where}: no data for nodes {missing}\n    {expr}"] if missing else []
    return []


def _variable_values(api: PromAPI, dashboard: Dashboard, begin: float, end: float) -> list[dict[str, str]]:
    """Every combination of the dashboard's variables, listed the way Grafana lists them."""
    combos: list[dict[str, str]] = [{}]
    for variable in dashboard.variables:
        expanded = []
        for combo in combos:
            selector = variable.selector
            for name, value in combo.items():
                selector = selector.replace(f"${name}", value)
            values = api.label_values(selector, variable.label_name, begin, end)
            assert values, f"{dashboard.uid}: variable ${variable.name} ({variable.query}) lists nothing"
            if variable.name == "node":
                assert values == ALL_NODES, f"{dashboard.uid}: $node lists {sorted(values)}"
            expanded += [{**combo, variable.name: v} for v in sorted(values)]
        combos = expanded
    return combos


def test_every_dashboard_panel_has_data_for_every_node(history: tuple[PromAPI, float, float, float]) -> None:
    """Each query of each panel, with each value of the template variables, returns series — for all
    four nodes when it is per node, for exactly the chosen node on the node dashboard."""
    api, at, begin, end = history
    problems: list[str] = []
    checked = 0
    for name, build in DASHBOARDS.items():
        dashboard = build()
        for combo in _variable_values(api, dashboard, begin, end):
            for panel in dashboard.panels():
                for query in panel.queries:
                    expr = query.expr.replace("$__rate_interval", RATE_INTERVAL)
                    for var, value in combo.items():
                        expr = expr.replace(f"${var}", value)
                    assert "$" not in expr, f"unsubstituted variable in {expr}"
                    where = f"{name} / {panel.title!r} {combo}"
                    problems += _check(api, expr, at, where, per_node="{{node}}" in query.legend, node=combo.get("node"))
                    checked += 1
    assert checked > 50
    assert not problems, f"{len(problems)} of {checked} panel queries fail:\n" + "\n".join(problems)


def test_every_recording_rule_has_data_and_was_recorded(history: tuple[PromAPI, float, float, float]) -> None:
    """Each recording rule's expression returns data (per node where it should), and the series the
    launch-time Prometheus recorded under its name is in the TSDB: the rule was loaded and evaluated."""
    api, at, _begin, _end = history
    problems: list[str] = []
    for rule in RECORDINGS:
        problems += _check(api, rule.expr, at, f"recording rule {rule.record} (expression)", per_node=rule.per_node)
        problems += _check(api, rule.record, at, f"recording rule {rule.record} (recorded series)", per_node=rule.per_node)
    assert not problems, "\n".join(problems)


def test_every_alert_evaluates_stays_silent_on_a_healthy_run_and_has_its_signals(history: tuple[PromAPI, float, float, float]) -> None:
    """Each alert expression evaluates without error (vector matching included, which only real
    labels can break) and returns nothing on this healthy run; each of its signals has data for
    every node. (promtool's unit tests in deploy/prometheus/tests make each alert fire.)"""
    api, at, _begin, _end = history
    problems: list[str] = []
    for alert in ALERTS:
        body = api.query(alert.expr, at)
        if body.get("status") != "success":
            problems.append(f"alert {alert.name}: {body.get('error')}")
        elif body["data"]["result"]:
            problems.append(f"alert {alert.name} would fire on a healthy run: {body['data']['result']}")
        for signal in alert.signals:
            problems += _check(api, signal, at, f"alert {alert.name} signal", per_node=True)
    assert not problems, "\n".join(problems)
