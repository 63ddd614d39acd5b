"""Find a run's node processes by their command line, whoever started them; see what they leave in /dev/shm.

``gossip launch`` forks its nodes from a fork server (their title is the ``gossip node`` command they
stand for, one string) or, with ``--spawn``, starts them as their own processes (the same words, one
argument each): both read the same once NUL separators are spaces.
"""

from __future__ import annotations

import os
from pathlib import Path


def command_of(pid: int | str) -> list[str]:
    """The words of a process's command line; empty if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.replace(b"\0", b" ").decode(errors="replace").split()


def node_pids(run_dir: Path) -> dict[int, int]:
    """Node id → pid of every live ``gossip node`` process of ``run_dir``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        words = command_of(entry.name)
        if "node" in words and "--id" in words[:-1] and "--run-dir" in words[:-1] and words[words.index("--run-dir") + 1] == str(run_dir):
            found[int(words[words.index("--id") + 1])] = int(entry.name)
    return found


def dev_shm_names() -> set[str]:
    """What /dev/shm holds, less POSIX semaphores (``sem.*``: other processes' multiprocessing locks come and go)."""
    return {name for name in os.listdir("/dev/shm") if not name.startswith("sem.")}
