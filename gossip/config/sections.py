"""The sections that define what a run computes: the same on every node of a run, and covered by its run id.

Each is a frozen dataclass that checks itself in ``__post_init__`` (ranges first, see
:mod:`gossip.config.fields`) and raises :class:`~gossip.errors.ConfigError`, never ``assert``. A field's
trailing comment is its documentation: the configuration reference is generated from these comments.
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_args

from gossip.config.choices import (
    AttackKind,
    ClipRule,
    CompressionKind,
    DatasetKind,
    InitKind,
    LayersKind,
    LossKind,
    MetricKind,
    ModeKind,
    ModelKind,
    OptimizerKind,
    OutsideKind,
    PartitionKind,
    PeersKind,
    PrecisionKind,
    RuleKind,
    ScheduleKind,
    SelfWeightKind,
    VarianceTarget,
    WeightsKind,
)
from gossip.config.fields import DAY_S, FOREVER, MAX_NODES, MAX_SEED, check, check_choice, check_fields, integer, integers, real, show
from gossip.plugins import (
    AGGREGATOR,
    ATTACK,
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

__all__ = [
    "AggregationConfig",
    "ByzantineConfig",
    "CompressionConfig",
    "DataConfig",
    "MergeConfig",
    "ModelConfig",
    "RunSection",
    "ScheduleConfig",
    "TopologyConfig",
    "TrainingConfig",
    "VarianceConfig",
]

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


@dataclass(frozen=True)
class AggregationConfig:
    """How a node combines its model with what arrived (default: D-SGD mixing with the topology's weights).

    The robust rules (``gossip/algorithms/robust.py``) run on the node's own model plus the models
    that arrived this round; ``f`` is the number of Byzantine *neighbours* each node must tolerate
    (a local bound: launch refuses a run in which some node's degree cannot support it).
    """

    rule: str = (
        "dsgd"  # dsgd | variance (settings in [variance]) | a robust rule (below) | a plug-in: "module:Class" or an entry point name
    )
    f: int = integer(1, 0, MAX_NODES)  # Byzantine neighbours to tolerate per node (krum, multi-krum, trimmed-mean, adaptive clipping)
    trim_beta: float = real(0.0, 0, 0.5, hi_open=True)  # trimmed-mean: trim floor(beta * N) per side of the N inputs; 0 = trim f per side
    krum_m: int = integer(0, 0, MAX_NODES)  # multi-krum: average the m best-scored inputs; 0 = N - f (Blanchard et al. 2017)
    clip_tau: float = real(0.0, 0, FOREVER)  # clipped-gossip radius; 0 = adaptive (see clip_rule)
    clip_rule: ClipRule = "he"  # adaptive radius: He et al.'s formula, or the (f+1)-th largest distance (f = 1: the authors' code)
    balance_gamma: float = real(0.7, 0, 1e6, lo_open=True)  # balance: accept a neighbour within gamma * exp(-kappa * t/T) * ||own model||
    balance_kappa: float = real(1.0, 0, 1e6)
    balance_alpha: float = real(0.5, 0, 1)  # balance: weight kept on the own model
    options: tuple[str, ...] = ()  # a plug-in rule's keyword arguments, each "name=value" (value as TOML), e.g. ["iterations=50"]

    def __post_init__(self) -> None:
        check_fields(self, "aggregation")
        check_plugin(AGGREGATOR, self.rule, self.options, RuleKind)
        check_choice("aggregation", "clip_rule", self.clip_rule, ClipRule)


@dataclass(frozen=True)
class ByzantineConfig:
    """Which nodes misbehave and how (``gossip/algorithms/attacks.py``); empty ``nodes`` = an honest run.

    Attackers speak the same wire protocol as everyone else and never flag themselves: the defence
    must come from the honest nodes' aggregation rule.
    """

    nodes: tuple[int, ...] = integers(0, MAX_NODES - 1, MAX_NODES)
    attack: str = "none"  # none | a shipped attack (below) | a plug-in: "module:Class" or an entry point name
    # Attack magnitudes may be anything finite (1e39 overflows float32 on purpose: the wire must refuse it).
    scale: float = real(1.0, 0, FOREVER, lo_open=True)  # sign-flip: send -scale * own model
    noise_std: float = real(1.0, 0, FOREVER)  # gaussian: send own model + N(0, noise_std^2 I)
    alie_z: float = real(0.0, -FOREVER, FOREVER)  # alie: 0 = z_max from Baruch et al.'s formula for the target's (n, f); else this z
    ipm_epsilon: float = real(0.1, 0, FOREVER, lo_open=True)  # ipm: send -epsilon * mean(honest models received)
    dissensus_epsilon: float = real(1.5, 0, FOREVER, lo_open=True)  # dissensus: push each target away from its neighbourhood by this factor
    silent_from_round: int = integer(
        0, 0, 10_000_000
    )  # silent: stop sending models from this round on (0 = never send; >0 = a crash mid-run)
    wait_fraction: float = real(
        0.5, 0, 1, lo_open=True, hi_open=True
    )  # omniscient attacks wait this fraction of round_timeout_s for the honest models
    options: tuple[str, ...] = ()  # a plug-in attack's keyword arguments, each "name=value" (value as TOML), e.g. ["scale=3"]

    def __post_init__(self) -> None:
        check_fields(self, "byzantine")
        check_plugin(ATTACK, self.attack, self.options, AttackKind)
        dupes = sorted(n for n, times in collections.Counter(self.nodes).items() if times > 1)
        check(not dupes, f"[byzantine] nodes lists node {dupes[0] if dupes else ''} twice")
        check(
            not self.nodes or self.attack != "none",
            f"[byzantine] nodes = {show(list(self.nodes))} but attack = 'none'; name the attack they play",
        )

    def is_byzantine(self, node_id: int) -> bool:
        """Whether ``node_id`` plays the attack."""
        return node_id in self.nodes


@dataclass(frozen=True)
class VarianceConfig:
    """Variance-corrected averaging (Tian et al. 2024), used when ``[aggregation] rule = "variance"``.

    See ``gossip/algorithms/variance.py`` for the rule and the reasons behind each default.
    """

    # beta: the paper's conservative average beta·own + (1-beta)·mean(received).
    # mixing: the D-SGD mixing weights of the topology instead (composes with D-SGD).
    self_weight: SelfWeightKind = "beta"
    beta: float = real(0.5, 0, 1, hi_open=True)  # own-model weight in the conservative average (paper setup: 0.5)
    # others: mean variance of the received models (the paper's FollowOthers); self: the node's own
    # model before averaging; conservative: the same beta (or mixing) mix of both.
    target: VarianceTarget = "others"
    layers: LayersKind = "weights"  # weights: tensors of dim >= 2 only; all: biases and norm too
    eps: float = real(0.0, 0, 1)  # added to both variances; 1e-4 reproduces DFL_torch, 0 the original C++

    def __post_init__(self) -> None:
        check_fields(self, "variance")
        check_choice("variance", "self_weight", self.self_weight, SelfWeightKind)
        check_choice("variance", "target", self.target, VarianceTarget)
        check_choice("variance", "layers", self.layers, LayersKind)


@dataclass(frozen=True)
class ScheduleConfig:
    """When a node communicates (sync mode); rounds without communication are local training only.

    every: each round. periodic: every ``period`` rounds. random: the sparse random pull of Zhu et al.
    2025 — each round a node pulls one random neighbour with ``probability`` and mixes 1/2-1/2 (on
    the complete graph: any node). window: every round inside ``[window_start, window_end)`` (fractions
    of the rounds), ``outside`` elsewhere. none: no communication at all (until the final merge).
    """

    mode: ScheduleKind = "every"
    period: int = integer(1, 1, 10_000_000)
    probability: float = real(0.2, 0, 1)
    window_start: float = real(0.0, 0, 1)
    window_end: float = real(1.0, 0, 1)
    outside: OutsideKind = "none"

    def __post_init__(self) -> None:
        check_fields(self, "schedule")
        check_choice("schedule", "mode", self.mode, ScheduleKind)
        check(
            self.window_start < self.window_end,
            f"[schedule] need 0 <= window_start < window_end <= 1, got {self.window_start}, {self.window_end}",
        )
        check_choice("schedule", "outside", self.outside, OutsideKind)


@dataclass(frozen=True)
class MergeConfig:
    """The single global merge at the end (Zhu et al. 2025): every live node ends with the exact average."""

    enabled: bool = False
    timeout_s: float = real(30.0, 0, DAY_S, lo_open=True)  # per phase: how long to wait for the other nodes' models and views
    calibration_batches: int = integer(20, 1, 100_000)  # BatchNorm statistics re-estimated on this many local batches

    def __post_init__(self) -> None:
        check_fields(self, "merge")


@dataclass(frozen=True)
class CompressionConfig:
    """Compressed gossip: CHOCO-gossip with top-k differences and error feedback (``gossip.node.choco``).

    A section of its own rather than a [transport] key: every node must run the same algorithm, and
    the run id covers every section except [transport], [metrics] and [security] (which may differ
    per node). ``[transport] wire_dtype`` only narrows the payload of an uncompressed model.
    """

    method: CompressionKind = "none"  # topk: send top_k(x - x_hat) each round, mix over the public copies
    # share of the parameters sent per round (index + value: 8 bytes each); above 1/2 a delta (8 bytes
    # per entry) is larger than the float32 model it replaces
    topk_fraction: float = real(0.05, 0, 0.5, lo_open=True)
    # consensus step size: x += gamma * sum_j W_ij (x_hat_j - x_hat). Too large and the copies' errors
    # grow instead of shrinking (CHOCO's gamma bound shrinks with the share sent); too small and the
    # models drift apart while training. 0 = 4 * topk_fraction, capped at 1: stable for shares
    # 0.01..0.5 in a consensus simulation on an 8-node ring (6x diverges from 0.1 up); see docs/algorithms/compression.md.
    choco_gamma: float = real(0.0, 0, 1)
    # send the public copy in full every this many rounds: the only way back into a receiver's mix after a
    # loss the sender cannot see (lost on the way, late, refused), so there is no "never"
    # (at least 1: without resyncs a lost delta leaves its sender out of the mix for good)
    resync_every: int = integer(50, 1, 10_000_000)

    def __post_init__(self) -> None:
        check_fields(self, "compression")
        check_choice("compression", "method", self.method, CompressionKind)

    @property
    def gamma(self) -> float:
        """The consensus step size in use: ``choco_gamma``, or 4 * ``topk_fraction`` (at most 1) when it is 0."""
        return self.choco_gamma or min(1.0, 4 * self.topk_fraction)
