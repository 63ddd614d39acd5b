"""Model, loss and metric plug-ins through the real paths: a regression task runs with its own model, loss and metric,
summaries and reports name a plug-in metric, and each mistake in a plug-in is one line ``gossip: error: ...``, exit 2,
nothing written. (The examples' runs under launch, the API and simulate: tests/e2e/test_examples.py.)"""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from gossip.results.rundir import records_by_node
from gossip.run.simulate import simulate
from tests.cli_cases import Refusal, assert_refused, run_refusals
from tests.conftest import run_gossip

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SMALL = ["--nodes", "3", "--topology", "complete", "--rounds", "2", "--set", "metrics.enabled=false"]


def on_path(*dirs: Path) -> dict[str, str]:
    """The environment a user sets for a plug-in that is not installed: its directory on PYTHONPATH."""
    return {"PYTHONPATH": os.pathsep.join([*map(str, dirs), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    """The two examples, imported the way the launcher finds them: their directory on ``sys.path``."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import own_cnn
    import regression

    return {"own_cnn": own_cnn, "regression": regression}


def _curves(run_dir: Path) -> np.ndarray:
    """Each node's evaluated metric by evaluation round: ``(nodes, evaluations)``."""
    return np.array([[r["accuracy"] for r in records if r["accuracy"] is not None] for _node, records in records_by_node(run_dir)])


def test_the_regression_example_learns_with_its_own_model_loss_and_metric(examples: dict[str, ModuleType]) -> None:
    """examples/regression.py's loader gives float targets; simulate trains its SineNet with its Huber loss and reports
    its within-tolerance metric, which rises from the first evaluation to the last (measured 0.78 → 0.93 over 30 rounds)."""
    regression = examples["regression"]
    dataset = regression.load("", seed=0)
    assert dataset.y_train.dtype == np.float32 and dataset.is_regression

    result = simulate(regression.config(rounds=30), dataset=dataset)

    first, last = result.curve[0][1], result.curve[-1][1]
    assert last > 0.85 and last > first + 0.05, result.curve


def test_the_summary_the_progress_line_and_the_report_name_a_plug_in_metric(tmp_path: Path) -> None:
    """A run with a metric plug-in (here mse, lower is better, on labels one-hot by the plug-in) writes
    ``"metric": {"name": ..., "higher_is_better": ...}`` into summary.json; the progress line and the report name it."""
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "labmetric.py").write_text(textwrap.dedent(METRIC))
    run_dir = tmp_path / "run"
    proc = run_gossip(
        "launch", *SMALL, "--set", "training.metric=labmetric:OneHotMSE", "--run-dir", str(run_dir), env=on_path(lab), timeout=300
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metric"] == {"name": "one-hot-mse", "higher_is_better": False}
    output = proc.stdout + proc.stderr
    assert re.search(r"gossip: round 2/2  mean one-hot-mse [0-9.]+  consensus", output), output  # the progress line
    assert re.search(r"mean one-hot-mse [0-9.]+ ± [0-9.]+ \(min", output), output  # the launcher's table
    report = (run_dir / "report" / "report.md").read_text()
    assert "| test one-hot-mse |" in report and "| rounds | one-hot-mse |" in report


METRIC = """
import torch


class OneHotMSE:
    name = "one-hot-mse"
    higher_is_better = False

    def __call__(self, outputs, labels):
        target = torch.nn.functional.one_hot(labels, outputs.shape[-1]).float()
        return ((outputs.softmax(-1) - target) ** 2).sum(-1).mean()
"""

BAD = """
import torch
from torch import nn

NOT_A_MODEL = 3


def not_a_module(input_shape, num_outputs):
    return "a string"


def no_options(input_shape, num_outputs):
    return nn.Linear(input_shape[0], num_outputs)


def double(input_shape, num_outputs):
    return nn.Linear(input_shape[0], num_outputs).double()


def empty(input_shape, num_outputs):
    return nn.Identity()


def crashes(input_shape, num_outputs):
    raise RuntimeError("out of ideas")


def vector_metric():
    return lambda outputs, labels: (outputs.argmax(-1) == labels).float()
"""


# Each way a model, loss or metric plug-in can be wrong: case → (the flags, the start of the one line that refuses it)
BAD_CASES = {
    "not-importable": (["--set", "model.name=labmissing:Net"],
        "[model] name = 'labmissing:Net': no module named 'labmissing' on the Python path; "
        "install the plug-in's package or add its directory to PYTHONPATH (e.g. PYTHONPATH=. gossip launch ...)"),
    "no-attribute": (["--set", "model.name=labmodels:Missing"], "[model] name = 'labmodels:Missing': 'labmodels' has no attribute 'Missing'"),
    "not-callable": (["--set", "model.name=labmodels:NOT_A_MODEL"],
        "[model] name = 'labmodels:NOT_A_MODEL' is not a class or function that builds a plug-in (its type is 'int')"),
    "bad-options": (["--set", "model.name=labmodels:no_options", "--set", "model.options=width=3"],
        "[model] name = 'labmodels:no_options' refused its options {'width': 3}: no_options() got an unexpected keyword argument 'width'"),
    "options-for-shipped": (["--set", "model.name=mlp", "--set", "model.options=width=3"],
        "[model] options are a plug-in's keyword arguments; model.name = 'mlp' takes its settings from the section's keys"),
    "not-a-module": (["--set", "model.name=labmodels:not_a_module"],
        "[model] name = 'labmodels:not_a_module' built a str, not a torch.nn.Module; see gossip.learn.models.ModelFactory"),
    "float64": (["--set", "model.name=labmodels:double"],
        "[model] name = 'labmodels:double': parameter 'weight' is float64; models travel as float32, "
        "so every parameter and floating buffer must be float32 (e.g. .float())"),
    "no-parameters": (["--set", "model.name=labmodels:empty"],
        "[model] name = 'labmodels:empty' built a Identity with no parameters: there is nothing to learn or gossip"),
    "factory-raises": (["--set", "model.name=labmodels:crashes"], "[model] name = 'labmodels:crashes': building it failed: RuntimeError: out of ideas"),
    "loss-does-not-fit": (["--set", "training.loss=mse"],
        "[training] loss = 'mse' failed on two training samples (inputs (2, 40) and targets int64 (2,)): "
        "ValueError: mse needs one output per target value: outputs (2, 10), targets (2,)"),
    "metric-not-a-number": (["--set", "training.metric=labmodels:vector_metric"],
        "[training] metric = 'labmodels:vector_metric' returned Tensor (2,), not one number (a batch mean)"),
    "unknown-loss": (["--set", "training.loss=accuracy"], "[training] loss = 'accuracy' is not one of 'cross-entropy', 'mse' (or a plug-in as "),
}  # fmt: skip
SIMULATE_CASES = ("float64", "metric-not-a-number")


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Refusal]:
    """Every case through ``gossip launch``, and some through ``gossip simulate``, the plug-ins' directory on PYTHONPATH;
    one interpreter for them all (tests/cli_cases.py)."""
    base = tmp_path_factory.mktemp("bad-plugins")
    lab = base / "lab"
    lab.mkdir()
    (lab / "labmodels.py").write_text(textwrap.dedent(BAD))
    cases = {case: ["launch", *SMALL, *args] for case, (args, _) in BAD_CASES.items()}
    cases |= {f"simulate-{case}": ["simulate", "-n", "3", "-t", "complete", "-r", "2", *BAD_CASES[case][0]] for case in SIMULATE_CASES}
    return run_refusals(base, cases, env=on_path(lab))


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_a_bad_model_loss_or_metric_is_one_line_exit_2_and_nothing_written(refused: dict[str, Refusal], case: str) -> None:
    """Each way a model, loss or metric plug-in can be wrong is refused by ``gossip launch`` before any process starts:
    one line naming the key and the plug-in, exit code 2, no run directory."""
    assert_refused(refused[case], BAD_CASES[case][1])


@pytest.mark.parametrize("case", SIMULATE_CASES)
def test_gossip_simulate_refuses_a_bad_plug_in_the_same_way(refused: dict[str, Refusal], case: str) -> None:
    """``gossip simulate`` runs the same checks before it simulates anything: one line, exit 2, no run directory."""
    assert_refused(refused[f"simulate-{case}"], BAD_CASES[case][1])
