"""Crash and rejoin on the in-memory transport: the logic of gossip node --resume, fast (tests/e2e has the real thing)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gossip.config import load_config
from gossip.ids import NodeId
from gossip.node import checkpoint
from gossip.node.node import Node
from tests.crash_inmemory import crash_and_rejoin, triangle_plans

ROUNDS = 40

pytestmark = pytest.mark.slow  # ~10 s: three nodes train in one event loop


def test_a_crashed_node_resumes_from_its_checkpoint_and_skips_to_its_neighbours_round() -> None:
    """Three nodes on a triangle; node 2 vanishes without a bye after round 3 (its task is cancelled, its messages
    dropped). Nodes 0 and 1 go on after each round timeout and report it down. A new node 2 built from the round-3
    checkpoint learns their round from the welcomes, skips ahead (no replay), and every node finishes; when it
    is inside its inbox window of them it does not skip, nor when only one neighbour is far ahead."""
    cfg = load_config(
        env={},
        overrides={
            "run.nodes": 3,
            "topology.spec": "complete",
            "training.rounds": ROUNDS,
            "data.dataset": "digits",
            "model.name": "logreg",
            "transport.round_timeout_s": 0.05,
            "transport.startup_timeout_s": 5.0,
        },
    )
    nodes, reborn, net = crash_and_rejoin(triangle_plans(cfg), crash_after=3, rejoin_at=12)
    assert reborn.resumed is not None and reborn.resumed["checkpoint_round"] == 3
    assert reborn.resumed["joined_round"] >= 12  # skipped to the neighbours' round: nothing replayed
    assert reborn.round == ROUNDS and nodes[0].round == ROUNDS and nodes[1].round == ROUNDS
    assert 2 in nodes[0].liveness.ever_down and 2 in nodes[1].liveness.ever_down
    assert np.isfinite(reborn.flat.vector.numpy()).all()

    # inside the inbox window (2 rounds ahead): catch up in place (a whole-run resume keeps its records contiguous);
    # every live neighbour beyond it: skip to the lowest of their rounds (one neighbour's claim alone does not move it)
    for welcomes, joined in (({0: 8, 1: 8}, 7), ({0: 9, 1: 9}, 7), ({0: 10, 1: 10}, 10), ({0: 30, 1: 8}, 7), ({0: 30, 1: 12}, 12)):
        lagging = Node(dataclasses.replace(reborn.plan, resume=saved_at(reborn, 7)), net.transport(NodeId(2)))
        for j, r in welcomes.items():
            lagging.liveness.heard(j, r, 7)
        assert lagging.peers.rejoin_round(7) == joined, welcomes

    # the run's agreed round (gossip launch --resume) wins over what the neighbours said
    agreed = Node(dataclasses.replace(reborn.plan, resume=saved_at(reborn, 7), join_round=20), net.transport(NodeId(2)))
    agreed.liveness.heard(0, 8, 7)
    assert agreed.peers.rejoin_round(7) == 20 and agreed.resumed == {"checkpoint_round": 7, "joined_round": 20}


def saved_at(node: Node, round_: int) -> checkpoint.Checkpoint:
    return checkpoint.Checkpoint(node.flat.vector.numpy().copy(), round_, node.flat.layout.fingerprint)
