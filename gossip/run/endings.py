"""How a node's or a run's early end is told to the user: exit statuses in words, from the node's files and log."""

from __future__ import annotations

import signal
from pathlib import Path

from gossip.errors import ExitCode, RunDirError
from gossip.results.rundir import NodeFiles
from gossip.results.summary import NodeSummary, RunSummary

__all__ = ["divergence_text", "ending_text", "exit_text", "log_tail", "server_death_text"]

_EXIT_MEANING: dict[int | None, str] = {
    ExitCode.FAILED: "a runtime failure",
    ExitCode.USAGE: "a usage error",
    ExitCode.DIVERGED: "diverged",
}
STOPPED_BY_SIGNAL = frozenset({ExitCode.INTERRUPTED, ExitCode.TERMINATED, -signal.SIGINT, -signal.SIGTERM})


def exit_text(code: int | None) -> str:
    """A node's exit status in words, after ``died (...)``."""
    if code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
        return f"stopped by {signal.Signals(code - 128).name}"
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    meaning = _EXIT_MEANING.get(code)
    return f"exit code {code}" + (f": {meaning}" if meaning else "")


def ending_text(path: Path, node: int, code: int, rounds: int, round_seen: int, *, tail: bool = True) -> str:
    """How a node that ended early ended, after ``node i``: a stop by signal with its round, else its exit and the tail of its log.

    ``round_seen``: the round its records reached, for a node that left no summary.
    """
    if code in STOPPED_BY_SIGNAL:
        name = signal.Signals(code - 128 if code > 0 else -code).name
        final = _node_final(path, node)
        reached = final.rounds_reached if final else round_seen
        return f"was stopped by {name} at round {reached} of {rounds}, not by the launcher"
    if code < 0:
        ended = f"died ({exit_text(code)})"
    else:
        meaning = _EXIT_MEANING.get(code)
        ended = f"exited with code {code}" + (f" ({meaning})" if meaning else "")
    return ended + (log_tail(path, node) if tail else "")


def divergence_text(path: Path, node: int) -> str:
    """``node i diverged at round t (loss x)``, from the node's summary."""
    final = _node_final(path, node)
    diverged = final.process.diverged if final and final.process else None
    if diverged is None:
        return f"node {node} diverged: its model is no longer finite; try a lower learning rate (--lr)"
    said = f"loss {diverged.loss:.4g}" if diverged.loss is not None else "loss not finite"
    return f"node {node} diverged at round {diverged.round} ({said}): its model is no longer finite; try a lower learning rate (--lr)"


def server_death_text(how: str, summary: RunSummary, path: Path) -> str:
    """What became of every node after the fork server died: its exit statuses died with it, the nodes' summaries did not."""
    fates = []
    for n in summary.per_node:
        if n.status == "stopped":
            fates.append(f"node {n.node} stopped at round {n.rounds_completed + n.rounds_skipped}")
        elif n.status == "diverged":
            fates.append(f"node {n.node} diverged at round {n.diverged.round if n.diverged else '?'}")
        elif n.status == "dead":
            fates.append(f"node {n.node} was lost (it left no summary)")
        else:
            fates.append(f"node {n.node} {n.status}")
    died = f"was {how}" if how.startswith("killed") else f"ended ({how})"
    return (
        f"the fork server {died} mid-run, and its nodes got SIGTERM with it: {', '.join(fates)}; "
        f"continue from their checkpoints with: gossip launch --resume {path}"
    )


def log_tail(path: Path, node: int, lines: int = 8) -> str:
    """``; last lines of <log>:`` and the node's last log lines, indented; empty when it wrote none."""
    try:
        text = NodeFiles(path, node).log.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    tail = "\n".join("    " + line for line in text[-lines:])
    return f"; last lines of {NodeFiles(path, node).log}:\n{tail}" if tail else ""


def _node_final(path: Path, node: int) -> NodeSummary | None:
    """A node's own summary (``nodes/node-<i>.json``), or None if it wrote none."""
    try:
        return NodeSummary.read(NodeFiles(path, node).summary)
    except (OSError, RunDirError):
        return None
