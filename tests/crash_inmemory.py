"""One crash-and-rejoin scenario on the in-memory transport, shared by the tests that need it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from gossip.config import RunConfig
from gossip.data import load_dataset, partition
from gossip.ids import NodeId
from gossip.net.transport import InMemoryNetwork
from gossip.node import checkpoint
from gossip.node.node import Node
from gossip.node.plan import NodePlan
from gossip.topology import parse_spec


def triangle_plans(cfg: RunConfig) -> list[NodePlan]:
    """Plans for the three nodes of ``cfg`` (digits, a complete graph), each with its own part of the data."""
    dataset = load_dataset("digits", seed=0)
    topo = parse_spec(cfg.topology.spec, n=3, seed=0)
    parts = partition(dataset.y_train, 3, cfg.data.partition, 0)
    return [NodePlan(NodeId(i), cfg, topo, dataset, parts[i], None) for i in range(3)]


def crash_and_rejoin(
    plans: list[NodePlan],
    *,
    crash_after: int,
    rejoin_at: int,
    while_down: Callable[[list[Node]], None] | None = None,
) -> tuple[list[Node], Node, InMemoryNetwork]:
    """Run every node; node 2 vanishes without a bye after round ``crash_after`` (its task is cancelled, its
    messages dropped) and a new node 2, built from a checkpoint of that round, starts once node 0 reached
    ``rejoin_at``. ``while_down(nodes)`` runs just before the rejoin. Returns the first nodes, the reborn one
    and the network."""
    net = InMemoryNetwork()

    async def main() -> tuple[list[Node], Node]:
        nodes = [Node(p, net.transport(p.node_id)) for p in plans]
        tasks = [asyncio.create_task(n.run()) for n in nodes]
        while nodes[2].round < crash_after:
            await asyncio.sleep(0.001)
        net.down.add(2)  # a crash: nothing more in or out, and no bye
        tasks[2].cancel()
        saved = checkpoint.Checkpoint(
            nodes[2].flat.vector.numpy().copy(), crash_after, nodes[2].flat.layout.fingerprint, nodes[2].trainer.state()
        )
        while nodes[0].round < rejoin_at:
            await asyncio.sleep(0.005)
        if while_down is not None:
            while_down(nodes)
        net.down.discard(2)
        reborn = Node(dataclasses.replace(plans[2], resume=saved), net.transport(NodeId(2)))
        await asyncio.gather(tasks[0], tasks[1], reborn.run())
        return nodes, reborn

    nodes, reborn = asyncio.run(main())
    return nodes, reborn, net
