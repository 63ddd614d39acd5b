"""A user's dataset and partition as plug-ins, through the real console script: the example trains on real node
processes that each read only their own part, a lazy run resumes, and each mistake in a loader or a split is one
line ``gossip: error: ...``, exit 2, nothing started, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tests.cli_cases import Refusal, assert_refused, run_refusals
from tests.conftest import run_gossip

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SMALL = ["--nodes", "4", "--topology", "ring", "--rounds", "20", "--set", "metrics.enabled=false", "--no-report"]


def on_path(*dirs: Path) -> dict[str, str]:
    """The environment a user sets for a plug-in that is not installed: its directory on PYTHONPATH."""
    return {"PYTHONPATH": os.pathsep.join([*map(str, dirs), os.environ.get("PYTHONPATH", "")])}


def own_run(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """The example's files written by the example, then a 4-node launch of its loader and its block split (overlap 10),
    every process recording what it read into ``trace/``. Returns the launch, the run directory and the trace."""
    data, trace, run_dir = tmp_path / "own", tmp_path / "trace", tmp_path / "run"
    subprocess.run([sys.executable, str(EXAMPLES / "own_dataset.py"), "--write", str(data)], check=True, timeout=120)
    trace.mkdir()
    proc = run_gossip(
        "launch", *SMALL, "--set", "data.dataset=own_dataset:load", "--set", f"data.root={data}",
        "--set", f"data.options=trace={trace}", "--set", "data.partition=own_dataset:blocks",
        "--set", "data.partition_options=overlap=10", *extra, "--run-dir", str(run_dir), env=on_path(EXAMPLES), timeout=300,
    )  # fmt: skip
    return proc, run_dir, trace


def reads(trace: Path) -> dict[str, dict[str, set[int]]]:
    """Per process id: the indices it read of each split."""
    found: dict[str, dict[str, set[int]]] = defaultdict(lambda: {"train": set(), "test": set()})
    for path in trace.glob("reads-*.txt"):
        _, pid, split = path.stem.split("-")
        found[pid][split] |= {int(line) for line in path.read_text().split()}
    return found


def test_the_own_dataset_example_trains_and_each_node_reads_only_its_part(tmp_path: Path) -> None:
    """examples/own_dataset.py's lazy loader and block split run 4 real nodes to a trained model (measured mean
    accuracy 0.84 after 20 rounds on a ring; chance 0.10). The launcher writes the split but no data.npz, reads
    at most ``train[0]`` and ``test[0]``; each node process reads exactly its own part of the training set (the
    launcher's shards.npz, blocks with 10 samples of overlap) and the test set, nothing of anyone else's."""
    proc, run_dir, trace = own_run(tmp_path)

    assert proc.returncode == 0, proc.stderr
    assert json.loads((run_dir / "summary.json").read_text())["accuracy_mean"] > 0.6
    assert not (run_dir / "data.npz").exists()
    with np.load(run_dir / "shards.npz") as shards:
        parts = [set(shards[f"part_{i}"].tolist()) for i in range(4)]
    assert parts[0] == set(range(0, 369)) and parts[3] == set(range(1077, 1437))  # the plug-in's blocks, overlap included
    by_process = reads(trace)
    nodes = {pid: r for pid, r in by_process.items() if r["test"] == set(range(360))}
    assert sorted(parts.index(r["train"]) if r["train"] in parts else -1 for r in nodes.values()) == [0, 1, 2, 3], nodes
    others = [r for pid, r in by_process.items() if pid not in nodes]
    assert len(others) == 1 and others[0]["train"] <= {0} and others[0]["test"] <= {0}, others  # the launcher's probe


def test_a_run_of_a_lazy_dataset_resumes(tmp_path: Path) -> None:
    """``gossip launch --resume`` takes a run directory without data.npz when it holds the split (a lazy dataset's
    run): its nodes load their parts again through the loader and the run ends cleanly."""
    first, run_dir, _trace = own_run(tmp_path, "--set", "training.checkpoint_every=5")
    assert first.returncode == 0, first.stderr

    again = run_gossip("launch", "--resume", str(run_dir), "--no-progress", "--no-report", env=on_path(EXAMPLES), timeout=300)

    assert again.returncode == 0, again.stderr
    assert "gossip: resuming" in again.stderr
    assert json.loads((run_dir / "summary.json").read_text())["dead_nodes"] == []


def test_gossip_simulate_reads_a_lazy_dataset_whole_and_trains(tmp_path: Path) -> None:
    """``gossip simulate`` holds every node in one process: it reads the example's whole dataset through the loader and
    trains the same problem (measured mean accuracy 0.84 after 20 rounds, as the launch)."""
    data, run_dir = tmp_path / "own", tmp_path / "sim"
    subprocess.run([sys.executable, str(EXAMPLES / "own_dataset.py"), "--write", str(data)], check=True, timeout=120)
    proc = run_gossip(
        "simulate", "--nodes", "4", "--topology", "ring", "--rounds", "20", "--set", "data.dataset=own_dataset:load",
        "--set", f"data.root={data}", "--set", "data.partition=own_dataset:blocks", "--run-dir", str(run_dir),
        env=on_path(EXAMPLES), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    finals = [json.loads((run_dir / "nodes" / f"node-{i}.json").read_text()) for i in range(4)]
    assert min(f["accuracy"] for f in finals) > 0.6, finals


LAB = """
import numpy as np
from gossip.data import TorchData

NOT_A_LOADER = 3


class Pairs:
    def __init__(self, n, width=4, bad_at=None):
        self.n, self.width, self.bad_at = n, width, bad_at

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        width = self.width + 1 if i == self.bad_at else self.width
        return np.full(width, i % 3, dtype=np.float32), i % 3


def lazy(root, seed):
    return TorchData(Pairs(40), Pairs(10), num_outputs=3)


def labelled(root, seed):
    return TorchData(Pairs(40), Pairs(10), num_outputs=3, labels=np.arange(40) % 3)


def as_list(root, seed):
    return [1, 2, 3]


def empty_test(root, seed):
    return TorchData(Pairs(40), Pairs(0), num_outputs=3)


def mismatched(root, seed):
    return TorchData(Pairs(40), Pairs(10, width=5), num_outputs=3)


def raises(root, seed):
    raise OSError("disk not mounted")


def three_parts(num_samples, labels, nodes, seed):
    return [[0], [1], [2]]


def out_of_range(num_samples, labels, nodes, seed):
    return [[i, num_samples] if i == 2 else [i] for i in range(nodes)]


def empty_part(num_samples, labels, nodes, seed):
    return [[]] + [[i] for i in range(1, nodes)]


def twice(num_samples, labels, nodes, seed):
    return [[i, i] for i in range(nodes)]


def floats(num_samples, labels, nodes, seed):
    return [[0.5] for _ in range(nodes)]


def by_label(num_samples, labels, nodes, seed):
    return [list(np.flatnonzero(labels % nodes == i)) for i in range(nodes)]


by_label.needs_labels = True
"""

DATA = "[data] dataset"
PART = "[data] partition"


# Each way a loader or a split can be wrong: the --set values, the whole line that refuses it
BAD_CASES = [
        (["data.dataset=labdata_missing:load"],
         f"{DATA} = 'labdata_missing:load': no module named 'labdata_missing' on the Python path; "
         "install the plug-in's package or add its directory to PYTHONPATH (e.g. PYTHONPATH=. gossip launch ...)"),
        (["data.dataset=labdata:missing"], f"{DATA} = 'labdata:missing': 'labdata' has no attribute 'missing'"),
        (["data.dataset=labdata:NOT_A_LOADER"],
         f"{DATA} = 'labdata:NOT_A_LOADER' is not a class or function that builds a plug-in (its type is 'int')"),
        (["data.dataset=labdata:lazy", "data.options=size=3"],
         f"{DATA} = 'labdata:lazy' refused its options {{'size': 3}}: got an unexpected keyword argument 'size'"),
        (["data.dataset=digits", "data.options=size=3"],
         "[data] options are a plug-in dataset's keyword arguments; data.dataset = 'digits' takes its settings from the section's keys"),
        (["data.dataset=labdata:as_list"],
         f"{DATA} = 'labdata:as_list' returned a list; a loader returns gossip.data.Dataset or gossip.data.TorchData"),
        (["data.dataset=labdata:empty_test"], f"{DATA} = 'labdata:empty_test': TorchData.test is empty; a run needs training and test samples"),
        (["data.dataset=labdata:mismatched"], f"{DATA} = 'labdata:mismatched': inconsistent shapes: train[0] has shape (4,) but test[0] has (5,)"),
        (["data.dataset=labdata:raises"], f"{DATA} = 'labdata:raises' failed: OSError: disk not mounted"),
        (["data.partition=labdata_missing:split"],
         f"{PART} = 'labdata_missing:split': no module named 'labdata_missing' on the Python path; "
         "install the plug-in's package or add its directory to PYTHONPATH (e.g. PYTHONPATH=. gossip launch ...)"),
        (["data.partition=labdata:NOT_A_LOADER"],
         f"{PART} = 'labdata:NOT_A_LOADER' is not a class or function that builds a plug-in (its type is 'int')"),
        (["data.partition=labdata:twice", "data.partition_options=k=1"],
         f"{PART} = 'labdata:twice' refused its options {{'k': 1}}: got an unexpected keyword argument 'k'"),
        (["data.partition=iid", "data.partition_options=k=1"],
         "[data] partition_options are a plug-in's keyword arguments; data.partition = 'iid' takes its settings from the section's keys"),
        (["data.partition=labdata:three_parts"],
         f"{PART} = 'labdata:three_parts' returned 3 parts for 4 nodes; return exactly one sequence of sample indices per node"),
        (["data.partition=labdata:out_of_range"],
         f"{PART} = 'labdata:out_of_range': part 2 holds index 1437, outside the training set's 0..1436"),
        (["data.partition=labdata:empty_part"], f"{PART} = 'labdata:empty_part': part 0 is empty; every node needs at least one sample (or mark the split allows_empty = True)"),
        (["data.partition=labdata:twice"], f"{PART} = 'labdata:twice': part 0 holds index 0 twice; a node's part lists each sample once"),
        (["data.partition=labdata:floats"],
         f"{PART} = 'labdata:floats': part 0 is not a flat sequence of integer sample indices (got float64 of shape (1,))"),
        (["data.dataset=labdata:lazy", "data.partition=dirichlet"],
         f"{PART} = 'dirichlet' splits by label, but dataset 'labdata:lazy' gives no labels: "
         "return TorchData(..., labels=...) from its loader, or use partition = 'iid'"),
        (["data.dataset=labdata:lazy", "data.partition=labdata:by_label"],
         f"{PART} = 'labdata:by_label' splits by label, but dataset 'labdata:lazy' gives no labels: "
         "return TorchData(..., labels=...) from its loader, or use partition = 'iid'"),
]  # fmt: skip
BAD_IDS = ["dataset-not-importable", "dataset-no-attribute", "dataset-not-callable", "dataset-options-refused",
         "options-for-a-shipped-dataset", "dataset-wrong-type", "dataset-empty-split", "dataset-inconsistent-shapes",
         "dataset-raises", "partition-not-importable", "partition-not-callable", "partition-options-refused",
         "options-for-a-shipped-partition", "partition-too-few-parts", "partition-index-out-of-range", "partition-empty-part",
         "partition-index-twice", "partition-not-integers", "shipped-partition-needs-labels", "plug-in-partition-needs-labels"]  # fmt: skip


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Refusal]:
    """Every case through ``gossip launch`` (digits unless the case names a dataset), the lab module on PYTHONPATH;
    one interpreter for them all (tests/cli_cases.py)."""
    base = tmp_path_factory.mktemp("bad-data")
    lab = base / "lab"
    lab.mkdir()
    (lab / "labdata.py").write_text(textwrap.dedent(LAB))
    cases = {}
    for case, (args, _) in zip(BAD_IDS, BAD_CASES, strict=True):
        given = args if any(a.startswith("data.dataset=") for a in args) else ["data.dataset=digits", *args]
        cases[case] = ["launch", *SMALL, *(arg for a in given for arg in ("--set", a))]
    return run_refusals(base, cases, env=on_path(lab))


@pytest.mark.parametrize(("case", "message"), [(case, message) for case, (_, message) in zip(BAD_IDS, BAD_CASES, strict=True)], ids=BAD_IDS)
def test_a_bad_dataset_or_partition_plug_in_is_one_line_exit_2_and_nothing_written(
    refused: dict[str, Refusal], case: str, message: str
) -> None:
    """Each way a loader or a split can be wrong is refused by ``gossip launch`` before any process starts: one line
    that names the key and the plug-in and says what is wrong, exit code 2, no run directory."""
    assert_refused(refused[case], message, whole=True)
