"""A GPU node's data path, run on the CPU through the real node loop (in-memory transport).

On a GPU a node sends a snapshot of its model (the one device-to-host copy) and mixes copies of what arrived in
reused device buffers. Forced on with device = cpu, that path must give the very models the CPU path gives, and
allocate no buffer per round.
"""

from __future__ import annotations

import asyncio

import pytest
import torch
from prometheus_client import generate_latest

from gossip.config import RunConfig, load_config
from gossip.data import load_dataset, partition
from gossip.ids import NodeId
from gossip.learn.device import ReceiveBuffers
from gossip.net.sendbuffers import SnapshotPool
from gossip.net.transport import InMemoryNetwork
from gossip.node.node import Node
from gossip.node.outbox import SendPath
from gossip.node.plan import NodePlan
from gossip.topology import parse_spec


def _config() -> RunConfig:
    return load_config(
        env={},
        overrides={
            "run.nodes": 4,
            "topology.spec": "ring",
            "training.rounds": 6,
            "training.local_steps": 2,
            "training.lr": 0.1,
            "model.name": "mlp",
            "metrics.enabled": False,
            "transport.round_timeout_s": 5.0,
            "transport.startup_timeout_s": 5.0,
        },
    )


def _run(gpu_path: bool) -> list[Node]:
    cfg = _config()
    dataset = load_dataset("digits", seed=0)
    topo = parse_spec(cfg.topology.spec, n=cfg.run.nodes, seed=cfg.run.seed)
    parts = partition(dataset.y_train, topo.n, cfg.data.partition, cfg.run.seed)
    net = InMemoryNetwork()
    nodes = [Node(NodePlan(NodeId(i), cfg, topo, dataset, parts[i], None), net.transport(NodeId(i))) for i in range(topo.n)]
    if gpu_path:  # what NodeCore sets up for a node whose device is not the CPU, with pinned=False and the copies forced
        for node in nodes:
            node.core.snapshots = node.snapshots = SnapshotPool(min_bytes=0, pinned=False)
            node.outbox.path = SendPath.SNAPSHOT
            node.mixer.uploads = ReceiveBuffers(torch.device("cpu"), always=True)

    async def main() -> None:
        await asyncio.gather(*(n.run() for n in nodes))

    asyncio.run(main())
    return nodes


@pytest.mark.slow
def test_the_gpu_data_path_gives_the_cpu_paths_models_bit_for_bit() -> None:
    """Same config, same seed: every node ends with the same bytes either way; the GPU path copied every model it
    mixed into one buffer per neighbour (2 on a ring) and sent from a handful of reused send buffers."""
    cpu = _run(gpu_path=False)
    gpu = _run(gpu_path=True)
    for a, b in zip(cpu, gpu, strict=True):
        assert a.snapshots.allocations == 0 and not a.mixer.uploads.active  # the CPU path: clones, models mixed in place
        assert "gossip_gpu_memory_bytes" not in generate_latest(a.metrics.registry).decode()  # a CPU node has no GPU series
        assert torch.equal(a.flat.vector, b.flat.vector)
        assert b.mixer.uploads.allocations == 2
        assert 1 <= b.snapshots.allocations <= b.snapshots.capacity
