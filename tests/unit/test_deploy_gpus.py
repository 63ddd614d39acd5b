"""Deploy files ask for GPUs when the config asks for cuda: Compose reservations, Kubernetes nvidia.com/gpu limits."""

from __future__ import annotations

from typing import Any

import yaml

from gossip.config import load_config
from gossip.run.deploy import ComposeOptions, KubernetesOptions, prepare, render_compose, render_kubernetes
from gossip.run.deploy.compose import compose_address_template
from gossip.run.deploy.kubernetes import k8s_address_template


def _config(**extra: Any) -> Any:
    return load_config(env={}, overrides={"run.nodes": 3, "topology.spec": "ring", "training.rounds": 5, **extra})


def _services(cfg: Any) -> dict[str, Any]:
    files = render_compose(prepare(cfg, compose_address_template()), ComposeOptions(command="gossip deploy compose"))
    services: dict[str, Any] = yaml.safe_load(files["docker-compose.yml"])["services"]
    return services


def test_compose_reserves_each_node_its_placed_gpu() -> None:
    """gpus = [0, 1] on 3 nodes: node-0 on GPU 0, node-1 on 1, node-2 on 0; each container runs device = cuda
    (the GPU it was given is its cuda:0), and the run id is the same as the CPU run's."""
    cfg = _config(**{"training.device": "cuda", "training.gpus": [0, 1]})
    services = _services(cfg)
    for i, gpu in enumerate(["0", "1", "0"]):
        devices = services[f"node-{i}"]["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "device_ids": [gpu], "capabilities": ["gpu"]}]
    run = prepare(cfg, compose_address_template())
    assert (run.cfg.training.device, run.cfg.training.gpus) == ("cuda", ())


def test_compose_reserves_one_gpu_of_any_without_placement() -> None:
    """device = cuda without gpus: each node reserves one GPU, Compose picks which."""
    services = _services(_config(**{"training.device": "cuda"}))
    assert services["node-2"]["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    ]


def test_cpu_and_auto_runs_reserve_no_gpu() -> None:
    """The default (cpu) and auto (a GPU only if the host has one) ask Compose and Kubernetes for none."""
    for extra in ({}, {"training.device": "auto"}):
        assert all("deploy" not in s for s in _services(_config(**extra)).values())
        files = render_kubernetes(prepare(_config(**extra), k8s_address_template("gossip")), KubernetesOptions(command="gossip deploy k8s"))
        container = yaml.safe_load(files["statefulset.yaml"])["spec"]["template"]["spec"]["containers"][0]
        assert "nvidia.com/gpu" not in container["resources"]["limits"]


def test_kubernetes_limits_each_pod_to_one_gpu() -> None:
    """device = cuda: the node container's limits hold nvidia.com/gpu: 1 (the device plugin's resource)."""
    run = prepare(_config(**{"training.device": "cuda", "training.gpus": [0, 1]}), k8s_address_template("gossip"))
    files = render_kubernetes(run, KubernetesOptions(command="gossip deploy k8s"))
    container = yaml.safe_load(files["statefulset.yaml"])["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
