"""What every deployment shares: the config a container runs with, its graph file, YAML, and writing the files.

The container config is the user's config with only the *where* changed: peers by DNS name on one fixed
port, every node listening on all interfaces, metrics on one fixed port, the topology read from the
shipped graph file. The *what* (data, model, training, seed) is untouched, so the run id — derived from
those sections — is the same whether the run is launched on a laptop or deployed.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gossip.config import RunConfig, config_to_toml
from gossip.data.source import resolve_loader
from gossip.errors import ConfigError
from gossip.learn.device import place
from gossip.plugins import is_import_path
from gossip.results.rundir import atomic_write_text
from gossip.topology import Topology, save, topology_of

__all__ = [
    "CONFIG_DIR",
    "CONFIG_FILE",
    "KEYS_DIR",
    "METRICS_PORT",
    "NODE_PORT",
    "RUN_DIR",
    "TOPOLOGY_FILE",
    "ContainerRun",
    "dump_yaml",
    "node_args",
    "prepare",
    "write_files",
]

NODE_PORT = 7000  # every node's ZeroMQ ROUTER, in every container
METRICS_PORT = 9100  # every node's /metrics, /healthz, /readyz
CONFIG_DIR = "/etc/gossip"  # where the config and the graph are mounted, read-only
CONFIG_FILE = "config.toml"
TOPOLOGY_FILE = "topology.json"  # read without NetworkX: ~12 MiB less in every container
RUN_DIR = "/var/lib/gossip/run"  # a volume: records, final model, checkpoint, summary
KEYS_DIR = "/etc/gossip-keys"  # CURVE key files (gossip keys), mounted read-only when [security] curve is on


@dataclass(frozen=True)
class ContainerRun:
    """A run made ready for containers: its config (peers by DNS name), its graph, and the files carrying them."""

    cfg: RunConfig
    topology: Topology
    config_toml: str
    topology_json: str
    # per node, the GPU its container asks for: "cuda" (any one), "cuda:N" (that one); empty: no GPU asked for
    gpus: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return self.topology.n


def prepare(cfg: RunConfig, address_template: str, *, curve: bool = False) -> ContainerRun:
    """Validate what a user can get wrong before any file is written, then rewrite the config for containers.

    ``address_template`` names node ``{id}`` on the engine's network, e.g. ``tcp://node-{id}:7000``;
    ``curve``: every link encrypted and authenticated, keys read from :data:`KEYS_DIR`.
    """
    topology = topology_of(cfg)
    topology.check_weights(cfg.topology.weights)  # refuses e.g. uniform weights on an irregular graph
    if not is_import_path(cfg.data.dataset):  # a plug-in module may exist only in the image (--with-package)
        resolve_loader(cfg.data.dataset)  # shipped, or an installed entry point; else "unknown dataset ... did you mean"
    # A node asking for cuda gets one GPU reserved for its container, which sees it as cuda:0.
    training = cfg.training
    gpus = tuple(place(i, training.device, training.gpus) for i in range(topology.n)) if training.device.startswith("cuda") else ()
    container = dataclasses.replace(
        cfg,
        training=dataclasses.replace(training, device="cuda", gpus=()) if gpus else training,
        run=dataclasses.replace(cfg.run, nodes=topology.n),
        topology=dataclasses.replace(cfg.topology, spec=f"{CONFIG_DIR}/{TOPOLOGY_FILE}"),
        transport=dataclasses.replace(cfg.transport, address_template=address_template, addresses=(), listen=f"tcp://0.0.0.0:{NODE_PORT}"),
        metrics=dataclasses.replace(cfg.metrics, enabled=True, host="0.0.0.0", port=METRICS_PORT, ports=()),
        security=dataclasses.replace(cfg.security, curve=True, keys_dir=KEYS_DIR) if curve else cfg.security,
    )
    return ContainerRun(container, topology, config_to_toml(container), _topology_file(topology), gpus)


def _topology_file(topology: Topology) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / TOPOLOGY_FILE
        save(topology, path)
        return path.read_text(encoding="utf-8")


def node_args(node_id: str, hold: str) -> list[str]:
    """The daemon's command line in every container (after the image's ``gossip`` entrypoint)."""
    args = ["node", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}", "--id", node_id, "--run-dir", RUN_DIR]
    if hold not in ("", "0"):
        args += ["--hold", hold]
    return args


class _PlainDumper(yaml.SafeDumper):
    """``safe_dump`` without anchors and aliases: generated files are read by people and by every engine."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(docs: Sequence[Mapping[str, Any]], header: str = "") -> str:
    """YAML documents separated by ``---``, under a ``#`` comment header; keys keep their order."""
    # Flow style for leaf lists and maps (``command: [node, --id, '3']``), block style above them.
    body = yaml.dump_all(list(docs), Dumper=_PlainDumper, sort_keys=False, default_flow_style=None, width=120, explicit_start=len(docs) > 1)
    lines = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines()) if header else ""
    return lines + body


def write_files(out: str | Path, files: Mapping[str, str], *, force: bool = False) -> list[Path]:
    """Write ``files`` (relative path → text) under ``out``: all of them, or none when one would be clobbered.

    A file that exists with other content is only replaced with ``force``; one with the same content is
    left as is (rendering twice is a no-op).
    """
    root = Path(out)
    targets = [(root / rel, text) for rel, text in files.items()]
    if not force:
        for path, text in targets:
            if path.exists() and path.read_text(encoding="utf-8") != text:
                raise ConfigError(f"{path} exists and differs from what would be written; pass --force to overwrite it")
    written = []
    for path, text in targets:
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        atomic_write_text(path, text)
        written.append(path)
    return written
