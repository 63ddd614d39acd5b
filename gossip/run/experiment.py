"""``gossip.experiment``: one call from a script or a notebook runs a launch (real processes) or a simulation, and
returns a typed result read back from the run directory.

Both kinds of run go through the paths the console script uses (``gossip launch``: :func:`gossip.run.launch.launch`;
``gossip simulate``: :func:`gossip.run.simulate.simulate`) and are read back the same way: the run directory's
``config.toml``, ``summary.json`` and per-node records. A simulation's directory gets the files a launch leaves
(config, topology, summary) so that one :class:`ExperimentResult` compares the two.

What raises and what returns:

- a user mistake (a bad key, value or name, a run directory already used, a config the simulator does not
  support) raises :class:`~gossip.errors.ConfigError` before anything is written or started, as ``gossip
  launch`` refuses it;
- a run that ends badly (a node diverged or crashed: exit code 3 or 1) returns: its result says so
  (``exit_code``, ``ok``, ``summary``, ``log``), since the partial records are worth reading;
- a run stopped by Ctrl-C (a notebook's interrupt) or SIGTERM raises ``KeyboardInterrupt`` once every node is
  stopped, so that a sweep loop stops too; the partial results stay in the run directory.
"""

from __future__ import annotations

import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gossip.config import RunConfig, check_path_text, config_to_toml, configure, load_config
from gossip.errors import ConfigError, ExitCode
from gossip.results.records import RunRecords
from gossip.results.rundir import NodeFiles, atomic_write_text, load_vector
from gossip.results.summary import NodeSummary, RunSummary
from gossip.run.tally import summarise
from gossip.topology import save, topology_of

if TYPE_CHECKING:
    from gossip.run.simulate_open import ChurnPlan

__all__ = ["ExperimentResult", "experiment", "read_experiment"]


@dataclass(frozen=True)
class ExperimentResult:
    """A finished run as read back from its directory: the config it ran, how it ended, its summary and records."""

    run_dir: Path
    config: RunConfig  # the run directory's config.toml (a launch's has its addresses and topology file filled in)
    simulated: bool  # gossip simulate (one process) rather than gossip launch (real processes)
    exit_code: int  # gossip.errors.ExitCode: 0 every node finished, 3 a node diverged, 1 a node failed
    summary: RunSummary  # summary.json
    records: RunRecords  # every node's round records: .array("accuracy") is (nodes, rounds)
    log: str  # the launcher's or simulator's text: the table, a failed run's error line (progress lines when shown)

    @property
    def ok(self) -> bool:
        """Every node finished (exit code 0)."""
        return self.exit_code == ExitCode.FINISHED

    @property
    def honest(self) -> tuple[int, ...]:
        """The nodes that are not Byzantine attackers: the ones every accuracy figure of the summary is over."""
        return tuple(i for i in range(self.summary.nodes) if i not in self.summary.attackers)

    @property
    def accuracy_mean(self) -> float | None:
        """Mean final accuracy of the honest nodes (``summary.accuracy_mean``); None when no node evaluated."""
        return self.summary.accuracy_mean

    def final(self, key: str, *, honest: bool = False) -> np.ndarray:
        """Each node's last recorded value of ``key`` (``"accuracy"``, ``"loss"``, ...); with ``honest``, only the
        honest nodes' (in :attr:`honest` order). NaN for a node that recorded none."""
        values = self.records.last(key)
        return values[list(self.honest)] if honest else values


def experiment(
    cfg: RunConfig,
    *,
    name: str | None = None,
    run_dir: str | Path | None = None,
    simulate: bool = False,
    progress: bool = True,
    churn: ChurnPlan | None = None,
) -> ExperimentResult:
    """Run ``cfg`` and return its result; see the module docstring for what raises.

    ``name``: the run directory is ``[run] out_dir / name`` (``gossip launch --name``); ``run_dir``: this
    directory instead; neither: a new dated one under ``out_dir``. A directory that exists and is not empty
    is refused, as the console script refuses it. ``simulate``: one process (D-SGD only, see
    :mod:`gossip.run.simulate`) instead of one process per node. ``progress``: print the progress lines and
    the final table on stderr (plain lines, every 10 % of the rounds, where stderr is not a terminal, as in
    Jupyter); ``False`` draws no progress and prints nothing. ``churn``: a simulated open network's churn and size
    (:mod:`gossip.run.simulate_open`; ``[membership] enabled`` simulates one without churn). Either way what was printed, or would have been
    (the run directory, the table, a failure's error line), is kept in the result's ``log``.
    """
    if name is not None and run_dir is not None:
        raise ConfigError("experiment: give name (a directory under [run] out_dir) or run_dir, not both")
    if name is not None:
        cfg = configure(cfg, {"run.name": name})
    log = io.StringIO()
    out = _Tee(log, sys.stderr) if progress else log
    if simulate:
        path, code = _simulated(cfg, run_dir, progress, out, churn)
    else:
        from gossip.run.launch import launch

        launched = launch(cfg, run_dir=run_dir, progress=progress, out=out)
        path, code = launched.run_dir, int(launched.exit_code)
        if code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
            raise KeyboardInterrupt(f"run stopped (exit {code}); every node was stopped, partial results are in {path}")
    return read_experiment(path, exit_code=code, simulated=simulate, log=log.getvalue())


def read_experiment(run_dir: str | Path, *, exit_code: int | None = None, simulated: bool | None = None, log: str = "") -> ExperimentResult:
    """The result of a run already in ``run_dir`` (its config.toml, summary.json and records), made by this API or
    the console script. Not given, ``exit_code`` is read from the nodes' ends (0 when every node finished, 3 when
    one diverged, 1 otherwise) and ``simulated`` from their summaries."""
    path = Path(run_dir)
    config = load_config(path / "config.toml", env={})
    summary = RunSummary.read(path / "summary.json")
    records = RunRecords.read(path, summary.nodes, config.training.rounds)
    if exit_code is None:
        ends = {n.status for n in summary.per_node}
        exit_code = ExitCode.FINISHED if ends == {"finished"} else ExitCode.DIVERGED if "diverged" in ends else ExitCode.FAILED
    if simulated is None:
        simulated = NodeFiles(path, 0).summary.is_file() and NodeSummary.read(NodeFiles(path, 0).summary).simulated
    return ExperimentResult(path, config, simulated, int(exit_code), summary, records, log)


def _simulated(cfg: RunConfig, run_dir: str | Path | None, progress: bool, out: Any, churn: ChurnPlan | None) -> tuple[Path, int]:
    """Simulate ``cfg`` into a new run directory, then write the files a launch leaves beside the records.

    Returns the directory and the exit code a launch would have had: 3 (diverged) when a final model is not
    finite — the simulator runs every round regardless, where a node process stops the run.
    """
    from gossip.run.simulate import simulate
    from gossip.run.simulate_open import ChurnPlan, check_open, simulated_open_run

    if run_dir is not None:
        check_path_text("run_dir", str(run_dir))
    path = Path(run_dir) if run_dir is not None else cfg.run.directory(f"{time.strftime('%Y%m%d-%H%M%S')}-simulated")
    if path.exists() and any(path.iterdir()):
        raise ConfigError(f"run directory {path} already exists and is not empty; choose another (run_dir or name; --run-dir or --name)")
    check_open(cfg, churn or ChurnPlan())
    if cfg.membership.enabled:
        return simulated_open_run(cfg, churn or ChurnPlan(), path, progress, out)
    result = simulate(cfg, run_dir=path, progress=progress, out=out)  # checks the sizes before it builds the graph
    topology = topology_of(cfg)  # the graph it ran on: generators are seeded
    path = path.resolve()
    resolved = cfg.replace(run={"nodes": topology.n})
    atomic_write_text(path / "config.toml", config_to_toml(resolved))
    save(topology, path / "topology.json")
    save(topology, path / "topology.graphml")
    summary = summarise(path, topology, resolved, result.wall_s)
    summary.write(path / "summary.json")
    print(f"gossip: simulated {topology.n} nodes in {result.wall_s:.1f} s; run directory {path}", file=out)
    diverged = [i for i in range(topology.n) if not np.isfinite(load_vector(NodeFiles(path, i).model)).all()]
    if diverged:
        print(f"gossip: error: the final models of nodes {', '.join(map(str, diverged))} are not finite (diverged)", file=out)
        return path, int(ExitCode.DIVERGED)
    return path, int(ExitCode.FINISHED)


class _Tee:
    """A text stream that writes to a buffer and to a stream (stderr), and is a terminal when that stream is one."""

    def __init__(self, keep: io.StringIO, show: Any) -> None:
        self.keep = keep
        self.show = show

    def write(self, text: str) -> int:
        if not text.startswith("\r"):  # a terminal's redrawn progress line is not kept
            self.keep.write(text)
        return int(self.show.write(text) or 0)

    def flush(self) -> None:
        self.show.flush()

    def isatty(self) -> bool:
        return hasattr(self.show, "isatty") and bool(self.show.isatty())
