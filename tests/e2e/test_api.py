"""``gossip.experiment`` end to end: real node processes (or the simulator) behind a few lines of Python, and a
typed result read back from the run directory."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import gossip
from gossip.errors import ConfigError, ExitCode
from gossip.results.rundir import read_jsonl
from gossip.run.experiment import read_experiment
from tests.conftest import REPO, run_gossip
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SETTINGS = {"run.nodes": "4", "topology.spec": "ring", "training.rounds": "6", "run.seed": "3", "metrics.enabled": "false"}


def _model_digests(run_dir: Path) -> list[str]:
    """SHA-256 of every node's final parameter file, in node order."""
    return [hashlib.sha256((run_dir / "nodes" / f"node-{i}.npy").read_bytes()).hexdigest() for i in range(4)]


def test_api_launch_trains_bit_identical_models_to_the_console_script(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The same settings and seed through ``gossip.experiment`` and through ``gossip launch --set``: the final model
    files are byte for byte the same, and so are the summaries' model hashes. With ``progress=False`` the API
    writes nothing on stdout or stderr (nor do the node processes); the launcher's text is in ``result.log``."""
    cfg = gossip.configure(gossip.RunConfig(), SETTINGS)
    result = gossip.experiment(cfg, run_dir=tmp_path / "api", progress=False)
    printed = capfd.readouterr()
    assert (printed.out, printed.err) == ("", "")
    sets = [arg for key, value in SETTINGS.items() for arg in ("--set", f"{key}={value}")]
    cli = run_gossip("launch", "--run-dir", str(tmp_path / "cli"), "--no-progress", "--no-report", *sets)
    assert cli.returncode == 0, cli.stderr
    assert result.ok and result.exit_code == 0 and not result.simulated
    assert _model_digests(result.run_dir) == _model_digests(tmp_path / "cli")
    cli_summary = gossip.RunSummary.read(tmp_path / "cli" / "summary.json")
    assert [n.model_hash for n in result.summary.per_node] == [n.model_hash for n in cli_summary.per_node]
    assert len({n.model_hash for n in cli_summary.per_node}) == 4  # the nodes differ: the comparison is not trivial
    assert "mean accuracy" in result.log and f"run directory {result.run_dir}" in result.log
    assert result.config.run.seed == 3 and result.config.training.rounds == 6  # read back from config.toml
    earlier = read_experiment(tmp_path / "cli")  # the console script's run, read as a result
    assert earlier.ok and not earlier.simulated and earlier.summary == cli_summary
    np.testing.assert_array_equal(earlier.records.array("accuracy"), result.records.array("accuracy"))


def test_simulated_and_launched_results_have_the_same_records_and_summary(tmp_path: Path) -> None:
    """One config, both kinds: the same record arrays (shape and the simulator's fields, which a launch also
    writes), a summary of each, and final accuracies within float rounding of each other."""
    cfg = gossip.configure(gossip.RunConfig(), SETTINGS)
    cfg = gossip.configure(cfg, {"run.out_dir": str(tmp_path)})
    sim = gossip.experiment(cfg, name="sim", simulate=True, progress=False)
    real = gossip.experiment(cfg, name="real", progress=False)
    assert (sim.run_dir, real.run_dir) == (tmp_path / "sim", tmp_path / "real")
    assert sim.simulated and not real.simulated and sim.ok and real.ok
    assert set(sim.records.keys()) <= set(real.records.keys())
    for key in sim.records.keys():
        assert sim.records.array(key).shape == real.records.array(key).shape == (4, 6), key
    for run in (sim, real):
        assert {p.name for p in run.run_dir.iterdir()} >= {"config.toml", "summary.json", "topology.json", "nodes"}
        assert run.summary.nodes == 4 and run.summary.rounds == 6 and run.summary.accuracy_mean is not None
        assert [n.status for n in run.summary.per_node] == ["finished"] * 4
    assert np.abs(sim.final("accuracy") - real.final("accuracy")).max() <= 0.015
    assert sim.accuracy_mean == pytest.approx(real.accuracy_mean, abs=0.015)


def test_simulate_progress_is_plain_lines_off_a_terminal_and_silent_when_off(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Stderr that is not a terminal (a notebook's, here pytest's): one line per tenth of the rounds, no ``\\r``;
    ``progress=False``: nothing at all on stdout or stderr, and no progress lines drawn (the closing line is in ``log``)."""
    cfg = gossip.configure(gossip.RunConfig(), {**SETTINGS, "training.rounds": "20"})
    gossip.experiment(cfg, run_dir=tmp_path / "shown", simulate=True)
    shown = capfd.readouterr().err
    assert "\r" not in shown
    assert re.findall(r"gossip: round (\d+)/20", shown) == ["1", *map(str, range(2, 21, 2))]
    result = gossip.experiment(cfg, run_dir=tmp_path / "silent", simulate=True, progress=False)
    assert capfd.readouterr() == ("", "")
    assert "gossip: simulated 4 nodes" in result.log and "gossip: round" not in result.log  # kept, but no progress drawn


def test_a_diverging_launch_returns_its_result_with_exit_code_3(tmp_path: Path) -> None:
    """A run that fails is a result, not an exception: exit code 3, ``ok`` false, the summary names the diverged
    node, and the log holds the launcher's error line."""
    cfg = gossip.configure(gossip.RunConfig(), {**SETTINGS, "training.rounds": "20", "training.lr": "1e6"})
    result = gossip.experiment(cfg, run_dir=tmp_path / "run", progress=False)
    assert result.exit_code == ExitCode.DIVERGED and not result.ok
    assert "diverged" in [n.status for n in result.summary.per_node]
    assert re.search(r"gossip: error: node \d diverged at round \d+", result.log)


def test_a_run_directory_that_is_taken_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """``name`` of a directory that already holds a run: ConfigError, as ``gossip launch --name`` refuses it, for
    both kinds; the directory is left as it was."""
    cfg = gossip.configure(gossip.RunConfig(), {**SETTINGS, "run.out_dir": str(tmp_path)})
    gossip.experiment(cfg, name="taken", simulate=True, progress=False)
    before = sorted(p.name for p in (tmp_path / "taken").rglob("*"))
    for simulate in (True, False):
        with pytest.raises(ConfigError, match="already exists and is not empty"):
            gossip.experiment(cfg, name="taken", simulate=simulate, progress=False)
    assert sorted(p.name for p in (tmp_path / "taken").rglob("*")) == before


def test_ctrl_c_during_a_launch_stops_the_nodes_and_raises_keyboard_interrupt(tmp_path: Path) -> None:
    """A notebook's interrupt (SIGINT to this process) while the nodes run: every node is stopped, then
    ``KeyboardInterrupt`` reaches the caller (a sweep loop stops too) and the records so far stay."""
    cfg = gossip.configure(gossip.RunConfig(), {**SETTINGS, "training.rounds": "500"})
    run_dir = tmp_path / "run"

    def interrupt_once_a_round_is_recorded() -> None:
        wait_until(lambda: bool(read_jsonl(run_dir / "nodes" / "node-0.jsonl")), timeout_s=120, what="a first record")
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt_once_a_round_is_recorded, daemon=True)
    thread.start()
    with pytest.raises(KeyboardInterrupt, match="partial results are in"):
        gossip.experiment(cfg, run_dir=run_dir, progress=False)
    thread.join()
    summary = gossip.RunSummary.read(run_dir / "summary.json")
    assert [n.status for n in summary.per_node] == ["stopped"] * 4
    assert max(n.rounds_completed for n in summary.per_node) < 500


def test_sweep_example_gives_six_self_describing_run_directories(tmp_path: Path) -> None:
    """``examples/sweep.py``: 2 rules × 3 seeds as real launches; a row per run, each in its own directory named
    for its rule and seed, whose ``config.toml`` says the same."""
    out = tmp_path / "sweep"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run(
        [sys.executable, str(REPO / "examples" / "sweep.py"), "--out-dir", str(out), "--rounds", "3"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert [(rule, seed) for rule, seed, *_ in rows] == [(rule, str(s)) for rule in ("dsgd", "median") for s in (0, 1, 2)]
    for rule, seed, accuracy, run_dir in rows:
        assert Path(run_dir) == out / f"{rule}-s{seed}"
        cfg = gossip.load_config(Path(run_dir) / "config.toml", env={})
        assert (cfg.aggregation.rule, cfg.run.seed, cfg.byzantine.nodes) == (rule, int(seed), (4,))
        assert 0.0 <= float(accuracy) <= 1.0


def test_a_simulation_with_attackers_is_refused_not_run_honest(tmp_path: Path) -> None:
    """The simulator runs honest D-SGD only: ``byzantine.nodes`` is a ConfigError before any file is written,
    not a run whose attackers silently behave."""
    cfg = gossip.configure(gossip.RunConfig(), {**SETTINGS, "byzantine.nodes": "[3]", "byzantine.attack": "sign-flip"})
    with pytest.raises(ConfigError, match=r"simulate does not model \[byzantine\] nodes = \[3\]"):
        gossip.experiment(cfg, run_dir=tmp_path / "run", simulate=True, progress=False)
    assert not (tmp_path / "run").exists()


def test_a_diverging_simulation_returns_exit_code_3_like_a_launch(tmp_path: Path) -> None:
    """The simulator runs every round whatever the models hold; its result still says the run diverged."""
    cfg = gossip.configure(gossip.RunConfig(), {**SETTINGS, "training.rounds": "20", "training.lr": "1e6"})
    result = gossip.experiment(cfg, run_dir=tmp_path / "run", simulate=True, progress=False)
    assert result.exit_code == ExitCode.DIVERGED and not result.ok
    assert "are not finite (diverged)" in result.log
    assert read_experiment(result.run_dir).simulated


def test_honest_final_values_leave_the_attacker_out_and_agree_with_the_summary(tmp_path: Path) -> None:
    """Node 3 plays sign-flip: ``honest`` is nodes 0-2, ``final("accuracy", honest=True)`` their last evaluations
    from the records, whose mean is the summary's ``accuracy_mean`` (which counts honest nodes only)."""
    cfg = gossip.configure(
        gossip.RunConfig(),
        {**SETTINGS, "topology.spec": "complete", "aggregation.rule": "median", "byzantine.nodes": "[3]", "byzantine.attack": "sign-flip"},
    )
    result = gossip.experiment(cfg, run_dir=tmp_path / "run", progress=False)
    assert result.ok and result.honest == (0, 1, 2)
    honest = result.final("accuracy", honest=True)
    assert honest.shape == (3,) and result.final("accuracy").shape == (4,)
    assert float(honest.mean()) == pytest.approx(result.accuracy_mean)
    assert result.summary.accuracy_mean_all_nodes == pytest.approx(float(result.final("accuracy").mean()))


def test_a_simulation_too_large_for_the_memory_is_refused_before_its_graph_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 000 simulated nodes of a 16M-parameter MLP: the memory check on the config's numbers refuses it with a
    ConfigError before any graph is generated or file written."""
    import importlib

    def no_graph(*args: object, **kwargs: object) -> None:
        raise AssertionError("a graph was built before the memory check")

    monkeypatch.setattr(importlib.import_module("gossip.topology.generate"), "parse_spec", no_graph)  # what topology_of calls
    cfg = gossip.configure(gossip.RunConfig(), {"run.nodes": 10000, "training.rounds": 1, "model.hidden": [4000, 4000]})
    with pytest.raises(ConfigError, match="simulating 10000 nodes"):
        gossip.experiment(cfg, run_dir=tmp_path / "s", simulate=True, progress=False)
    assert not (tmp_path / "s").exists()
