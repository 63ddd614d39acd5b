"""Byzantine nodes in the real node loop, on the in-memory transport: what honest nodes actually receive.

The same behaviours run over real processes and sockets in tests/e2e/test_byzantine.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
import torch

from gossip.algorithms.attacks import alie, neighbourhood_pull
from gossip.config import RunConfig, load_config
from gossip.data import load_dataset, partition
from gossip.errors import ConfigError
from gossip.ids import NodeId
from gossip.net.transport import InMemoryNetwork
from gossip.node.byzantine import ByzantineNode, build_node
from gossip.node.node import Node
from gossip.node.plan import NodePlan
from gossip.topology import parse_spec


class RecordingNode(Node):
    """An honest node that remembers, per round, its vector before and after mixing and what it mixed."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.before: list[torch.Tensor] = []
        self.after: list[torch.Tensor] = []
        self.mixed: list[dict[NodeId, torch.Tensor]] = []

    def mix(self, received: Mapping[NodeId, torch.Tensor]) -> float:
        self.before.append(self.flat.vector.clone())
        self.mixed.append({j: v.clone() for j, v in received.items()})
        distance = super().mix(received)
        self.after.append(self.flat.vector.clone())
        return distance


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def config(**overrides: object) -> RunConfig:
    base = {
        "run.nodes": 5,
        "topology.spec": "complete",
        "training.rounds": 3,
        "model.name": "logreg",
        "metrics.enabled": False,
        "training.lr": 0.1,
        "transport.round_timeout_s": 10.0,
        "transport.startup_timeout_s": 5.0,
    }
    base.update(overrides)
    return load_config(env={}, overrides=base)


def build(cfg: RunConfig, dataset) -> list[Node]:
    topo = parse_spec(cfg.topology.spec, n=cfg.run.nodes, seed=cfg.run.seed)
    parts = partition(dataset.y_train, topo.n, cfg.data.partition, cfg.run.seed)
    net = InMemoryNetwork()
    nodes: list[Node] = []
    for i in range(topo.n):
        plan = NodePlan(NodeId(i), cfg, topo, dataset, parts[i], None)
        attacker = cfg.byzantine.is_byzantine(i)
        nodes.append(build_node(plan, net.transport(plan.node_id)) if attacker else RecordingNode(plan, net.transport(plan.node_id)))
    return nodes


def run_all(nodes: list[Node]) -> list:
    async def main():
        return await asyncio.wait_for(asyncio.gather(*(n.run() for n in nodes)), 120)

    return asyncio.run(main())


def test_alie_payload_is_built_from_the_honest_models_of_the_same_round(digits) -> None:
    """On a complete graph the attacker sees every honest round-t model before it sends: what each honest
    node mixes from node 0 is exactly μ − zσ of the honest models of that round. Nothing is rejected:
    the attacker speaks the ordinary wire protocol."""
    cfg = config(**{"byzantine.nodes": "[0]", "byzantine.attack": "alie", "byzantine.alie_z": 1.0, "aggregation.rule": "median"})
    nodes = build(cfg, digits)
    assert isinstance(nodes[0], ByzantineNode)
    run_all(nodes)
    honest = [n for n in nodes if isinstance(n, RecordingNode)]
    for t in range(cfg.training.rounds):
        sent = torch.stack([n.before[t] for n in honest])  # a node's vector after training = what it sent
        expected = alie(sent, 1.0)
        for n in honest:
            assert torch.allclose(n.mixed[t][NodeId(0)], expected, atol=1e-6)
            assert set(n.mixed[t]) == {0, 1, 2, 3, 4} - {n.id}
    assert all(not n.rejected for n in nodes)


def test_dissensus_pushes_each_dsgd_target_away_from_its_neighbours(digits) -> None:
    """In the real loop with plain D-SGD mixing, every honest node's step is x_i + (1 − ε) · pull:
    the attacker's per-target payloads turn a consensus step into a dissensus step."""
    cfg = config(**{"byzantine.nodes": "[0]", "byzantine.attack": "dissensus", "training.local_steps": 0, "model.init": "independent"})
    nodes = build(cfg, digits)
    run_all(nodes)
    honest = [n for n in nodes if isinstance(n, RecordingNode)]
    for t in range(cfg.training.rounds):
        for n in honest:
            others = [m for m in honest if m is not n]
            pull = neighbourhood_pull(n.before[t], [m.before[t] for m in others], [n.weights[m.id] for m in others])
            assert torch.allclose(n.after[t], n.before[t] + (1 - 1.5) * pull, atol=1e-5)
            assert n.mixed[t][NodeId(0)] is not None
    spread = [float(torch.stack([m.after[t] for m in honest]).std(0).norm()) for t in range(cfg.training.rounds)]
    assert spread[-1] > spread[0]  # with no training the honest models drift apart instead of together


def test_label_flipping_attacker_trains_on_relabelled_data(digits) -> None:
    """The data poisoning happens on the attacker's own shard only: its labels are K − 1 − y, others untouched."""
    cfg = config(**{"byzantine.nodes": "[2]", "byzantine.attack": "label-flip"})
    nodes = build(cfg, digits)
    parts = partition(digits.y_train, 5, cfg.data.partition, cfg.run.seed)
    assert torch.equal(nodes[2].trainer.y, torch.from_numpy(9 - digits.y_train[parts[2]]))
    assert torch.equal(nodes[1].trainer.y, torch.from_numpy(digits.y_train[parts[1]]))


def test_silent_attacker_is_mixed_out_after_each_timeout(digits) -> None:
    """A silent node handshakes, then never sends a model: its neighbours wait out the timeout each
    round, record it missing, and finish every round."""
    cfg = config(
        **{
            "run.nodes": 4,
            "topology.spec": "ring",
            "byzantine.nodes": "[1]",
            "byzantine.attack": "silent",
            "transport.round_timeout_s": 0.3,
        }
    )
    nodes = build(cfg, digits)
    results = run_all(nodes)
    assert all(r.status == "finished" and r.rounds_completed == 3 for r in results)
    for i in (0, 2):
        assert all(NodeId(1) not in mixed for mixed in nodes[i].mixed)


def test_non_finite_payloads_are_stopped_by_the_wire_and_never_reach_the_rule(digits) -> None:
    """A sign flip scaled past float32's range sends ±inf: every honest neighbour rejects it as
    non_finite (counted), mixes without it, and its model stays finite."""
    cfg = config(
        **{
            "byzantine.nodes": "[0]",
            "byzantine.attack": "sign-flip",
            "byzantine.scale": 1e39,
            "aggregation.rule": "median",
            "transport.round_timeout_s": 0.5,
        }
    )
    nodes = build(cfg, digits)
    run_all(nodes)
    for n in nodes[1:]:
        assert n.rejected.get("non_finite", 0) == cfg.training.rounds
        assert all(NodeId(0) not in mixed for mixed in n.mixed)
        assert bool(torch.isfinite(n.flat.vector).all())


def test_discarded_inputs_reach_the_nodes_metrics(digits) -> None:
    """Multi-Krum (m = N − f = 4 of 5) on a complete graph drops exactly the sign-flipped model each
    round, and every honest node counts it in gossip_aggregation_inputs_discarded_total."""
    cfg = config(**{"byzantine.nodes": "[0]", "byzantine.attack": "sign-flip", "aggregation.rule": "multi-krum"})
    nodes = build(cfg, digits)
    run_all(nodes)
    for n in nodes[1:]:
        labels = {"node": str(n.id), "aggregator": "multi-krum", "action": "discarded"}
        assert n.metrics.registry.get_sample_value("gossip_aggregation_inputs_discarded_total", labels) == cfg.training.rounds
        assert n.metrics.registry.get_sample_value("gossip_aggregation_inputs_discarded_total", {**labels, "action": "clipped"}) == 0


def test_build_node_refuses_an_indefensible_run(digits) -> None:
    """The process-level check: a node of a run whose rule cannot defend some node refuses before any I/O."""
    cfg = config(
        **{"run.nodes": 8, "topology.spec": "ring", "aggregation.rule": "median", "byzantine.nodes": "[2, 4]", "byzantine.attack": "ipm"}
    )
    topo = parse_spec("ring", n=8)
    parts = partition(digits.y_train, 8, "iid", 0)
    with pytest.raises(ConfigError, match="node 3 has 2 Byzantine neighbours"):
        build_node(NodePlan(NodeId(0), cfg, topo, digits, parts[0], None), InMemoryNetwork().transport(NodeId(0)))
