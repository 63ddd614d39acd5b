"""``gossip node --id slurm``: a node's id and every node's address, from the environment ``srun`` gives its tasks.

A batch job names its hosts once (``SLURM_STEP_NODELIST``, a host list such as ``cn[01-04,07]``) and how many
tasks each runs (``SLURM_STEP_TASKS_PER_NODE``, such as ``2(x3),1``). The job step starts its tasks with
``srun --distribution=block``, so tasks 0..k-1 run on the first host, the next ones on the second, and so on:
every task can then work out, without asking anyone, where every other task listens. The port rule is
``base_port + local index`` (the task's rank on its host, ``SLURM_LOCALID``), for the ZeroMQ socket
(``[transport] base_port``) and for ``/metrics`` (``[metrics] base_port``): several nodes share a host,
and the ports a host needs are as many as its tasks, whatever the job's size.

Pure functions of an environment mapping, so the layout is testable without SLURM; the daemon checks the
task's own placement against it (a cyclic distribution would give every node wrong addresses).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from gossip.config import MAX_NODES, RunConfig
from gossip.errors import UsageError

__all__ = ["SlurmLayout", "expand_hostlist", "expand_tasks_per_node", "slurm_config", "slurm_layout", "slurm_proc_id"]

_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-_]*")
_RANGE = re.compile(r"([0-9]{1,9})(?:-([0-9]{1,9}))?")
_COUNT = re.compile(r"([0-9]{1,6})(?:\(x([0-9]{1,6})\))?")


def _split_top(text: str) -> list[str]:
    """``text`` split at the commas outside brackets; refuses unbalanced brackets."""
    items, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "[":
            depth += 1
            if depth > 1:
                raise ValueError("nested brackets")
        elif c == "]":
            depth -= 1
            if depth < 0:
                raise ValueError("']' without '['")
        elif c == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError("'[' without ']'")
    items.append(text[start:])
    return items


def _expand_brackets(body: str) -> list[str]:
    """``01-03,7`` → ``01 02 03 7``: each range keeps its first number's zero padding, as SLURM does."""
    out: list[str] = []
    for part in body.split(","):
        m = _RANGE.fullmatch(part)
        if not m:
            raise ValueError(f"bad range {part!r}")
        lo, hi = m.group(1), m.group(2) or m.group(1)
        if int(hi) < int(lo):
            raise ValueError(f"range {part!r} runs backwards")
        if int(hi) - int(lo) >= MAX_NODES:
            raise ValueError(f"range {part!r} names more than {MAX_NODES} hosts")
        out += [str(k).zfill(len(lo)) for k in range(int(lo), int(hi) + 1)]
    return out


def expand_hostlist(text: str) -> list[str]:
    """SLURM's compressed host list (``cn[01-03],gpu[1,4]``, ``rack[1-2]-n[1-2]``) as host names, in order.

    Raises :class:`UsageError` naming the list when it cannot be read.
    """
    hosts: list[str] = []
    try:
        if not text.strip():
            raise ValueError("empty")
        for item in _split_top(text.strip()):
            pieces = re.split(r"(\[[^\]]*\])", item)
            choices = [_expand_brackets(p[1:-1]) if p.startswith("[") else [p] for p in pieces if p]
            for combo in itertools.product(*choices):
                name = "".join(combo)
                if not _HOST.fullmatch(name):
                    raise ValueError(f"bad host name {name[:60]!r}")
                hosts.append(name)
                if len(hosts) > MAX_NODES:
                    raise ValueError(f"more than {MAX_NODES} hosts")
    except ValueError as exc:
        raise UsageError(f"--id slurm: cannot read the job's node list {text[:80]!r}: {exc}") from None
    return hosts


def expand_tasks_per_node(text: str) -> list[int]:
    """SLURM's tasks per node (``2(x3),1``) as one count per host."""
    counts: list[int] = []
    for part in text.strip().split(","):
        m = _COUNT.fullmatch(part.strip())
        if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
            raise UsageError(f"--id slurm: cannot read the job's tasks per node {text[:80]!r}")
        counts += [int(m.group(1))] * int(m.group(2) or 1)
        if len(counts) > MAX_NODES:
            raise UsageError(f"--id slurm: the job's tasks per node {text[:80]!r} names more than {MAX_NODES} hosts")
    return counts


def _env(env: Mapping[str, str], *names: str) -> str:
    """The first of ``names`` that is set: a job step's variable before the allocation's."""
    for name in names:
        if name in env:
            return env[name]
    raise UsageError(f"--id slurm: ${names[0]} is not set; start the nodes with srun inside a SLURM allocation (gossip deploy slurm)")


def _number(env: Mapping[str, str], name: str) -> int:
    raw = _env(env, name)
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6):
        raise UsageError(f"--id slurm: ${name}={raw[:40]!r} is not a number")
    return int(raw)


def slurm_proc_id(env: Mapping[str, str]) -> int:
    """This task's rank in the job step, which is its node id."""
    return _number(env, "SLURM_PROCID")


@dataclass(frozen=True)
class SlurmLayout:
    """Where every task of the job step runs: ``hosts[i]`` and ``local[i]`` (its rank on that host) for task ``i``."""

    hosts: tuple[str, ...]
    local: tuple[int, ...]

    @property
    def ntasks(self) -> int:
        return len(self.hosts)


def slurm_layout(env: Mapping[str, str]) -> SlurmLayout:
    """Every task's host and local rank under ``--distribution=block``, checked against this task's own placement."""
    hosts = expand_hostlist(_env(env, "SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST"))
    counts = expand_tasks_per_node(_env(env, "SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"))
    if len(counts) != len(hosts):
        raise UsageError(f"--id slurm: the job names {len(hosts)} host(s) but tasks per node for {len(counts)}")
    ntasks = _number(env, "SLURM_NTASKS") if "SLURM_NTASKS" in env else sum(counts)
    if ntasks != sum(counts):
        raise UsageError(f"--id slurm: $SLURM_NTASKS={ntasks} but the tasks per node add up to {sum(counts)}")
    layout = SlurmLayout(
        tuple(h for h, k in zip(hosts, counts, strict=True) for _ in range(k)),
        tuple(j for k in counts for j in range(k)),
    )
    me = slurm_proc_id(env)
    if me >= layout.ntasks:
        raise UsageError(f"--id slurm: $SLURM_PROCID={me} but the job step has {layout.ntasks} tasks")
    node_name = env.get("SLURMD_NODENAME")
    local = env.get("SLURM_LOCALID")
    if (node_name is not None and node_name != layout.hosts[me]) or (local is not None and local != str(layout.local[me])):
        raise UsageError(
            f"--id slurm: task {me} runs on {node_name} as local task {local}, not where a block distribution puts it "
            f"({layout.hosts[me]}, local task {layout.local[me]}); start the nodes with srun --distribution=block"
        )
    return layout


def slurm_config(cfg: RunConfig, layout: SlurmLayout, node_id: int) -> RunConfig:
    """``cfg`` with every node's address and this node's sockets laid out by the port rule.

    Node ``i`` is reached at ``tcp://hosts[i]:transport.base_port + local[i]`` and binds that port on every
    interface; its ``/metrics`` is on ``metrics.base_port + local[i]``.
    """
    for what, base in (("[transport] base_port", cfg.transport.base_port), ("[metrics] base_port", cfg.metrics.base_port)):
        if base + max(layout.local) > 65535:
            raise UsageError(f"--id slurm: {what} {base} + {max(layout.local)} local tasks is past port 65535")
    addresses = tuple(f"tcp://{h}:{cfg.transport.base_port + k}" for h, k in zip(layout.hosts, layout.local, strict=True))
    own = layout.local[node_id]
    return dataclasses.replace(
        cfg,
        transport=dataclasses.replace(cfg.transport, addresses=addresses, listen=f"tcp://0.0.0.0:{cfg.transport.base_port + own}"),
        metrics=dataclasses.replace(cfg.metrics, host="0.0.0.0", port=cfg.metrics.base_port + own, ports=())
        if cfg.metrics.base_port
        else cfg.metrics,
    )
