"""Where nodes run: GPU placement, a node's device resolution, and the launcher's GPU checks (no GPU needed)."""

from __future__ import annotations

import pytest
import torch

from gossip.config import RunConfig
from gossip.errors import ConfigError
from gossip.learn.device import place, resolve_device
from gossip.node.plan import run_id_of
from gossip.run.gpus import GIB, Gpu, check_devices

H100 = Gpu(0, "H100", 80 * GIB)


@pytest.mark.parametrize(
    ("node", "device", "gpus", "expected"),
    [
        (0, "cpu", (), "cpu"),
        (5, "cpu", (), "cpu"),
        (3, "cuda", (), "cuda"),
        (3, "cuda:2", (), "cuda:2"),
        (0, "cuda", (0, 1), "cuda:0"),
        (1, "cuda", (0, 1), "cuda:1"),
        (2, "cuda", (0, 1), "cuda:0"),
        (7, "cuda", (0, 1, 2), "cuda:1"),
        (4, "cuda", (3, 5), "cuda:3"),
        (5, "auto", (3, 5), "cuda:5"),
    ],
)
def test_placement_puts_node_i_on_gpu_i_mod_k(node: int, device: str, gpus: tuple[int, ...], expected: str) -> None:
    """Node i goes to gpus[i mod k]; without a GPU list, every node on the device as given."""
    assert place(node, device, gpus) == expected


def test_a_node_asking_for_cuda_on_a_machine_without_one_is_refused() -> None:
    """The node's own check (gossip node alone, as in Compose): one ConfigError naming the device."""
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device(0, "cuda", (), cuda_count=lambda: 0)


def test_a_node_asking_for_a_gpu_index_the_machine_lacks_is_refused() -> None:
    """cuda:3 on a machine with two GPUs names the GPUs there are."""
    with pytest.raises(ConfigError, match=r"has 2 CUDA GPU\(s\) \(cuda:0..cuda:1\)"):
        resolve_device(3, "cuda", (0, 1, 2, 3), cuda_count=lambda: 2)


def test_auto_is_the_cpu_without_a_gpu_and_never_asks_on_cpu() -> None:
    """auto falls back to the CPU; device = cpu never asks CUDA anything."""
    assert resolve_device(0, "auto", (), cuda_count=lambda: 0) == torch.device("cpu")
    assert resolve_device(1, "auto", (), cuda_count=lambda: 2) == torch.device("cuda", 0)

    def never() -> int:
        raise AssertionError("asked CUDA")

    assert resolve_device(0, "cpu", (), cuda_count=never) == torch.device("cpu")


def test_the_launch_check_never_asks_for_the_inventory_on_cpu() -> None:
    """device = cpu: the config comes back as it was, and no subprocess asked about GPUs."""
    cfg = RunConfig()

    def never() -> list[Gpu]:
        raise AssertionError("inventory asked")

    assert check_devices(cfg, 8, GIB, never) is cfg


def test_the_launch_check_resolves_auto_to_cpu_or_to_every_gpu() -> None:
    """auto: cpu on a machine without GPUs; else cuda over all of them."""
    cfg = RunConfig().replace(training={"device": "auto"})
    assert check_devices(cfg, 4, GIB, lambda: []).training.device == "cpu"
    two = check_devices(cfg, 4, GIB, lambda: [H100, Gpu(1, "H100", 80 * GIB)]).training
    assert (two.device, two.gpus) == ("cuda", (0, 1))


def test_the_launch_check_refuses_more_gpu_memory_than_a_gpu_has() -> None:
    """Five nodes of 20 GiB each on one 80 GiB GPU: refused, naming the GPU and the sizes; four fit."""
    cfg = RunConfig().replace(training={"device": "cuda"})
    with pytest.raises(
        ConfigError, match=r"5 nodes on cuda:0 \(H100\) need about 100.0 GiB of GPU memory \(20.0 GiB each\) but it has 80.0 GiB"
    ):
        check_devices(cfg, 5, 20 * GIB, lambda: [H100])
    assert check_devices(cfg, 4, 20 * GIB, lambda: [H100]).training.device == "cuda"


def test_the_launch_check_spreads_the_memory_over_the_gpus_given() -> None:
    """The same five nodes over two GPUs (3 + 2) fit; a GPU index the machine lacks is refused."""
    cfg = RunConfig().replace(training={"device": "cuda", "gpus": [0, 1]})
    assert check_devices(cfg, 5, 20 * GIB, lambda: [H100, Gpu(1, "H100", 80 * GIB)]).training.gpus == (0, 1)
    with pytest.raises(ConfigError, match="asks for cuda:1 but this machine has 1 CUDA GPU"):
        check_devices(cfg, 5, 20 * GIB, lambda: [H100])


def test_device_keys_are_checked_on_load() -> None:
    """A device name that is none of cpu, cuda, cuda:N, auto, and a GPU list on the CPU, are refused on load."""
    with pytest.raises(ConfigError, match="is not one of 'cpu', 'cuda', 'cuda:N', 'auto'"):
        RunConfig().replace(training={"device": "gpu0"})
    with pytest.raises(ConfigError, match="gpus needs device = 'cuda' or 'auto', not 'cpu'"):
        RunConfig().replace(training={"gpus": [0]})
    with pytest.raises(ConfigError, match="precision"):
        RunConfig().replace(training={"precision": "fp8"})


def test_placement_is_not_part_of_the_run_id() -> None:
    """Nodes of one run on different GPUs (or some on CPUs) still accept each other's models; precision does count."""
    cfg = RunConfig()
    assert run_id_of(cfg) == run_id_of(cfg.replace(training={"device": "cuda:1"}))
    assert run_id_of(cfg) == run_id_of(cfg.replace(training={"device": "cuda", "gpus": [0, 1]}))
    assert run_id_of(cfg) != run_id_of(cfg.replace(training={"precision": "bf16"}))
