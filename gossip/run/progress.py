"""The launcher's view of a run in progress: each node's latest round from its records, drawn as one status line."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gossip.results.rundir import NodeFiles, iter_new_records

__all__ = ["NodeProgress", "ProgressBar"]


@dataclass
class NodeProgress:
    """How far a node got, as its JSONL records say; read incrementally from ``offset``."""

    node: int
    offset: int = 0  # bytes of the records file already read
    round: int = 0  # rounds done
    accuracy: float | None = None  # at its last evaluation
    distance: float | None = None  # consensus distance in its last round

    def follow(self, run_dir: Path) -> None:
        """Read the records the node appended since the last call."""
        records, self.offset = iter_new_records(NodeFiles(run_dir, self.node).records, self.offset)
        for r in records:
            self.round = r["round"] + 1
            if r.get("accuracy") is not None:
                self.accuracy = r["accuracy"]
            self.distance = r.get("consensus_distance")

    def restart(self) -> None:
        """The node was started again: it cuts its records back to its checkpoint, so read them from the start."""
        self.offset = 0


class ProgressBar:
    """One live status line on a terminal; a plain line every 10 % of the rounds elsewhere (CI logs).

    Hand-rolled rather than tqdm: the line carries the numbers a user watches (round, mean accuracy,
    consensus distance) and nothing needs to be configured to get it right in a pty or a log file.
    """

    def __init__(self, rounds: int, nodes: int, enabled: bool | None, out: Any, metric: str = "accuracy") -> None:
        self.metric = metric  # what the records' accuracy holds ([training] metric)
        self.rounds = rounds
        self.nodes = nodes
        self.out = out
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.enabled = True if enabled is None else enabled
        self._last_line = -1
        self._start = time.monotonic()
        self._width = 0

    def update(self, nodes: Sequence[NodeProgress], live: Sequence[NodeProgress]) -> None:
        """Draw the progress of ``nodes``: the round is the slowest ``live`` one's (all of ``nodes`` when none is live)."""
        if not self.enabled:
            return
        accs = [p.accuracy for p in nodes if p.accuracy is not None]
        dists = [p.distance for p in nodes if p.distance is not None]
        self.show(
            min(p.round for p in (live or nodes)),
            sum(accs) / len(accs) if accs else None,
            sum(dists) / len(dists) if dists else None,
        )

    def show(self, done: int, accuracy: float | None, distance: float | None) -> None:
        """Draw ``done`` rounds with the mean accuracy and consensus distance (``None``: not known yet).

        What a run that is not followed through records files (``gossip simulate``) reports directly.
        """
        if not self.enabled:
            return
        acc = f"{accuracy:.3f}" if accuracy is not None else "-"
        dist = f"{distance:.3g}" if distance is not None else "-"
        if self.tty:
            filled = int(30 * done / max(self.rounds, 1))
            elapsed = time.monotonic() - self._start
            line = (
                f"{self.nodes} nodes |{'#' * filled}{'.' * (30 - filled)}| round {done}/{self.rounds}"
                f"  {self.metric} {acc}  consensus {dist}  {elapsed:.0f} s"
            )
            self._width = max(self._width, len(line))
            print("\r" + line.ljust(self._width), end="", file=self.out, flush=True)
            return
        step = max(1, self.rounds // 10)
        if done // step > self._last_line and done > 0:
            self._last_line = done // step
            print(f"gossip: round {done}/{self.rounds}  mean {self.metric} {acc}  consensus distance {dist}", file=self.out, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=self.out, flush=True)
