"""The algorithms of issue 4 in the node loop, many nodes in one event loop on the in-memory transport.

Fast checks of the logic; tests/e2e/test_algorithms.py runs the same modes on real processes and sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import numpy as np
import pytest
import torch

from gossip.algorithms.merge import exact_average
from gossip.config import RunConfig, load_config
from gossip.data import load_dataset, partition
from gossip.ids import NodeId
from gossip.learn.flat import model_hash
from gossip.net.transport import InMemoryNetwork
from gossip.node.node import Node
from gossip.node.plan import NodePlan
from gossip.topology import parse_spec


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def config(**overrides: object) -> RunConfig:
    base = {
        "run.nodes": 4,
        "topology.spec": "ring",
        "training.rounds": 5,
        "model.name": "logreg",
        "metrics.enabled": False,
        "transport.round_timeout_s": 30.0,
        "transport.startup_timeout_s": 30.0,
        "merge.timeout_s": 30.0,
    }
    base.update(overrides)
    return load_config(env={}, overrides=base)


def make_nodes(cfg: RunConfig, dataset, net: InMemoryNetwork) -> list[Node]:
    topo = parse_spec(cfg.topology.spec, n=cfg.run.nodes, seed=cfg.run.seed)
    parts = partition(dataset.y_train, topo.n, cfg.data.partition, cfg.run.seed)
    return [Node(NodePlan(NodeId(i), cfg, topo, dataset, parts[i], None), net.transport(NodeId(i))) for i in range(topo.n)]


def run_rounds(nodes: list[Node], rounds: int, late: Mapping[int, float] | None = None) -> dict[int, list[dict]]:
    """Drive the nodes round by round (not ``run``), keeping every round's record; ``late`` delays
    some nodes' first round by that many seconds after their handshake."""
    records: dict[int, list[dict]] = {int(n.id): [] for n in nodes}

    async def one(n: Node) -> None:
        await n.transport.start()
        asyncio.get_running_loop().create_task(n.receiver.loop())
        await n.peers.handshake()
        await asyncio.sleep((late or {}).get(int(n.id), 0.0))
        for t in range(rounds):
            records[int(n.id)].append(await n.run_round(t))

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(one(n) for n in nodes)), 200)

    asyncio.run(main())
    return records


def run_all(nodes: list[Node]) -> list:
    async def main():
        return await asyncio.wait_for(asyncio.gather(*(n.run() for n in nodes)), 120)

    return asyncio.run(main())


def test_one_peer_exponential_averages_exactly_in_log2n_rounds(digits) -> None:
    """8 nodes, lr 0, independent init: after 3 one-peer rounds every node holds the network average."""
    cfg = config(
        **{
            "run.nodes": 8,
            "topology.spec": "one-peer-exponential",
            "training.rounds": 3,
            "training.lr": 0.0,
            "training.local_steps": 0,
            "model.init": "independent",
            "model.name": "vector",
            "training.eval_every": 100,
        }
    )
    nodes = make_nodes(cfg, digits, InMemoryNetwork())
    start = torch.stack([n.flat.vector.clone() for n in nodes])
    run_all(nodes)
    end = torch.stack([n.flat.vector for n in nodes])
    assert torch.allclose(end, start.mean(0).expand_as(end), atol=1e-6)
    assert (start - start.mean(0)).abs().max() > 1.0


@pytest.mark.parametrize("schedule", ["every", "none"])
def test_merge_gives_every_node_the_exact_average(digits, schedule: str) -> None:
    """Training then the global merge: bit-identical models everywhere, the exact average of the
    models the nodes ended training with (zero-communication included)."""
    cfg = config(
        **{
            "merge.enabled": True,
            "schedule.mode": schedule,
            "model.init": "independent",
            "training.lr": 0.0,
            "training.local_steps": 0,
            "training.rounds": 2,
        }
    )
    nodes = make_nodes(cfg, digits, InMemoryNetwork())
    start = {n.id: n.flat.vector.clone() for n in nodes}
    results = run_all(nodes)
    hashes = {r.model_hash for r in results}
    assert len(hashes) == 1
    assert all(r.merge_members == (0, 1, 2, 3) for r in results)
    if schedule == "none":  # no gossip: the pre-merge models are the initial ones
        assert hashes == {model_hash(exact_average(start))}


def test_merge_re_estimates_batchnorm_statistics_identically(digits) -> None:
    """A model with BatchNorm: the merged parameters are the average, the running statistics are the
    average of every node's re-estimate on its own data — and still identical on every node."""
    cfg = config(
        **{
            "merge.enabled": True,
            "model.name": "mlpbn",
            "data.partition": "dirichlet",
            "data.alpha": 0.3,
            "training.rounds": 3,
            "merge.calibration_batches": 5,
        }
    )
    nodes = make_nodes(cfg, digits, InMemoryNetwork())
    results = run_all(nodes)
    assert len({r.model_hash for r in results}) == 1
    outcome = nodes[0].merge_outcome
    assert outcome is not None and outcome.calibration_batches == 5 and outcome.views_agree


def test_random_pull_schedule_records_local_and_pull_rounds(digits) -> None:
    """Sparse random pull (p = 0.3): every round completes; a node waits only in rounds where it pulls, and
    every pull gets its model (the generous timeout only matters if one is lost)."""
    cfg = config(**{"schedule.mode": "random", "schedule.probability": 0.3, "training.rounds": 12, "topology.spec": "complete"})
    nodes = make_nodes(cfg, digits, InMemoryNetwork())
    records = run_rounds(nodes, cfg.training.rounds)
    for n in nodes:
        for r in records[n.id]:
            pulled = n.schedule.pull(n.id, r["round"])
            assert r["arrived"] == (1 if pulled is not None else 0) and r["missing"] == []
    assert {r["comm"] for rs in records.values() for r in rs} == {"pull"}


def test_async_gossip_merges_on_receipt(digits) -> None:
    """Async mode, lr 0: nodes push and merge without rounds; the models move towards each other."""
    cfg = config(
        **{
            "training.mode": "async",
            "training.rounds": 40,
            "training.lr": 0.0,
            "training.local_steps": 0,
            "model.init": "independent",
            "model.name": "vector",
            "training.period_s": 0.005,
            "training.eval_every": 1000,
        }
    )
    nodes = make_nodes(cfg, digits, InMemoryNetwork())
    start = torch.stack([n.flat.vector.clone() for n in nodes])
    results = run_all(nodes)
    end = torch.stack([n.flat.vector for n in nodes])
    assert all(r.status == "finished" for r in results)
    spread = lambda x: float((x - x.mean(0)).norm())  # noqa: E731
    assert spread(end) < 0.1 * spread(start)


def test_variance_rule_in_the_loop_restores_the_target(digits) -> None:
    """rule = variance with independent init: in each record the corrected layers hit their target."""
    cfg = config(**{"aggregation.rule": "variance", "model.init": "independent", "model.name": "mlp", "training.rounds": 3})
    nodes = make_nodes(cfg, digits, InMemoryNetwork())
    records = [r for rs in run_rounds(nodes, cfg.training.rounds).values() for r in rs]
    for r in records:
        lv = r["layer_var"]
        assert np.allclose(lv["after"], lv["target"], rtol=1e-4)
    first = [r["layer_var"] for r in records if r["round"] == 0]
    # round 0: beta = 0.5, two received → the average keeps 0.25 + 0.25/2 = 0.375 of the variance
    ratios = [b / t for lv in first for b, t in zip(lv["before"], lv["target"], strict=True)]
    assert 0.3 < float(np.mean(ratios)) < 0.45


def test_random_pull_keeps_models_from_neighbours_far_ahead(digits) -> None:
    """A pulled node never waits for its puller, so it can be many rounds ahead; its model for the
    puller's future round must be kept, not refused as too early (which would cost a full timeout).
    Node 0 starts late (the others run ahead while it is still in its handshake) and is slow: every
    pull still gets its model, nothing is refused."""
    # the timeout only matters if a model is lost: then the wait shows up as a miss
    cfg = config(
        **{
            "schedule.mode": "random",
            "schedule.probability": 0.2,
            "training.rounds": 30,
            "topology.spec": "complete",
            "transport.round_timeout_s": 20.0,
        }
    )

    class Slow(Node):
        async def run_round(self, t: int) -> dict:
            await asyncio.sleep(0.03)
            return await super().run_round(t)

    net = InMemoryNetwork()
    topo = parse_spec(cfg.topology.spec, n=4, seed=0)
    parts = partition(digits.y_train, 4, cfg.data.partition, 0)
    nodes = [(Slow if i == 0 else Node)(NodePlan(NodeId(i), cfg, topo, digits, parts[i], None), net.transport(NodeId(i))) for i in range(4)]
    records = run_rounds(nodes, cfg.training.rounds, late={0: 1.0})
    assert all(r["missing"] == [] for rs in records.values() for r in rs)
    assert all(not n.rejected for n in nodes), [n.rejected for n in nodes]
