"""The dashboards and rules against a real Prometheus that scraped a real 4-node run.

``gossip launch --prometheus`` runs 4 real node processes and the real ``prometheus`` binary (scrape
and rule evaluation every second, TSDB in the run directory). The test watches the live server and
interrupts the run (Ctrl-C, as a user would) once it holds enough samples of every node; then it
opens the run's TSDB with a fresh Prometheus and evaluates, at an instant in the middle of the run,
every PromQL expression of every panel of every dashboard (template variables filled the way
Grafana fills them, from ``label_values``), every recording rule (its expression, and the series
the launch-time server recorded), and every alert (its expression must evaluate without error and
stay silent on a healthy run; its signals must have data for every node). A panel that would show
"No data" fails.

Why this shape: a fixed number of rounds is 3 s on an idle machine and minutes on a loaded one, so
the run lasts until the observation is made instead; and evaluating afterwards, at a fixed instant,
races nothing."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from gossip.ops.alerts import ALERTS, RECORDINGS
from gossip.ops.dashboards import DASHBOARDS, Dashboard
from gossip.ops.prometheus import LAUNCH_SCRAPE_INTERVAL_S, run_prometheus_dir
from gossip.results.rundir import read_jsonl
from gossip.run.promserver import PrometheusServer
from tests.conftest import run_gossip
from tests.prom import PromAPI, require

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.prometheus]

NODES = 4
SCRAPES = 10  # the run is interrupted once the live Prometheus has this many samples of every node
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


@dataclass
class ObservedRun:
    """A launch under --prometheus that the test watched and then interrupted."""

    run_dir: Path
    url: str
    returncode: int
    stderr: str


def _follow(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


@pytest.fixture(scope="module")
def observed_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObservedRun]:
    """A 4-node ring under ``gossip launch --prometheus``, interrupted (as a user's Ctrl-C) once the
    live Prometheus holds SCRAPES samples of every node's accuracy: the run lasts as long as the
    observation needs, however fast or loaded the machine."""
    require("prometheus")
    run_dir = tmp_path_factory.mktemp("observed") / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gossip",
            "launch",
            "--run-dir",
            str(run_dir),
            "--no-progress",
            "--no-report",
            "--prometheus",
            "-n",
            str(NODES),
            "-t",
            "ring",
            "-r",
            "1000000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=_follow, args=(proc.stderr, lines), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 600
        url = ""
        while time.monotonic() < deadline and proc.poll() is None:
            match = re.search(r"gossip: prometheus on (http://127\.0\.0\.1:\d+)", "".join(lines))
            if match:
                url = match.group(1)
                body = PromAPI(url).query(f"count(count_over_time(gossip_test_accuracy[5m]) >= {SCRAPES})", time.time())
                result = body.get("data", {}).get("result", []) if body.get("status") == "success" else []
                if result and float(result[0]["value"][1]) == NODES:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("the live Prometheus never held enough samples of every node:\n" + "".join(lines))
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()
    yield ObservedRun(run_dir, url, proc.returncode, "".join(lines))


@pytest.fixture(scope="module")
def history(observed_run: ObservedRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PromAPI, float, float, float]]:
    """A Prometheus on the run's TSDB (scraping nothing), and (query instant, run start, run end)."""
    run_dir = observed_run.run_dir
    binary = require("prometheus")
    ends = {}
    starts = {}
    for node in range(NODES):
        records = read_jsonl(run_dir / "nodes" / f"node-{node}.jsonl")
        assert len(records) > WARMUP_ROUNDS
        starts[node] = records[WARMUP_ROUNDS]["time"]
        ends[node] = records[-1]["time"]
    begin, end = max(starts.values()), min(ends.values())
    assert end - begin > 4 * LAUNCH_SCRAPE_INTERVAL_S, (
        f"the run was too short to observe: {end - begin:.1f} s with every node past round {WARMUP_ROUNDS}"
    )
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


def test_launch_prometheus_is_stopped_with_the_run_on_ctrl_c(observed_run: ObservedRun) -> None:
    """The interrupted launch (exit 130) stopped its Prometheus with the nodes: no process of the run
    survives, the port no longer answers, and the TSDB stays in the run directory."""
    assert observed_run.returncode == 130, observed_run.stderr
    assert "prometheus stopped" in observed_run.stderr
    assert (run_prometheus_dir(observed_run.run_dir) / "data" / "wal").is_dir()
    assert _live_pids(str(observed_run.run_dir)) == []
    assert not _answers(observed_run.url)


def test_launch_prometheus_prints_its_url_and_stops_it_at_the_end(tmp_path: Path) -> None:
    """A run that finishes: the URL is printed, the TSDB is in the run directory, and the server is
    gone when the launcher returns (that it scrapes is what the tests below prove)."""
    require("prometheus")
    run_dir = tmp_path / "run"
    result = run_gossip(
        "launch",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--no-report",
        "--prometheus",
        "-n",
        "3",
        "-t",
        "ring",
        "-r",
        "30",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"gossip: prometheus on (http://127\.0\.0\.1:\d+) ", result.stderr)
    assert match, result.stderr
    assert "prometheus stopped" in result.stderr
    assert _live_pids(str(run_dir)) == []
    assert not _answers(match.group(1))
    assert (run_prometheus_dir(run_dir) / "data" / "wal").is_dir()


def _answers(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) == 0


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
        for expr in alert.signals:
            problems += _check(api, expr, at, f"alert {alert.name} signal", per_node=True)
    assert not problems, "\n".join(problems)
