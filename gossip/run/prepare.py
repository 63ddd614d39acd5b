"""A launch's preparation: every check a user's config can fail, then the run directory the nodes start from.

The run directory holds what every node reads (see :mod:`gossip.results.rundir`): the resolved config
(addresses and ports filled in), the topology, the dataset (unless it is lazy: each node reads its own part)
and each node's part of it, and the CURVE keys.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from gossip.algorithms.tolerance import check_tolerance
from gossip.config import MetricsConfig, RunConfig, check_path_text, config_to_toml
from gossip.data import Dataset, save_npz, save_parts
from gossip.data.source import TorchData, dataset_shape_of, is_shipped, load_source, probe_dataset, source_shape, split_of
from gossip.data.split import shard_key
from gossip.errors import ConfigError
from gossip.learn.models import parameter_count_of
from gossip.learn.objectives import check_objectives
from gossip.net.linkemu import link_specs
from gossip.ops.prometheus import write_run_config
from gossip.results.rundir import atomic_write_text
from gossip.run.capacity import check_launch_fits, dataset_bytes
from gossip.run.gpus import place_run
from gossip.run.ports import check_base_port, host_of, ipc_addresses, pick_ports
from gossip.topology import Topology, save, topology_of

__all__ = ["check_links", "prepare_run"]

# bytes per value on the wire, for the smallest message a node sends (int8 adds block scales; compressed rounds send deltas)
_WIRE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}


# (the config, the node count) → every node's address and the metrics section with its ports (gossip.run.hosts)
Layout = Callable[[RunConfig, int], tuple[tuple[str, ...], MetricsConfig]]


def prepare_run(
    cfg: RunConfig, *, run_dir: str | Path | None = None, base_port: int | None = None, spawn: bool = False, layout: Layout | None = None
) -> tuple[RunConfig, Path, Topology]:
    """Validate everything a user can get wrong, then write the run directory. Starts no process.

    ``spawn``: the nodes will each be their own interpreter, not forks (the memory check counts them so).
    ``layout``: the nodes' addresses come from it (nodes on other hosts), not from free ports of this machine.

    Returns the resolved config (topology file, node count, addresses and ports filled in).

    Nothing is written, and nothing proportional to a size in the config is allocated, before every check
    has passed: the memory check runs on the config's numbers first (a graph, a dataset or a model of a
    mistyped size is never built), then on the graph's degrees.
    """
    if run_dir is not None:
        check_path_text("--run-dir", str(run_dir))
    topology, dataset = _checked_inputs(cfg, base_port, spawn)
    cfg = place_run(cfg, topology)  # GPUs present and large enough; auto resolved (device = "cpu": nothing asked)
    parts = split_of(cfg, topology.n, dataset)
    out = _new_run_dir(cfg, run_dir, topology)
    addresses, metrics = layout(cfg, topology.n) if layout else _addresses(cfg, topology.n, base_port)
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    resolved = _resolve(cfg, out, topology, addresses, metrics)
    atomic_write_text(out / "config.toml", config_to_toml(resolved))
    if metrics.enabled:
        write_run_config(out, resolved)  # RUN_DIR/prometheus/: scrape config and rules for this run
    if isinstance(dataset, Dataset):  # a lazy dataset is read by each node, its own part only
        save_npz(dataset, out / "data.npz")
    num_train = source_shape(dataset)[2] if isinstance(dataset, Dataset) else len(dataset.train)
    save_parts(parts, shard_key(resolved, topology.n, num_train), out / "shards.npz")  # nodes read their part, not recompute it
    (out / "nodes").mkdir(exist_ok=True)
    return resolved, out, topology


def _checked_inputs(cfg: RunConfig, base_port: int | None, spawn: bool) -> tuple[Topology, Dataset | TorchData]:
    """The run's graph and dataset, built only once the config's sizes fit this machine, and checked against each other.

    A shipped dataset's size is known from the config; a plug-in's only from what its loader returns, so it is
    called first (a lazy one reads two samples). A node holds a lazy dataset's test set and its own part only.
    """
    loaded = None if is_shipped(cfg.data.dataset) else load_source(cfg)
    shape, classes, train, test = dataset_shape_of(cfg) if loaded is None else source_shape(loaded)
    lazy = isinstance(loaded, TorchData)
    data = dataset_bytes(shape, test if lazy else train + test)
    params = parameter_count_of(cfg, shape, classes)
    check_launch_fits(max(cfg.run.nodes, 1), params, 0, spawn=spawn, data=data)  # a lower bound: degrees only add
    topology = topology_of(cfg)
    topology.check_weights(cfg.topology.weights)  # refuses e.g. uniform weights on an irregular graph
    data = dataset_bytes(shape, test + -(-train // topology.n)) if lazy else data
    check_launch_fits(topology.n, params, max(topology.degrees(), default=0), spawn=spawn, data=data)
    check_tolerance(cfg, topology)  # attackers outside the graph, or more than the rule withstands at some node
    dataset = loaded if loaded is not None else load_source(cfg)
    check_objectives(cfg, probe_dataset(cfg, dataset))  # model, loss and metric on a sample or two: refused here, not in N nodes
    check_links(cfg, topology, params)
    check_base_port(base_port, topology.n, cfg.metrics.enabled)
    return topology, dataset


def _new_run_dir(cfg: RunConfig, run_dir: str | Path | None, topology: Topology) -> Path:
    """The run directory to write: ``--run-dir``, or a new dated one under the config's runs directory; never a used one."""
    out = Path(run_dir) if run_dir else cfg.run.directory(f"{time.strftime('%Y%m%d-%H%M%S')}-{topology.name}")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"run directory {out} already exists and is not empty; choose another --run-dir or --name")
    check_path_text("run directory", str(out.resolve()))  # it is written into config.toml, so it must be writable there
    return out


def _addresses(cfg: RunConfig, n: int, base_port: int | None) -> tuple[tuple[str, ...], MetricsConfig]:
    """The nodes' addresses (ipc names, or TCP ports that stay free until the nodes bind them) and metrics ports."""
    host = host_of(cfg.transport.address_template)
    ports: list[int] = []
    if cfg.transport.address_template.startswith("ipc://"):
        addresses = ipc_addresses(n)
    else:
        ports = pick_ports(host, n, base_port, "node")
        addresses = tuple(f"tcp://{host}:{p}" for p in ports)
    metrics = cfg.metrics
    if metrics.enabled:
        mports = pick_ports(metrics.host, n, (base_port + n) if base_port else None, "metrics", avoid=set(ports))
        metrics = dataclasses.replace(metrics, ports=tuple(mports))
    return addresses, metrics


def _resolve(cfg: RunConfig, out: Path, topology: Topology, addresses: tuple[str, ...], metrics: MetricsConfig) -> RunConfig:
    """The config the nodes run: the topology saved into ``out`` (and CURVE keys made there when asked for) and every address filled in."""
    security = cfg.security
    if security.curve and not security.keys_dir:
        from gossip.net.zeromq import generate_keys

        generate_keys(out / "keys", topology.n)
        security = dataclasses.replace(security, keys_dir=str(out / "keys"))
    # The nodes read the JSON (no NetworkX in a node process: ~12 MiB each); the GraphML is for people and tools.
    topo_path = out / "topology.json"
    save(topology, topo_path)
    save(topology, out / "topology.graphml")
    return dataclasses.replace(
        cfg,
        run=dataclasses.replace(cfg.run, nodes=topology.n),
        topology=dataclasses.replace(cfg.topology, spec=str(topo_path)),
        transport=dataclasses.replace(cfg.transport, addresses=addresses),
        metrics=metrics,
        security=security,
    )


def check_links(cfg: RunConfig, topology: Topology, params: int) -> None:
    """Refuse emulated links (``[links]`` or edge attributes) on which no model could arrive within its round.

    Every edge's attributes are checked against ``[links]``' ranges first (a TopologyError names the edge).
    In sync rounds a model later than ``round_timeout_s`` is never mixed: a link whose delay (less its
    jitter) plus the time to serialise the smallest message a node sends is that long would only make
    every round wait out its timeout. A lower bound, like the memory check: a run it refuses could not work.
    """
    smallest = params * _WIRE_BYTES[cfg.transport.wire_dtype]
    if cfg.compression.method != "none":
        smallest = max(1, int(params * cfg.compression.topk_fraction)) * 8
    timeout = cfg.transport.round_timeout_s
    for i in range(topology.n):
        for j, spec in link_specs(i, topology, cfg.links).items():
            wire_s = smallest * 8 / (spec.bandwidth_mbit * 1e6) if spec.bandwidth_mbit else 0.0
            seconds = max(0.0, spec.delay_ms - spec.jitter_ms) / 1000 + wire_s
            if cfg.training.mode == "sync" and seconds >= timeout:
                raise ConfigError(
                    f"edge ({i}, {j}): a model of at least {smallest} bytes takes {seconds:.3g} s to arrive (delay_ms = {spec.delay_ms:g}, "
                    f"bandwidth_mbit = {spec.bandwidth_mbit:g}) but transport.round_timeout_s = {timeout:g}: no model would arrive in its round"
                )
