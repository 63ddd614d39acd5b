"""The host/device copies of a GPU node, run on the CPU with the copying forced on, and the local steps' precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gossip.config import RunConfig
from gossip.errors import ConfigError
from gossip.learn.device import LossScale, ReceiveBuffers, check_gpu_features
from gossip.learn.flat import flatten_
from gossip.learn.trainer import LocalTrainer
from gossip.net.sendbuffers import SnapshotPool
from gossip.net.transport import InMemoryNetwork
from gossip.node.outbox import SendPath, choose_send_path
from tests.waiting import wait_until

CPU = torch.device("cpu")


def test_received_models_are_used_in_place_on_the_cpu() -> None:
    """A CPU node mixes what arrived where it arrived: the same mapping back, no copy, no buffer."""
    buffers = ReceiveBuffers(CPU)
    received = {1: torch.ones(5), 2: torch.zeros(5)}
    assert buffers.to_device(received) is received
    assert buffers.allocations == 0


def test_received_models_go_into_one_reused_buffer_per_neighbour() -> None:
    """The GPU path (forced on the CPU): each model is copied into its sender's buffer; later rounds reuse it."""
    buffers = ReceiveBuffers(CPU, always=True)
    pointers = None
    for round_ in range(5):
        received = {1: torch.full((7,), float(round_)), 2: torch.arange(7, dtype=torch.float32) * round_}
        out = buffers.to_device(received)
        assert all(torch.equal(out[j], received[j]) and out[j] is not received[j] for j in received)
        now = {j: t.data_ptr() for j, t in out.items()}
        assert pointers is None or now == pointers
        pointers = now
    assert buffers.allocations == 2


def test_a_send_from_a_device_is_one_copy_into_a_reused_buffer() -> None:
    """The pool a GPU node uses (every size pooled; pinned only where CUDA is): a snapshot is a copy, and once the
    message is gone the next send reuses its buffer instead of allocating one."""
    pool = SnapshotPool(min_bytes=0, pinned=False)
    vector = torch.arange(1000, dtype=torch.float32)
    for round_ in range(5):
        vector += round_
        snap = pool.snapshot(vector)
        assert torch.equal(snap, vector) and snap.data_ptr() != vector.data_ptr()
        frames = pool.track(snap, [b"header", memoryview(snap.numpy()).cast("B")])
        assert bytes(frames[-1]) == vector.numpy().tobytes()  # what the transport sends: the snapshot's bytes
        del frames, snap
        wait_until(lambda: pool.in_flight == 0, timeout_s=10, what="ZeroMQ to release the dropped frame")  # released asynchronously
    assert pool.allocations == 1


def test_a_node_on_a_gpu_always_sends_a_snapshot() -> None:
    """Never the live vector (it is on the device): the snapshot path, whatever the size and transport."""
    net = InMemoryNetwork()
    cfg = RunConfig()
    assert choose_send_path(cfg, net.transport(0), 10**7, "cuda") is SendPath.SNAPSHOT
    assert choose_send_path(cfg, net.transport(1), 10**7, "cpu") is choose_send_path(cfg, net.transport(1), 10**7)  # cpu: as ever


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"training": {"mode": "async"}}, "synchronous rounds only"),
        ({"compression": {"method": "topk"}}, "compression.method must be 'none'"),
        ({"merge": {"enabled": True}}, "the global merge runs on the CPU only"),
        ({"byzantine": {"nodes": [0], "attack": "sign-flip"}}, "attackers play on the CPU only"),
    ],
)
def test_what_a_gpu_node_does_not_run_is_refused(changes: dict[str, dict[str, object]], message: str) -> None:
    """Features that mix outside the node's mixer are refused on a GPU, with the key to change."""
    base = {"training": {"device": "cuda"}}
    merged = {**changes, "training": {**base["training"], **changes.get("training", {})}}
    cfg = RunConfig().replace(**merged)
    with pytest.raises(ConfigError, match=message):
        check_gpu_features(cfg)
    check_gpu_features(cfg.replace(training={"device": "cpu"}))


def _trainer(precision: str) -> LocalTrainer:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 16)).astype(np.float32)
    y = (x[:, :4].argmax(1)).astype(np.int64)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    flat = flatten_(model)
    cfg = RunConfig().replace(training={"precision": precision, "lr": 0.1}).training
    return LocalTrainer(flat.module, x, y, x[:64], y[:64], cfg, 32, seed=0)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_differs_from_fp32(precision: str) -> None:
    """bf16/fp16 autocast runs on the CPU: the loss falls over 60 steps, and the model is not fp32's (autocast was on)."""
    half, full = _trainer(precision), _trainer("fp32")
    first = half.steps(5).loss
    last = half.steps(60).loss
    full.steps(65)
    assert last < first
    vector = torch.cat([p.detach().reshape(-1) for p in half.params])
    reference = torch.cat([p.detach().reshape(-1) for p in full.params])
    assert not torch.equal(vector, reference)


def test_fp16_loss_scaling_skips_a_step_whose_gradients_overflow() -> None:
    """A non-finite gradient: no step, the scale halves; a finite one: unscaled gradient, one step."""
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=1.0)
    scale = LossScale(True, scale=4.0)
    loss = (p * torch.tensor([1e38, 1.0, 1.0])).sum()  # times the scale: infinite gradient
    scale.backward_and_step(loss, opt, [p])
    assert torch.equal(p.detach(), torch.ones(3)) and scale.scale == 2.0 and scale.skipped == 1
    p.grad = None
    scale.backward_and_step((p * 2).sum(), opt, [p])
    assert torch.equal(p.detach(), torch.full((3,), -1.0))


def test_gpu_memory_is_exported_only_by_a_node_on_a_gpu() -> None:
    """A CPU node's registry has no gossip_gpu_memory_bytes series (absent, not a fake 0); a GPU node's has both kinds."""
    from prometheus_client import generate_latest

    from gossip.ops.metrics import NodeMetrics

    cpu = NodeMetrics(0, [1])
    assert "gossip_gpu_memory_bytes" not in generate_latest(cpu.registry).decode()
    gpu = NodeMetrics(1, [0])
    gpu.on_gpu("cuda:1")
    gpu.gpu_memory(5 << 20, 7 << 20)
    text = generate_latest(gpu.registry).decode()
    assert 'gossip_gpu_memory_bytes{device="cuda:1",kind="in_use",node="1"} 5.24288e+06' in text
    assert 'gossip_gpu_memory_bytes{device="cuda:1",kind="peak",node="1"} 7.340032e+06' in text


def test_the_shard_goes_to_the_gpu_only_when_it_fits() -> None:
    """At most half the GPU's free memory: on the GPU; more: kept on the host (batches go over one by one); the CPU
    never asks CUDA anything."""
    from gossip.learn.device import shard_device

    gpu = torch.device("cuda", 0)
    assert shard_device(gpu, 4 << 30, free_bytes=lambda: 8 << 30) == gpu
    assert shard_device(gpu, (4 << 30) + 1, free_bytes=lambda: 8 << 30) == CPU

    def never() -> int:
        raise AssertionError("asked CUDA")

    assert shard_device(CPU, 1 << 40, free_bytes=never) == CPU
