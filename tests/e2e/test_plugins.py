"""Plug-ins by import path through the real console script: a user's rule trains on real processes, and each
mistake in naming or building one is one line ``gossip: error: ...``, exit 2, nothing started, nothing written."""

from __future__ import annotations

import io
import os
import textwrap
from pathlib import Path

import pytest

from gossip.config import load_config
from gossip.run.launch import launch
from gossip.run.prepare import prepare_run
from tests.cli_cases import Refusal, assert_refused, run_refusals
from tests.conftest import run_gossip

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SMALL = ["--nodes", "5", "--topology", "complete", "--rounds", "20", "--set", "metrics.enabled=false"]
SIGN_FLIP = ["--set", "byzantine.nodes=[4]", "--set", "byzantine.attack=sign-flip"]


def on_path(*dirs: Path) -> dict[str, str]:
    """The environment a user sets for a plug-in that is not installed: its directory on PYTHONPATH."""
    return {"PYTHONPATH": os.pathsep.join([*map(str, dirs), os.environ.get("PYTHONPATH", "")])}


BAD = """
NOT_A_RULE = 3


class NoAggregate:
    def mix(self, local, received, weights):
        return local


class Mean:
    def aggregate(self, local, received, weights):
        return local


class NoPayloads:
    name = "nothing"
"""


# Each way a rule or attack plug-in can be wrong: the flags, the whole line that refuses it
BAD_CASES = [
        (["--set", "aggregation.rule=labrules_missing:Rule"],
         "[aggregation] rule = 'labrules_missing:Rule': no module named 'labrules_missing' on the Python path; "
         "install the plug-in's package or add its directory to PYTHONPATH (e.g. PYTHONPATH=. gossip launch ...)"),
        (["--set", "aggregation.rule=labrules:Missing"], "[aggregation] rule = 'labrules:Missing': 'labrules' has no attribute 'Missing'"),
        (["--set", "aggregation.rule=labrules:NOT_A_RULE"],
         "[aggregation] rule = 'labrules:NOT_A_RULE' is not a class or function that builds a plug-in (its type is 'int')"),
        (["--set", "aggregation.rule=labrules:NoAggregate"],
         "[aggregation] rule = 'labrules:NoAggregate' built a NoAggregate without aggregate(); see gossip.algorithms.Aggregator"),
        (["--set", "aggregation.rule=labbroken:Rule"], "[aggregation] rule = 'labbroken:Rule': importing 'labbroken' failed: RuntimeError: no GPU here"),
        (["--set", "aggregation.rule=labrules:Mean", "--set", "aggregation.options=iterations=3"],
         "[aggregation] rule = 'labrules:Mean' refused its options {'iterations': 3}: Mean() takes no arguments"),
        (["--set", "aggregation.rule=labrules:Mean", *SIGN_FLIP],
         "[byzantine] node 0 has 1 Byzantine neighbours (4) but plug-in rule 'labrules:Mean' declares no Byzantine tolerance "
         "(no tolerated(inputs)); declare tolerated(inputs) on the rule, or place the attackers further apart"),
        (["--set", "byzantine.nodes=[4]", "--set", "byzantine.attack=labrules:NoPayloads", "--set", "aggregation.rule=median"],
         "[byzantine] attack = 'labrules:NoPayloads' built a NoPayloads without payloads(); see gossip.algorithms.attacks.Attack"),
        (["--set", "aggregation.rule=lab rules:Mean"], "[aggregation] rule = 'lab rules:Mean' is not an import path; write it as 'package.module:Attribute'"),
        (["--set", "aggregation.rule=median", "--set", "aggregation.options=f=2"],
         "[aggregation] options are a plug-in's keyword arguments; aggregation.rule = 'median' takes its settings from the section's keys"),
]  # fmt: skip
BAD_IDS = ["not-importable", "no-attribute", "not-callable", "wrong-shape", "import-raises", "bad-options", "no-tolerance",
         "attack-wrong-shape", "not-an-import-path", "options-for-a-shipped-rule"]  # fmt: skip


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Refusal]:
    """Every case through ``gossip launch``, the lab modules on PYTHONPATH; one interpreter for them all (tests/cli_cases.py)."""
    base = tmp_path_factory.mktemp("bad-rules")
    lab = base / "lab"
    lab.mkdir()
    (lab / "labrules.py").write_text(textwrap.dedent(BAD))
    (lab / "labbroken.py").write_text('raise RuntimeError("no GPU here")\n')
    cases = {case: ["launch", *SMALL, *args] for case, (args, _) in zip(BAD_IDS, BAD_CASES, strict=True)}
    return run_refusals(base, cases, env=on_path(lab))


@pytest.mark.parametrize(("case", "message"), [(case, message) for case, (_, message) in zip(BAD_IDS, BAD_CASES, strict=True)], ids=BAD_IDS)
def test_a_bad_plug_in_is_one_line_exit_2_and_nothing_written(refused: dict[str, Refusal], case: str, message: str) -> None:
    """Each way a plug-in can be wrong is refused by ``gossip launch`` before any process starts: one line that
    names the key and the plug-in and says what to do, exit code 2, no run directory."""
    assert_refused(refused[case], message, whole=True)


def test_a_node_that_cannot_import_the_plug_in_refuses_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``gossip node`` builds the plug-in at start-up: a node whose Python path lacks the rule's module (here a
    node started by hand without PYTHONPATH) exits 2 with the one line, before it writes anything."""
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "labnode.py").write_text(textwrap.dedent(BAD))
    monkeypatch.syspath_prepend(str(lab))  # the launcher's side has it: prepare_run checks it and writes the run
    cfg = load_config(env={}, overrides={"run.nodes": 3, "topology.spec": "complete", "aggregation.rule": "labnode:Mean"})
    _resolved, run_dir, _topology = prepare_run(cfg, run_dir=tmp_path / "run")

    proc = run_gossip("node", "--config", str(run_dir / "config.toml"), "--id", "0", "--run-dir", str(run_dir), timeout=120)

    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "gossip: error: [aggregation] rule = 'labnode:Mean': no module named 'labnode' on the Python path; "
        "install the plug-in's package or add its directory to PYTHONPATH (e.g. PYTHONPATH=. gossip launch ...)"
    )
    assert not list((run_dir / "nodes").iterdir())  # no log, no summary: the node never started its work


def test_spawned_nodes_import_a_plug_in_found_only_on_the_launchers_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A launcher that found the rule on its own ``sys.path`` (a script's directory, not ``PYTHONPATH``) passes that
    path on: nodes started as fresh interpreters (``spawn``) import the rule too and the run finishes (without it
    each node exits 2: no module named 'geomedian')."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))  # gossip itself, as the test runs it
    cfg = load_config(
        env={},
        overrides={
            "run.nodes": 3,
            "topology.spec": "complete",
            "training.rounds": 3,
            "metrics.enabled": False,
            "aggregation.rule": "geomedian:GeoMedian",
        },
    )
    result = launch(cfg, run_dir=tmp_path / "run", progress=False, out=io.StringIO(), spawn=True)
    assert result.exit_code == 0, (tmp_path / "run" / "nodes" / "node-0.log").read_text()
    assert result.summary["aggregation"] == "geomedian:GeoMedian"


COUNTED = """
import os
from pathlib import Path

with open(Path(__file__).with_name("imports.txt"), "a") as marks:
    marks.write(f"{os.getpid()}\\n")


class Mean:
    def aggregate(self, local, received, weights):
        return (local + sum(received.values())) / (1 + len(received))
"""


def test_the_fork_server_imports_the_plug_in_once_for_every_node(tmp_path: Path) -> None:
    """The fork server preloads the rule's module, so its forks share it: the module runs twice (the launcher's check
    and the server), not once per node as well (4 more without the preload). The node-environment import check
    finds the module where the launcher did and does not run it."""
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "labcount.py").write_text(textwrap.dedent(COUNTED))
    run_dir = tmp_path / "run"
    proc = run_gossip(
        "launch", "--nodes", "4", "--topology", "complete", "--rounds", "2", "--set", "metrics.enabled=false",
        "--set", "aggregation.rule=labcount:Mean", "--run-dir", str(run_dir), env=on_path(lab), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    importers = (lab / "imports.txt").read_text().split()
    assert len(importers) == len(set(importers)) == 2, importers
