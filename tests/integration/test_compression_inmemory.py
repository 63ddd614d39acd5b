"""Compressed gossip through the node loop on the in-memory transport: int8 models and CHOCO-gossip with top-k.

The same behaviours over real processes and sockets: tests/e2e/test_compression.py.
"""

from __future__ import annotations

import pytest
import torch

from gossip.net.transport import InMemoryNetwork
from gossip.node.node import Node
from tests.integration.test_node_inmemory import config, plans, run_all

TOPK = {"compression.method": "topk", "compression.topk_fraction": 0.05}


@pytest.fixture(scope="module")
def digits():
    from gossip.data import load_dataset

    return load_dataset("digits", seed=0)


def consensus_run(digits, drop: float = 0.0, **overrides: object) -> tuple[list[Node], torch.Tensor]:
    """Five nodes on a ring, independent inits, no training: only gossip moves the models."""
    cfg = config(
        **{
            "run.nodes": 5,
            "training.rounds": 150,
            "training.lr": 0.0,
            "training.local_steps": 0,
            "model.init": "independent",
            "training.eval_every": 1000,
            "transport.round_timeout_s": 0.2,
            **TOPK,
            **overrides,
        }
    )
    net = InMemoryNetwork(drop=drop, seed=1)
    nodes = [Node(p, net.transport(p.node_id)) for p in plans(cfg, digits)]
    start = torch.stack([n.flat.vector.clone() for n in nodes])
    run_all(nodes)
    return nodes, start


def spread(x: torch.Tensor) -> float:
    return float((x - x.mean(0)).abs().max())


def test_choco_top_k_reaches_consensus_on_the_mean(digits) -> None:
    """Sending 5% of the entries per round, CHOCO-gossip still drives every node to the average of the
    initial models: the average is kept (W is doubly stochastic) and the spread shrinks 100-fold."""
    nodes, start = consensus_run(digits)
    end = torch.stack([n.flat.vector for n in nodes])
    assert torch.allclose(end.mean(0), start.mean(0), atol=1e-5)
    assert spread(end) < 1e-2 * spread(start)


def test_choco_with_lost_messages_keeps_copies_exact_and_still_converges(digits) -> None:
    """With 10% of messages lost on the wire (the sender cannot tell), a receiver drops the copy it
    missed a delta for and picks it up again at the next dense resync: every copy still held equals
    its owner's public copy bit for bit, and the nodes still get 10 times closer.

    141 rounds: the last one (round 140) is a dense resync, so the copies checked at the end are there
    unless that very message was lost too. With 150, the last nine rounds were deltas, and a copy
    survives nine rounds of 10 % loss (and of late arrivals past the round timeout) only about a third
    of the time: in about one run in six no node held any copy at the end, and ``held`` was empty.
    """
    nodes, start = consensus_run(digits, drop=0.1, **{"compression.resync_every": 10, "training.rounds": 141})
    by_id = {n.id: n for n in nodes}
    held = [(n, j) for n in nodes if n.choco is not None for j in n.choco.copies]
    assert held  # not everybody was left out of the mix for good
    for n, j in held:
        assert n.choco is not None and by_id[j].choco is not None
        assert torch.equal(n.choco.copies[j], by_id[j].choco.public)
    end = torch.stack([n.flat.vector for n in nodes])
    assert spread(end) < 0.1 * spread(start)


@pytest.mark.parametrize("overrides", [TOPK, {"transport.wire_dtype": "int8"}], ids=["choco-topk", "int8"])
def test_compressed_nodes_train_and_learn(digits, overrides: dict) -> None:
    """Four nodes on a ring learn digits well above chance in a few rounds with either compression."""
    cfg = config(**{"training.rounds": 30, "training.lr": 0.1, "training.local_steps": 2, **overrides})
    net = InMemoryNetwork()
    results = run_all([Node(p, net.transport(p.node_id)) for p in plans(cfg, digits)])
    assert all(r.status == "finished" and r.rounds_completed == 30 for r in results)
    assert min(r.accuracy for r in results) > 0.6


def test_choco_sends_a_fraction_of_the_bytes_of_float32(digits) -> None:
    """30 rounds at 5% (8 bytes an entry) and one dense first round cost well under a fifth of float32 models
    (an MLP of 17k parameters: the header is negligible next to the payload)."""
    cfg = config(**{"training.rounds": 30, "model.name": "mlp", **TOPK})
    net = InMemoryNetwork()
    nodes = [Node(p, net.transport(p.node_id)) for p in plans(cfg, digits)]
    run_all(nodes)
    float32_bytes = 30 * 2 * 4 * nodes[0].flat.layout.numel  # rounds × neighbours × a float32 model
    assert all(n.bytes_sent < 0.2 * float32_bytes for n in nodes)


@pytest.mark.slow  # ~10 s: a crash, nine round timeouts, a rejoin
def test_choco_node_rejoining_after_a_crash_is_mixed_in_again() -> None:
    """Node 2 of a triangle crashes after round 3 and resumes from its checkpoint without any copies; the others
    leave it out of their mix meanwhile. Back, it sends its public copy in full, its hello makes the others send
    theirs, and (since its first messages may come too late for neighbours a round ahead) every 5th round is a
    full one anyway. At the end everyone mixes everyone again, on exact copies."""
    from gossip.config import load_config
    from gossip.ids import NodeId
    from tests.crash_inmemory import crash_and_rejoin, triangle_plans

    cfg = load_config(
        env={},
        overrides={
            "run.nodes": 3,
            "topology.spec": "complete",
            "training.rounds": 45,  # room for full rounds after a late rejoin: the hello can take seconds
            "data.dataset": "digits",
            "model.name": "logreg",
            "transport.round_timeout_s": 0.3,
            "transport.startup_timeout_s": 5.0,
            **TOPK,
            "compression.resync_every": 5,
        },
    )

    def left_out(nodes: list[Node]) -> None:
        assert nodes[0].choco is not None and NodeId(2) not in nodes[0].choco.in_step  # left out while it is gone

    nodes, reborn, _net = crash_and_rejoin(triangle_plans(cfg), crash_after=3, rejoin_at=8, while_down=left_out)
    everyone = {0: nodes[0], 1: nodes[1], 2: reborn}
    for i, node in everyone.items():
        assert node.choco is not None and node.choco.in_step == {j for j in everyone if j != i}
        for j, copy in node.choco.copies.items():
            other = everyone[j].choco
            assert other is not None and torch.equal(copy, other.public)
