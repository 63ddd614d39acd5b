"""The floor of a D-SGD round on this machine: the same ring, model and local steps with nothing but raw pyzmq.

Used by bench/overhead.py as the "what the machine allows" arm. N processes (spawned, one torch
thread each, like gossip's nodes), each holding its MLP's parameters in one contiguous vector
(``gossip.learn.flat.flatten_``, so a model is one frame, as in gossip). A round:

1. ``steps`` SGD steps of batch 32 on a fixed synthetic batch (no data loader: less work than a node does);
2. the live vector to both ring neighbours, ``send(copy=False, track=True)`` on a PUSH socket per
   neighbour — one copy less than a snapshot, the same zero-copy path a gossip node takes;
3. a blocking ``recv(copy=False)`` on one PULL socket per neighbour (lock-step, nothing to validate,
   no event loop, no header);
4. wait until ZeroMQ let go of the vector, then ``x ← x/3 + a/3 + b/3`` in place (three passes).

No validation, no bookkeeping, no records, no metrics: what a round costs when the exchange is the
bare minimum that still moves the models through ZeroMQ and mixes them. ``exchange=False`` skips
steps 2–4, the same processes' local-only time. ``checks=True`` adds what a gossip node cannot skip
and nothing else: every received payload through ``wire.decode``'s own NaN/inf check, the node's mix
(``mix_in_place``, one lerp per neighbour, block by block) and the consensus distance every round reports
(the mix's step norm, which it returns) — the floor for a node that validates and reports,
so gossip's gap to it is its machinery alone (event loop, headers, routing, records, metrics). Wall
time and process CPU (every thread) per steady round are the median over nodes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

BATCH = 32
CLASSES = 10


@dataclass(frozen=True)
class RawFigures:
    round_ms: float  # wall per steady round, median over nodes
    cpu_ms: float  # process CPU (all threads) per steady round, median over nodes


def _node(
    i: int,
    n: int,
    features: int,
    hidden: tuple[int, ...],
    steps: int,
    rounds: int,
    exchange: bool,
    checks: bool,
    up: Any,
    down: Any,
    results: Any,
) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    import zmq

    from gossip.algorithms.dsgd import BLOCK, mix_in_place
    from gossip.learn.flat import flatten_
    from gossip.learn.models import build_model
    from gossip.net.payload import finite_float32

    torch.set_num_threads(1)
    torch.manual_seed(i)
    model = build_model("mlp", (features,), CLASSES, hidden=hidden)
    vector = flatten_(model).vector
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.05)
    x, y = torch.randn(BATCH, features), torch.randint(0, CLASSES, (BATCH,))
    loss_fn = torch.nn.CrossEntropyLoss()

    ctx = zmq.Context()
    left, right = (i - 1) % n, (i + 1) % n
    pulls, pushes = {}, {}
    if exchange:
        for j in (left, right):
            pulls[j] = ctx.socket(zmq.PULL)
        up.put((i, {j: s.bind_to_random_port("tcp://127.0.0.1") for j, s in pulls.items()}))
        table: dict[int, dict[int, int]] = {}
        while len(table) < n:  # every node's ports, relayed by the parent
            k, p = down.get(timeout=120)
            table[k] = p
        for j in (left, right):
            pushes[j] = ctx.socket(zmq.PUSH)
            pushes[j].connect(f"tcp://127.0.0.1:{table[j][i]}")
        time.sleep(0.5)
    buf = vector.numpy()
    scratch = torch.empty(BLOCK) if checks else None  # the block of old values the node's mix keeps
    stamps: list[tuple[float, float]] = []
    for _ in range(rounds):
        for _s in range(steps):
            opt.zero_grad(set_to_none=False)
            loss_fn(model(x), y).backward()
            opt.step()
        if exchange:
            trackers = [pushes[j].send(buf, copy=False, track=True) for j in (left, right)]
            if checks:
                got = [finite_float32(memoryview(pulls[j].recv(copy=False))) for j in (left, right)]
            else:
                got = [torch.frombuffer(pulls[j].recv(copy=False).buffer, dtype=torch.float32) for j in (left, right)]
            for t in trackers:
                t.wait()
            if scratch is not None:  # the node's mix, which returns the consensus distance a node reports
                mix_in_place(vector, {left: got[0], right: got[1]}, {left: 1 / 3, right: 1 / 3}, scratch)
            else:
                vector.mul_(1 / 3).add_(got[0], alpha=1 / 3).add_(got[1], alpha=1 / 3)
        stamps.append((time.perf_counter(), time.process_time()))
    results.put(stamps)
    for s in (*pulls.values(), *pushes.values()):
        s.close(linger=2000)
    ctx.term()


def run_raw(
    nodes: int,
    rounds: int,
    features: int,
    hidden: tuple[int, ...],
    steps: int,
    *,
    exchange: bool,
    checks: bool = False,
    warmup: float = 0.2,
) -> RawFigures:
    """Run the floor once; steady state as in perfkit.run_measured (skip the first 20 %, at least 5 rounds)."""
    spawn = mp.get_context("spawn")
    to_parent, results = spawn.Queue(), spawn.Queue()
    to_children = [spawn.Queue() for _ in range(nodes)]
    procs = []
    for i in range(nodes):
        procs.append(
            spawn.Process(
                target=_node, args=(i, nodes, features, hidden, steps, rounds, exchange, checks, to_parent, to_children[i], results)
            )
        )
    for p in procs:
        p.start()
    if exchange:
        announced = [to_parent.get(timeout=120) for _ in range(nodes)]
        for q in to_children:
            for a in announced:
                q.put(a)
    stamps = [results.get(timeout=1200) for _ in range(nodes)]
    for p in procs:
        p.join(timeout=60)
    first, last = max(5, int(rounds * warmup)), rounds - 1
    wall = [(s[last][0] - s[first][0]) / (last - first) for s in stamps]
    cpu = [(s[last][1] - s[first][1]) / (last - first) for s in stamps]
    return RawFigures(statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3)
