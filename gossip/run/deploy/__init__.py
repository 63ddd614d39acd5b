"""``gossip deploy``: render the files that run one gossip run on Docker Compose, Kubernetes or SLURM.

Every engine gets the same two inputs, shipped as files (a bind mount, a ConfigMap): the run's config
(``config.toml``) and its exact graph (``topology.json``), and every container runs the same daemon,
``gossip node --config /etc/gossip/config.toml --id N``. Only the naming differs: a node reaches its
neighbours by DNS name (``node-3`` in compose, ``gossip-3.gossip`` behind a headless Service).

- :mod:`gossip.run.deploy.common`: the container config every engine shares, and writing the files;
- :mod:`gossip.run.deploy.compose`: ``docker-compose.yml`` + Prometheus scrape config;
- :mod:`gossip.run.deploy.kubernetes`: StatefulSet, headless Service, ConfigMap, ServiceMonitor, kustomization;
- :mod:`gossip.run.deploy.slurm`: a batch script whose srun tasks are the nodes (addresses from the job's node list).

YAML is written with PyYAML's ``safe_dump`` (a runtime dependency, chosen over a hand-rolled emitter:
YAML's quoting rules — ``"no"``, ``"0700"``, ``"9100:9100"`` — are exactly where hand-written emitters
go wrong, and the files must load identically in compose, kubectl and kustomize).
"""

from gossip.run.deploy.common import ContainerRun, prepare, write_files
from gossip.run.deploy.compose import ComposeOptions, compose_files, hold_text, render_compose
from gossip.run.deploy.kubernetes import KubernetesOptions, kubernetes_files, make_missing_keys, render_kubernetes
from gossip.run.deploy.slurm import SlurmOptions, render_slurm, slurm_files

__all__ = [
    "ComposeOptions",
    "ContainerRun",
    "KubernetesOptions",
    "SlurmOptions",
    "compose_files",
    "hold_text",
    "kubernetes_files",
    "make_missing_keys",
    "prepare",
    "render_compose",
    "render_kubernetes",
    "render_slurm",
    "slurm_files",
    "write_files",
]
