"""The sections that define what a run computes (run, topology, data, model, training): the same on every node of
a run, and covered by its run id. How nodes combine models is in :mod:`gossip.config.combining`.

Each is a frozen dataclass that checks itself in ``__post_init__`` (ranges first, see
:mod:`gossip.config.fields`) and raises :class:`~gossip.errors.ConfigError`, never ``assert``. A field's
trailing comment is its documentation: the configuration reference is generated from these comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_args

from gossip.config.choices import (
    DatasetKind,
    InitKind,
    LossKind,
    MetricKind,
    ModeKind,
    ModelKind,
    OptimizerKind,
    PartitionKind,
    PeersKind,
    PrecisionKind,
    WeightsKind,
)
from gossip.config.fields import DAY_S, MAX_NODES, MAX_SEED, check, check_choice, check_fields, integer, integers, real, show
from gossip.plugins import (
    DATASET,
    LOSS,
    METRIC,
    MODEL,
    PARTITION,
    PluginKind,
    check_name,
    is_import_path,
    parse_options,
)

__all__ = ["DataConfig", "ModelConfig", "RunSection", "TopologyConfig", "TrainingConfig", "check_plugin"]

_MODELS_WITH_HIDDEN = ("mlp", "mlpbn")
# The synthetic dataset's options (as gossip.data.load_dataset names them) and the [data] keys that hold them:
# their defaults are the fields' defaults (tests/unit/test_choices.py pins them to gossip.data's).
_SYNTHETIC_KEYS = {"features": "features", "classes": "classes", "train": "train_samples", "test": "test_samples"}


def check_plugin(kind: PluginKind, name: str, options: tuple[str, ...], shipped: object) -> None:
    """A shipped name, or a plug-in's import path or entry point name; ``options`` only for a plug-in, each "name=value".

    Why options are refused for a shipped name: its parameters are this section's own keys, each with a range;
    an option it would silently ignore is a mistake the user should hear about.
    """
    names = get_args(shipped)
    check_name(kind, name, names)
    parse_options(kind.options_where, options)
    check(
        not options or name not in names,
        f"{kind.options_where} are a plug-in's keyword arguments; {kind.key} = {name!r} takes its settings from the section's keys",
    )


def _check_dataset(name: str, options: tuple[str, ...]) -> None:
    """A shipped dataset (any case) takes no ``[data] options``; an import path must be well-formed.

    A plain name that is neither shipped nor an import path is left to the loader's resolution (an entry
    point, else "unknown dataset ... did you mean"), which needs the installed packages, not the config.
    """
    if is_import_path(name):
        check_name(DATASET, name, ())
    parse_options(DATASET.options_where, options)
    check(
        not options or name.strip().lower() not in get_args(DatasetKind),
        f"{DATASET.options_where} are a plug-in dataset's keyword arguments; {DATASET.key} = {name!r} takes its settings from the section's keys",
    )


@dataclass(frozen=True)
class RunSection:
    """What the run is: its size, its seed, where its results go."""

    nodes: int = integer(0, 0, MAX_NODES)  # 0 = take N from a topology file; generators need it set
    seed: int = integer(0, 0, MAX_SEED)  # one seed for split, init, batches: same config + seed = same results
    name: str = ""  # run directory name (one path component); empty = timestamp + topology
    out_dir: str = "runs"  # parent of the run directories gossip launch creates
    # a node logs a round's line at most this often, plus its first and last round and any round whose
    # missing neighbours changed (gossip.node.roundlog); the JSONL has every round. 0 = a line every round.
    log_interval_s: float = real(1.0, 0, DAY_S)

    def __post_init__(self) -> None:
        check_fields(self, "run")
        check(
            self.name not in (".", "..") and "/" not in self.name and "\\" not in self.name,
            f"[run] name must be one directory name under out_dir (no '/', not '.' or '..'), got {show(self.name)}",
        )

    def directory(self, fallback: str) -> Path:
        """The run directory: ``out_dir/name``, or ``out_dir/fallback`` when the name is empty.

        Always a child of ``out_dir``: ``name`` is one path component (checked on load), and the fallback
        (a timestamp and the topology's name, which a topology file chooses) has every character that could
        leave ``out_dir`` or break a path replaced.
        """
        name = self.name or re.sub(r"[/\\\x00-\x1f\x7f-\x9f\ud800-\udfff]", "_", fallback)[:200]
        if name in (".", ".."):
            name = name.replace(".", "_")
        return Path(self.out_dir) / name


@dataclass(frozen=True)
class TopologyConfig:
    """Which graph connects the nodes and how the mixing weights are derived from it."""

    spec: str = "ring"  # generator spec (ring, torus:4x4, er:p=0.3, ...) or a file path
    weights: WeightsKind = "metropolis"  # computed locally from the graph, never taken from a message
    # Which of its neighbours a node talks to in a communication round. "all": every neighbour, with
    # the weights above (static graph). "one-peer-exponential": Ying et al. 2021's time-varying graph —
    # in its c-th communication node i sends to i + 2^(c mod log2 n) and mixes 1/2-1/2 with what it
    # got; the graph must contain those edges (spec "exponential"; spec "one-peer-exponential" is
    # shorthand for both settings).
    peers: PeersKind = "all"

    def __post_init__(self) -> None:
        check_fields(self, "topology")
        check(bool(self.spec.strip()), "[topology] spec is empty")
        if self.spec.strip().lower() == "one-peer-exponential":
            object.__setattr__(self, "spec", "exponential")
            object.__setattr__(self, "peers", "one-peer-exponential")
        check_choice("topology", "weights", self.weights, WeightsKind)
        check_choice("topology", "peers", self.peers, PeersKind)


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, and how it is split across nodes (seeded by ``run.seed``)."""

    # a shipped dataset (mnist1d, digits, mnist, cifar10, synthetic) or a plug-in loader: "module:load" or an
    # entry point name in group gossip.datasets (docs/develop/write-your-own-dataset.md)
    dataset: str = "mnist1d"
    options: tuple[str, ...] = ()  # a plug-in dataset's keyword arguments, each "name=value" (value as TOML), e.g. ["size=100"]
    root: str = ""  # directory for file-based datasets (mnist, cifar10); a plug-in loader receives it as its root
    # iid | dirichlet | shards | a plug-in split: "module:split" or an entry point name in group gossip.partitions
    partition: str = "iid"
    partition_options: tuple[str, ...] = ()  # a plug-in partition's keyword arguments, each "name=value" (value as TOML)
    alpha: float = real(0.5, 0.001, 1000)  # Dirichlet concentration; smaller = more skewed
    shards_per_node: int = integer(2, 1, 10_000)
    min_size: int = integer(0, 0, 10_000_000)  # fewest samples a node may get; 0 = the scheme's default (classes for dirichlet)
    batch_size: int = integer(32, 1, 1_000_000)
    # The seeded Gaussian-cluster dataset ("synthetic") only: its size and shape. Benchmarks use it to
    # set the input width a model needs (64 features for a 64-200-10 MLP, 1000 for 1000-1000-10).
    # The launcher also checks that (train + test) x features fits in memory before generating it.
    features: int = integer(64, 1, 1_000_000)
    classes: int = integer(10, 2, 100_000)
    train_samples: int = integer(4000, 1, 10_000_000)
    test_samples: int = integer(1000, 1, 10_000_000)

    def __post_init__(self) -> None:
        check_fields(self, "data")
        check_plugin(PARTITION, self.partition, self.partition_options, PartitionKind)
        _check_dataset(self.dataset, self.options)
        if self.dataset.strip().lower() != "synthetic":
            defaults = {f.name: f.default for f in fields(DataConfig)}
            changed = [option for option, key in _SYNTHETIC_KEYS.items() if getattr(self, key) != defaults[key]]
            check(not changed, f"[data] {changed[0] if changed else ''} applies to dataset = 'synthetic' only, not {self.dataset!r}")

    def dataset_options(self) -> dict[str, int]:
        """The keyword options ``load_dataset`` takes for this dataset (the synthetic set's sizes; none otherwise)."""
        if self.dataset.strip().lower() != "synthetic":
            return {}
        return {option: getattr(self, key) for option, key in _SYNTHETIC_KEYS.items()}


@dataclass(frozen=True)
class ModelConfig:
    """Which model each node trains and how it is initialised."""

    name: str = "mlp"  # a shipped model, or a plug-in: "module:factory" or an entry point name (docs/develop/write-your-own-model.md)
    # shared: every node starts from one seed (D-SGD practice); independent: a seed per node, the
    # setting of Tian et al. 2024 in which averaging uncorrelated models shrinks their variance.
    init: InitKind = "shared"
    # Hidden layer widths of mlp / mlpbn; empty = the model's default (100, 100). [200] gives the
    # 64-200-10 MLP of the round-time benchmark, [1000] the 1000-1000-10 one.
    # Each width 1..1000000, at most 32 layers; the launcher counts the parameters (no model built) and
    # refuses a model that cannot fit in memory.
    hidden: tuple[int, ...] = integers(1, 1_000_000, 32)
    options: tuple[str, ...] = ()  # a plug-in model's keyword arguments, each "name=value" (value as TOML), e.g. ["width=64"]

    def __post_init__(self) -> None:
        check_fields(self, "model")
        check_plugin(MODEL, self.name, self.options, ModelKind)
        check_choice("model", "init", self.init, InitKind)
        check(
            not self.hidden or self.name in _MODELS_WITH_HIDDEN,
            f"[model] hidden applies to {' and '.join(_MODELS_WITH_HIDDEN)} only, not {self.name!r}",
        )

    def build_options(self) -> dict[str, Any]:
        """The keyword options ``build_model`` takes for this model: ``hidden`` when set, or a plug-in's ``options``."""
        if self.options:
            return parse_options(MODEL.options_where, self.options)
        return {"hidden": self.hidden} if self.hidden else {}


@dataclass(frozen=True)
class TrainingConfig:
    """Local optimisation between two communications (adapt-then-combine D-SGD)."""

    rounds: int = integer(50, 1, 10_000_000)
    local_steps: int = integer(1, 0, 100_000)  # minibatch steps per round, before the gossip step
    optimizer: OptimizerKind = "sgd"
    lr: float = real(0.05, 0, 1e6)  # large values make a run diverge on purpose (tests of the divergence stop)
    momentum: float = real(0.9, 0, 1, hi_open=True)  # local heavy-ball momentum; its state never travels
    weight_decay: float = real(0.0, 0, 1)
    eval_every: int = integer(1, 1, 10_000_000)  # evaluate on the test set every k rounds (and always at the last)
    # sync: D-SGD rounds (send, wait for the round's models, mix). async: gossip learning after
    # Ormándi et al. 2013 — every period_s a node takes its local steps and pushes its model to one
    # random neighbour; it merges whatever arrives as it arrives. No rounds, no waiting.
    mode: ModeKind = "sync"
    period_s: float = real(0.0, 0, DAY_S)  # async: pause between two pushes (0 = as fast as the node trains)
    duration_s: float = real(0.0, 0, 30 * DAY_S)  # async: time budget; 0 = none (then `rounds` pushes are the budget)
    # async: push-sum (Kempe et al. 2003) — a push hands over half the sender's mass w, the receiver
    # weighs models by mass. Keeps the network average exact when sends are one-way.
    push_sum: bool = False
    # sync: write nodes/node-<i>.ckpt.npz every this many rounds (and always at the end or on SIGTERM),
    # so a node killed with SIGKILL restarts (`gossip node --resume`) from at most this many rounds back.
    # 0 = only at the end. A checkpoint is an fsynced temp file renamed over the old one: ~ms per write.
    checkpoint_every: int = integer(10, 0, 10_000_000)
    # ... and at least this many seconds apart: a run of millisecond rounds would otherwise spend a tenth
    # of its time in fsync. 0 = every checkpoint_every.
    checkpoint_interval_s: float = real(5.0, 0, DAY_S)
    # What local steps minimise: cross-entropy on class labels, mse on float targets, or a plug-in
    # ("module:factory" or an entry point name; docs/develop/write-your-own-loss-and-metric.md).
    loss: str = "cross-entropy"
    loss_options: tuple[str, ...] = ()  # a plug-in loss's keyword arguments, each "name=value" (value as TOML)
    # What evaluation reports (records keep it under "accuracy"): accuracy, mse (lower is better), or a plug-in
    # whose value is a per-sample mean over a batch.
    metric: str = "accuracy"
    metric_options: tuple[str, ...] = ()  # a plug-in metric's keyword arguments, each "name=value" (value as TOML)
    # where the model trains and mixes (docs/operate/gpus.md): cpu | cuda | cuda:N | auto (cuda when this machine
    # has one, else cpu). A launch asking for a GPU this machine lacks is refused before anything starts.
    device: str = "cpu"
    gpus: tuple[int, ...] = integers(0, 1023, 1024)  # node i runs on cuda:gpus[i mod len(gpus)] (launch --gpus); not in the run id
    precision: PrecisionKind = "fp32"  # autocast of the local steps (fp16 loss-scaled); parameters and the wire stay float32
    deterministic: bool = False  # torch.use_deterministic_algorithms (+ CUBLAS_WORKSPACE_CONFIG on CUDA); CPU runs repeat without it

    def __post_init__(self) -> None:
        check_fields(self, "training")
        check_choice("training", "mode", self.mode, ModeKind)
        check_choice("training", "optimizer", self.optimizer, OptimizerKind)
        check_plugin(LOSS, self.loss, self.loss_options, LossKind)
        check_plugin(METRIC, self.metric, self.metric_options, MetricKind)
        check_choice("training", "precision", self.precision, PrecisionKind)
        device_ok = re.fullmatch(r"cpu|auto|cuda(:(0|[1-9][0-9]{0,3}))?", self.device) is not None
        check(device_ok, f"[training] device = {show(self.device)} is not one of 'cpu', 'cuda', 'cuda:N', 'auto'")
        check(not self.gpus or self.device in ("cuda", "auto"), f"[training] gpus needs device = 'cuda' or 'auto', not {self.device!r}")
