"""The Prometheus configs and rules under deploy/prometheus, checked by Prometheus' own tools.

``promtool check config|rules`` and ``promtool test rules`` (the hand-written cases in
``deploy/prometheus/tests``). A test also breaks each alert on purpose and watches those cases fail,
so none of them can pass vacuously. Debian's Prometheus is built without Kubernetes service
discovery, so the Kubernetes config is checked with its discovery block swapped for file discovery
of synthetic pods carrying the same ``__meta_kubernetes_*`` labels: promtool then checks every
relabelling rule, and a real server shows which pods they keep and how it labels them.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gossip.config import load_config
from gossip.ops.alerts import ALERTS
from gossip.ops.prometheus import JOB, k8s_config, run_prometheus_dir
from gossip.run.launch import prepare_run
from gossip.run.promserver import PrometheusServer
from tests.conftest import REPO
from tests.prom import PromAPI, require

pytestmark = pytest.mark.prometheus

PROM = REPO / "deploy" / "prometheus"
RULES = sorted((PROM / "rules").glob("*.yml"))
UNIT_TESTS = PROM / "tests" / "gossip-rules.test.yml"


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("promtool"), *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", ["prometheus-launch.yml", "prometheus-compose.yml"])
def test_promtool_accepts_the_static_configs(name: str) -> None:
    """The launcher's and docker-compose's configs, rule files included, pass ``promtool check config``."""
    result = promtool("check", "config", PROM / name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


def _k8s_with_file_discovery(pods_file: Path) -> dict[str, Any]:
    cfg = copy.deepcopy(k8s_config())
    (job,) = cfg["scrape_configs"]
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
    job["file_sd_configs"] = [{"files": [str(pods_file)], "refresh_interval": "1s"}]
    return cfg


def test_promtool_accepts_the_kubernetes_config_relabelling(tmp_path: Path) -> None:
    """The committed Kubernetes config is k8s_config() with role-pod discovery; with that block swapped
    for file discovery (Debian's build lacks Kubernetes discovery), promtool accepts the rest."""
    committed = yaml.safe_load((PROM / "prometheus-k8s.yml").read_text())
    assert committed == k8s_config()
    (tmp_path / "pods.json").write_text("[]")
    shutil.copytree(PROM / "rules", tmp_path / "rules")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(_k8s_with_file_discovery(tmp_path / "pods.json"), sort_keys=False))
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr


def _pod(
    name: str, ip: str, *, scrape: str | None, port: str | None = "9100", phase: str = "Running", path: str | None = None
) -> dict[str, Any]:
    labels = {
        "__address__": f"{ip}:7000",  # the pod's first container port, as role-pod discovery gives it
        "__meta_kubernetes_namespace": "gossip",
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_phase": phase,
    }
    for key, value in (("scrape", scrape), ("port", port), ("path", path)):
        if value is not None:
            labels[f"__meta_kubernetes_pod_annotation_prometheus_io_{key}"] = value
            labels[f"__meta_kubernetes_pod_annotationpresent_prometheus_io_{key}"] = "true"
    return {"targets": [labels["__address__"]], "labels": labels}


@pytest.mark.slow
def test_kubernetes_relabelling_keeps_annotated_running_pods_and_labels_their_node(tmp_path: Path) -> None:
    """A real Prometheus applies the Kubernetes relabelling to synthetic pods: annotated running pods
    are scraped on the annotated port (and path), with node = the StatefulSet ordinal; pods without
    the annotation, or not running, are dropped."""
    binary = require("prometheus")
    pods = [
        _pod("gossip-0", "10.0.0.10", scrape="true"),
        _pod("gossip-1", "10.0.0.11", scrape="true", path="/custom"),
        _pod("web-abc", "10.0.0.20", scrape=None),
        _pod("gossip-2", "10.0.0.12", scrape="true", phase="Pending"),
        _pod("other-3", "10.0.0.13", scrape="false"),
    ]
    pods_file = tmp_path / "pods.json"
    pods_file.write_text(json.dumps(pods))
    config = tmp_path / "prometheus.yml"
    cfg = _k8s_with_file_discovery(pods_file)
    cfg.pop("rule_files")
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    with PrometheusServer(binary, config, tmp_path / "data", tmp_path / "prometheus.log") as server:
        api = PromAPI(server.url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(api.targets()["activeTargets"]) < 2:
            time.sleep(0.5)
        targets = api.targets()
    active = {t["labels"]["pod"]: t for t in targets["activeTargets"]}
    assert set(active) == {"gossip-0", "gossip-1"}
    assert active["gossip-0"]["labels"] == {"instance": "10.0.0.10:9100", "job": JOB, "namespace": "gossip", "pod": "gossip-0", "node": "0"}
    assert active["gossip-0"]["scrapeUrl"] == "http://10.0.0.10:9100/metrics"
    assert active["gossip-1"]["scrapeUrl"] == "http://10.0.0.11:9100/custom"
    assert active["gossip-1"]["labels"]["node"] == "1"
    dropped = {t["discoveredLabels"]["__meta_kubernetes_pod_name"] for t in targets["droppedTargets"]}
    assert dropped == {"web-abc", "gossip-2", "other-3"}


def test_promtool_accepts_the_rules() -> None:
    """Both rule files pass ``promtool check rules``."""
    result = promtool("check", "rules", *RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "13 rules found" in result.stdout and f"{len(ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    """Each alert fires on its synthetic failure and stays silent on the healthy series beside it."""
    result = promtool("test", "rules", UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _rules_with(tmp_path: Path, alert: str, expr: str) -> Path:
    """A copy of deploy/prometheus with one alert's expression replaced; returns its unit-test file."""
    root = tmp_path / "prometheus"
    shutil.copytree(PROM, root)
    path = root / "rules" / "gossip-alerts.yml"
    doc = yaml.safe_load(path.read_text())
    (rule,) = [r for r in doc["groups"][0]["rules"] if r.get("alert") == alert]
    rule["expr"] = expr
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return root / "tests" / UNIT_TESTS.name


@pytest.mark.parametrize("alert", [a.name for a in ALERTS])
def test_the_unit_tests_catch_a_broken_alert(tmp_path: Path, alert: str) -> None:
    """An alert that never fires, and one that fires on every series of its signal, each fail the
    unit tests: every alert has both a must-fire and a must-stay-silent case."""
    signal = next(a.signals[0] for a in ALERTS if a.name == alert)
    never = promtool("test", "rules", _rules_with(tmp_path / "never", alert, "vector(1) == 0"))
    assert never.returncode != 0, f"{alert}: the unit tests pass even when it never fires"
    always = promtool("test", "rules", _rules_with(tmp_path / "always", alert, f"({signal}) == ({signal})"))
    assert always.returncode != 0, f"{alert}: the unit tests pass even when it always fires"


@pytest.mark.slow
def test_a_prepared_run_has_a_valid_prometheus_config(tmp_path: Path) -> None:
    """``gossip launch`` writes RUN_DIR/prometheus/prometheus.yml with one target per node on its
    metrics port, labelled with the node id, and the rules beside it; promtool accepts it."""
    cfg = load_config(env={}, overrides={"run.nodes": 3, "topology.spec": "ring", "training.rounds": 1})
    resolved, run_dir, _ = prepare_run(cfg, run_dir=tmp_path / "run")
    config = run_prometheus_dir(run_dir) / "prometheus.yml"
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    (job,) = yaml.safe_load(config.read_text())["scrape_configs"]
    targets = [(g["targets"], g["labels"]["node"]) for g in job["static_configs"]]
    assert targets == [([f"127.0.0.1:{resolved.metrics.port_of(i)}"], str(i)) for i in range(3)]
