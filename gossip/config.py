"""Configuration: one typed, frozen place for every setting, loaded TOML → environment → flags.

Why frozen dataclasses and not a dict: a typo in a key or a value out of range must fail before any
process starts, with one line that names the key (``unknown key 'lrr' in [training]; did you mean
'lr'?``). Each section validates itself in ``__post_init__`` and raises :class:`ConfigError`, never
``assert``. Units live in the names (``round_timeout_s``, ``max_message_bytes``).

Precedence, lowest first: the dataclass defaults, a TOML file, ``GOSSIP_<SECTION>_<KEY>`` environment
variables (12-factor style, e.g. ``GOSSIP_TRAINING_LR=0.1``), then command-line overrides
(``--set training.lr=0.1`` and the shortcut flags of ``gossip launch``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from gossip.errors import ConfigError

__all__ = [
    "AggregationConfig",
    "ByzantineConfig",
    "CompressionConfig",
    "DataConfig",
    "FaultsConfig",
    "LinksConfig",
    "MergeConfig",
    "MetricsConfig",
    "ModelConfig",
    "RunConfig",
    "RunSection",
    "ScheduleConfig",
    "SecurityConfig",
    "TopologyConfig",
    "TrainingConfig",
    "TransportConfig",
    "VarianceConfig",
    "config_to_toml",
    "load_config",
]

WeightsKind = Literal["metropolis", "uniform", "max-degree"]
PartitionKind = Literal["iid", "dirichlet", "shards"]
InitKind = Literal["shared", "independent"]
OptimizerKind = Literal["sgd", "adam"]
WireDtype = Literal["float32", "float16", "bfloat16", "int8"]
PeersKind = Literal["all", "one-peer-exponential"]
ModeKind = Literal["sync", "async"]
RuleKind = Literal["dsgd", "variance", "median", "trimmed-mean", "krum", "multi-krum", "clipped-gossip", "balance"]
ScheduleKind = Literal["every", "periodic", "random", "window", "none"]
OutsideKind = Literal["none", "random"]
VarianceTarget = Literal["others", "self", "conservative"]
SelfWeightKind = Literal["beta", "mixing"]
LayersKind = Literal["weights", "all"]
CompressionKind = Literal["none", "topk"]


_MODELS_WITH_HIDDEN = ("mlp", "mlpbn")
# gossip.data.datasets.SYNTHETIC_DEFAULTS, restated: config must not import the data stack (numpy) to load.
_SYNTHETIC_DEFAULTS = {"features": 64, "classes": 10, "train": 4000, "test": 1000}


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _check_choice(section: str, key: str, value: object, kind: Any) -> None:
    choices = get_args(kind)
    _check(value in choices, f"[{section}] {key} = {value!r} is not one of {', '.join(map(repr, choices))}")


@dataclass(frozen=True)
class RunSection:
    """What the run is: its size, its seed, where its results go."""

    nodes: int = 0  # 0 = take N from a topology file; generators need it set
    seed: int = 0  # one seed for split, init, batches: same config + seed = same results
    name: str = ""  # run directory name; empty = timestamp + topology
    out_dir: str = "runs"  # parent of the run directories gossip launch creates
    # a node logs a round's line at most this often, plus its first and last round and any round whose
    # missing neighbours changed (gossip.roundlog); the JSONL has every round. 0 = a line every round.
    log_interval_s: float = 1.0

    def __post_init__(self) -> None:
        _check(self.nodes >= 0, f"[run] nodes must be >= 0, got {self.nodes}")
        _check(self.seed >= 0, f"[run] seed must be >= 0, got {self.seed}")
        _check(self.log_interval_s >= 0 and math.isfinite(self.log_interval_s), f"[run] log_interval_s must be a finite number >= 0, got {self.log_interval_s}")


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
        _check(bool(self.spec.strip()), "[topology] spec is empty")
        if self.spec.strip().lower() == "one-peer-exponential":
            object.__setattr__(self, "spec", "exponential")
            object.__setattr__(self, "peers", "one-peer-exponential")
        _check_choice("topology", "weights", self.weights, WeightsKind)
        _check_choice("topology", "peers", self.peers, PeersKind)


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, and how it is split across nodes (seeded by ``run.seed``)."""

    dataset: str = "mnist1d"
    root: str = ""  # directory for file-based datasets (mnist, cifar10)
    partition: PartitionKind = "iid"
    alpha: float = 0.5  # Dirichlet concentration; smaller = more skewed
    shards_per_node: int = 2
    min_size: int = 0  # fewest samples a node may get; 0 = the scheme's default (classes for dirichlet)
    batch_size: int = 32
    # The seeded Gaussian-cluster dataset ("synthetic") only: its size and shape. Benchmarks use it to
    # set the input width a model needs (64 features for a 64-200-10 MLP, 1000 for 1000-1000-10).
    features: int = 64
    classes: int = 10
    train_samples: int = 4000
    test_samples: int = 1000

    def __post_init__(self) -> None:
        _check_choice("data", "partition", self.partition, PartitionKind)
        _check(self.features >= 1, f"[data] features must be >= 1, got {self.features}")
        _check(self.classes >= 2, f"[data] classes must be >= 2, got {self.classes}")
        _check(self.train_samples >= 1, f"[data] train_samples must be >= 1, got {self.train_samples}")
        _check(self.test_samples >= 1, f"[data] test_samples must be >= 1, got {self.test_samples}")
        if self.dataset.strip().lower() != "synthetic":
            changed = [k for k, v in self.dataset_options(all_keys=True).items() if v != _SYNTHETIC_DEFAULTS[k]]
            _check(not changed, f"[data] {changed[0] if changed else ''} applies to dataset = 'synthetic' only, not {self.dataset!r}")
        _check(self.min_size >= 0, f"[data] min_size must be >= 0, got {self.min_size}")
        _check(self.alpha > 0, f"[data] alpha must be > 0, got {self.alpha}")
        _check(self.shards_per_node >= 1, f"[data] shards_per_node must be >= 1, got {self.shards_per_node}")
        _check(self.batch_size >= 1, f"[data] batch_size must be >= 1, got {self.batch_size}")

    def dataset_options(self, *, all_keys: bool = False) -> dict[str, int]:
        """The keyword options ``load_dataset`` takes for this dataset (the synthetic set's sizes; none otherwise)."""
        if not all_keys and self.dataset.strip().lower() != "synthetic":
            return {}
        return {"features": self.features, "classes": self.classes, "train": self.train_samples, "test": self.test_samples}


@dataclass(frozen=True)
class ModelConfig:
    """Which model each node trains and how it is initialised."""

    name: str = "mlp"
    # shared: every node starts from one seed (D-SGD practice); independent: a seed per node, the
    # setting of Tian et al. 2024 in which averaging uncorrelated models shrinks their variance.
    init: InitKind = "shared"
    # Hidden layer widths of mlp / mlpbn; empty = the model's default (100, 100). [200] gives the
    # 64-200-10 MLP of the round-time benchmark, [1000] the 1000-1000-10 one.
    hidden: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _check_choice("model", "init", self.init, InitKind)
        _check(all(h >= 1 for h in self.hidden), f"[model] hidden widths must be >= 1, got {list(self.hidden)}")
        _check(not self.hidden or self.name in _MODELS_WITH_HIDDEN,
               f"[model] hidden applies to {' and '.join(_MODELS_WITH_HIDDEN)} only, not {self.name!r}")

    def options(self) -> dict[str, tuple[int, ...]]:
        """The keyword options ``build_model`` takes for this model (``hidden`` when set)."""
        return {"hidden": self.hidden} if self.hidden else {}


@dataclass(frozen=True)
class TrainingConfig:
    """Local optimisation between two communications (adapt-then-combine D-SGD)."""

    rounds: int = 50
    local_steps: int = 1  # minibatch steps per round, before the gossip step
    optimizer: OptimizerKind = "sgd"
    lr: float = 0.05
    momentum: float = 0.9  # local heavy-ball momentum; its state never travels
    weight_decay: float = 0.0
    eval_every: int = 1  # evaluate on the test set every k rounds (and always at the last)
    # sync: D-SGD rounds (send, wait for the round's models, mix). async: gossip learning after
    # Ormándi et al. 2013 — every period_s a node takes its local steps and pushes its model to one
    # random neighbour; it merges whatever arrives as it arrives. No rounds, no waiting.
    mode: ModeKind = "sync"
    period_s: float = 0.0  # async: pause between two pushes (0 = as fast as the node trains)
    duration_s: float = 0.0  # async: time budget; 0 = none (then `rounds` pushes are the budget)
    # async: push-sum (Kempe et al. 2003) — a push hands over half the sender's mass w, the receiver
    # weighs models by mass. Keeps the network average exact when sends are one-way.
    push_sum: bool = False
    # sync: write nodes/node-<i>.ckpt.npz every this many rounds (and always at the end or on SIGTERM),
    # so a node killed with SIGKILL restarts (`gossip node --resume`) from at most this many rounds back.
    # 0 = only at the end. A checkpoint is an fsynced temp file renamed over the old one: ~ms per write.
    checkpoint_every: int = 10
    # ... and at least this many seconds apart: a run of millisecond rounds would otherwise spend a tenth
    # of its time in fsync (measured: 13 % of a node's samples at 15k parameters). 0 = every checkpoint_every.
    checkpoint_interval_s: float = 5.0

    def __post_init__(self) -> None:
        _check(self.rounds >= 1, f"[training] rounds must be >= 1, got {self.rounds}")
        _check_choice("training", "mode", self.mode, ModeKind)
        _check(self.period_s >= 0 and math.isfinite(self.period_s), f"[training] period_s must be >= 0, got {self.period_s}")
        _check(self.duration_s >= 0 and math.isfinite(self.duration_s), f"[training] duration_s must be >= 0, got {self.duration_s}")
        _check(self.local_steps >= 0, f"[training] local_steps must be >= 0, got {self.local_steps}")
        _check_choice("training", "optimizer", self.optimizer, OptimizerKind)
        _check(self.lr >= 0 and math.isfinite(self.lr), f"[training] lr must be a finite number >= 0, got {self.lr}")
        _check(0 <= self.momentum < 1, f"[training] momentum must be in [0, 1), got {self.momentum}")
        _check(self.weight_decay >= 0, f"[training] weight_decay must be >= 0, got {self.weight_decay}")
        _check(self.eval_every >= 1, f"[training] eval_every must be >= 1, got {self.eval_every}")
        _check(self.checkpoint_every >= 0, f"[training] checkpoint_every must be >= 0 (0 = only at the end), got {self.checkpoint_every}")
        _check(self.checkpoint_interval_s >= 0 and math.isfinite(self.checkpoint_interval_s),
               f"[training] checkpoint_interval_s must be a finite number >= 0, got {self.checkpoint_interval_s}")


@dataclass(frozen=True)
class TransportConfig:
    """Where nodes listen and how long they wait for each other.

    A node's address is ``addresses[id]`` when the list is given (``gossip launch`` writes one),
    else ``address_template`` with ``{id}`` and ``{port}`` (= ``base_port + id``) filled in — so a
    compose or Kubernetes deployment names peers by DNS (``tcp://gossip-{id}.gossip:7000``) and a
    laptop by port. ``listen`` overrides what the node binds (``tcp://0.0.0.0:7000`` in a container).
    """

    address_template: str = "tcp://127.0.0.1:{port}"
    base_port: int = 7000
    addresses: tuple[str, ...] = ()
    listen: str = ""  # empty = bind the node's own address
    round_timeout_s: float = 30.0  # wait this long for neighbours' models, then mix what arrived
    startup_timeout_s: float = 120.0  # deadline for every neighbour to say hello
    max_rounds_ahead: int = 2  # buffer neighbours' models this many rounds ahead of ours
    queue_messages: int = 4  # ZeroMQ high-water mark per peer, in messages (bounds memory)
    max_message_bytes: int = 0  # 0 = model size + header slack; larger frames never reach Python
    wire_dtype: WireDtype = "float32"  # int8: block-wise symmetric quantisation (gossip.compression); models stay float32
    # sync rounds hand ZeroMQ the live model: zero-copy from 1 MiB (mixed only once ZeroMQ let go), below
    # copied by the socket inside send; false: always send a snapshot copy (async and link emulation always do)
    zero_copy: bool = True

    def __post_init__(self) -> None:
        _check(0 <= self.base_port <= 65535, f"[transport] base_port must be a TCP port, got {self.base_port}")
        _check(self.round_timeout_s > 0, f"[transport] round_timeout_s must be > 0, got {self.round_timeout_s}")
        _check(self.startup_timeout_s > 0, f"[transport] startup_timeout_s must be > 0, got {self.startup_timeout_s}")
        _check(self.max_rounds_ahead >= 1, f"[transport] max_rounds_ahead must be >= 1, got {self.max_rounds_ahead}")
        _check(self.queue_messages >= 1, f"[transport] queue_messages must be >= 1, got {self.queue_messages}")
        _check(self.max_message_bytes >= 0, "[transport] max_message_bytes must be >= 0")
        _check_choice("transport", "wire_dtype", self.wire_dtype, WireDtype)
        for text in (self.address_template, *self.addresses, self.listen):
            if text:
                _check(text.startswith(("tcp://", "ipc://")), f"[transport] address {text!r} must start with tcp:// or ipc://")

    def address_of(self, node_id: int) -> str:
        """The address peers use to reach ``node_id``."""
        if self.addresses:
            if node_id >= len(self.addresses):
                raise ConfigError(f"[transport] addresses has {len(self.addresses)} entries, no address for node {node_id}")
            return self.addresses[node_id]
        try:
            return self.address_template.format(id=node_id, port=self.base_port + node_id)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"[transport] address_template {self.address_template!r}: {exc}") from None

    def listen_address(self, node_id: int) -> str:
        """The address ``node_id`` binds."""
        if self.listen:
            return self.listen.format(id=node_id, port=self.base_port + node_id)
        return self.address_of(node_id)


ClipRule = Literal["he", "second-largest"]
AttackKind = Literal["none", "sign-flip", "gaussian", "label-flip", "alie", "ipm", "dissensus", "silent"]


@dataclass(frozen=True)
class AggregationConfig:
    """How a node combines its model with what arrived (default: D-SGD mixing with the topology's weights).

    The robust rules (``gossip/aggregation/robust.py``) run on the node's own model plus the models
    that arrived this round; ``f`` is the number of Byzantine *neighbours* each node must tolerate
    (a local bound: launch refuses a run in which some node's degree cannot support it).
    """

    rule: RuleKind = "dsgd"  # dsgd | variance (settings in [variance]) | a robust rule (below)
    f: int = 1  # Byzantine neighbours to tolerate per node (krum, multi-krum, trimmed-mean, adaptive clipping)
    trim_beta: float = 0.0  # trimmed-mean: trim floor(beta * N) per side of the N inputs; 0 = trim f per side
    krum_m: int = 0  # multi-krum: average the m best-scored inputs; 0 = N - f (Blanchard et al. 2017)
    clip_tau: float = 0.0  # clipped-gossip radius; 0 = adaptive (see clip_rule)
    clip_rule: ClipRule = "he"  # adaptive radius: He et al.'s formula, or the authors' code's 2nd-largest distance
    balance_gamma: float = 0.7  # balance: accept a neighbour within gamma * exp(-kappa * t/T) * ||own model||
    balance_kappa: float = 1.0
    balance_alpha: float = 0.5  # balance: weight kept on the own model

    def __post_init__(self) -> None:
        _check_choice("aggregation", "rule", self.rule, RuleKind)
        _check(self.f >= 0, f"[aggregation] f must be >= 0, got {self.f}")
        _check(0 <= self.trim_beta < 0.5, f"[aggregation] trim_beta must be in [0, 0.5), got {self.trim_beta}")
        _check(self.krum_m >= 0, f"[aggregation] krum_m must be >= 0 (0 = N - f), got {self.krum_m}")
        _check(self.clip_tau >= 0 and math.isfinite(self.clip_tau), f"[aggregation] clip_tau must be a finite number >= 0 (0 = adaptive), got {self.clip_tau}")
        _check_choice("aggregation", "clip_rule", self.clip_rule, ClipRule)
        _check(self.balance_gamma > 0, f"[aggregation] balance_gamma must be > 0, got {self.balance_gamma}")
        _check(self.balance_kappa >= 0, f"[aggregation] balance_kappa must be >= 0, got {self.balance_kappa}")
        _check(0 <= self.balance_alpha <= 1, f"[aggregation] balance_alpha must be in [0, 1], got {self.balance_alpha}")


@dataclass(frozen=True)
class ByzantineConfig:
    """Which nodes misbehave and how (``gossip/attacks.py``); empty ``nodes`` = an honest run.

    Attackers speak the same wire protocol as everyone else and never flag themselves: the defence
    must come from the honest nodes' aggregation rule.
    """

    nodes: tuple[int, ...] = ()
    attack: AttackKind = "none"
    scale: float = 1.0  # sign-flip: send -scale * own model
    noise_std: float = 1.0  # gaussian: send own model + N(0, noise_std^2 I)
    alie_z: float = 0.0  # alie: 0 = z_max from Baruch et al.'s formula for the target's (n, f); else this z
    ipm_epsilon: float = 0.1  # ipm: send -epsilon * mean(honest models received)
    dissensus_epsilon: float = 1.5  # dissensus: push each target away from its neighbourhood by this factor
    silent_from_round: int = 0  # silent: stop sending models from this round on (0 = never send; >0 = a crash mid-run)
    wait_fraction: float = 0.5  # omniscient attacks wait this fraction of round_timeout_s for the honest models

    def __post_init__(self) -> None:
        _check_choice("byzantine", "attack", self.attack, AttackKind)
        _check(all(n >= 0 for n in self.nodes), f"[byzantine] nodes must be node ids >= 0, got {list(self.nodes)}")
        dupes = sorted({n for n in self.nodes if self.nodes.count(n) > 1})
        _check(not dupes, f"[byzantine] nodes lists node {dupes[0] if dupes else ''} twice")
        _check(not self.nodes or self.attack != "none", f"[byzantine] nodes = {list(self.nodes)} but attack = 'none'; name the attack they play")
        _check(math.isfinite(self.scale) and self.scale > 0, f"[byzantine] scale must be a finite number > 0, got {self.scale}")
        _check(math.isfinite(self.noise_std) and self.noise_std >= 0, f"[byzantine] noise_std must be a finite number >= 0, got {self.noise_std}")
        _check(math.isfinite(self.alie_z), f"[byzantine] alie_z must be finite, got {self.alie_z}")
        _check(math.isfinite(self.ipm_epsilon) and self.ipm_epsilon > 0, f"[byzantine] ipm_epsilon must be > 0, got {self.ipm_epsilon}")
        _check(math.isfinite(self.dissensus_epsilon) and self.dissensus_epsilon > 0, f"[byzantine] dissensus_epsilon must be > 0, got {self.dissensus_epsilon}")
        _check(self.silent_from_round >= 0, f"[byzantine] silent_from_round must be >= 0, got {self.silent_from_round}")
        _check(0 < self.wait_fraction < 1, f"[byzantine] wait_fraction must be in (0, 1), got {self.wait_fraction}")

    def is_byzantine(self, node_id: int) -> bool:
        """Whether ``node_id`` plays the attack."""
        return node_id in self.nodes


@dataclass(frozen=True)
class VarianceConfig:
    """Variance-corrected averaging (Tian et al. 2024), used when ``[aggregation] rule = "variance"``.

    See ``gossip/aggregation/variance.py`` for the rule and the reasons behind each default.
    """

    # beta: the paper's conservative average beta·own + (1-beta)·mean(received).
    # mixing: the D-SGD mixing weights of the topology instead (composes with D-SGD).
    self_weight: SelfWeightKind = "beta"
    beta: float = 0.5  # own-model weight in the conservative average (paper setup: 0.5)
    # others: mean variance of the received models (the paper's FollowOthers); self: the node's own
    # model before averaging; conservative: the same beta (or mixing) mix of both.
    target: VarianceTarget = "others"
    layers: LayersKind = "weights"  # weights: tensors of dim >= 2 only; all: biases and norm too
    eps: float = 0.0  # added to both variances; 1e-4 reproduces DFL_torch, 0 the original C++

    def __post_init__(self) -> None:
        _check_choice("variance", "self_weight", self.self_weight, SelfWeightKind)
        _check(0.0 <= self.beta < 1.0, f"[variance] beta must be in [0, 1), got {self.beta}")
        _check_choice("variance", "target", self.target, VarianceTarget)
        _check_choice("variance", "layers", self.layers, LayersKind)
        _check(self.eps >= 0 and math.isfinite(self.eps), f"[variance] eps must be >= 0, got {self.eps}")


@dataclass(frozen=True)
class ScheduleConfig:
    """When a node communicates (sync mode); rounds without communication are local training only.

    every: each round. periodic: every ``period`` rounds. random: the sparse random pull of Zhu et al.
    2025 — each round a node pulls one random neighbour with ``probability`` and mixes 1/2-1/2 (on
    the complete graph: any node). window: every round inside ``[window_start, window_end)`` (fractions
    of the rounds), ``outside`` elsewhere. none: no communication at all (until the final merge).
    """

    mode: ScheduleKind = "every"
    period: int = 1
    probability: float = 0.2
    window_start: float = 0.0
    window_end: float = 1.0
    outside: OutsideKind = "none"

    def __post_init__(self) -> None:
        _check_choice("schedule", "mode", self.mode, ScheduleKind)
        _check(self.period >= 1, f"[schedule] period must be >= 1, got {self.period}")
        _check(0.0 <= self.probability <= 1.0, f"[schedule] probability must be in [0, 1], got {self.probability}")
        _check(0.0 <= self.window_start < self.window_end <= 1.0,
               f"[schedule] need 0 <= window_start < window_end <= 1, got {self.window_start}, {self.window_end}")
        _check_choice("schedule", "outside", self.outside, OutsideKind)


@dataclass(frozen=True)
class MergeConfig:
    """The single global merge at the end (Zhu et al. 2025): every live node ends with the exact average."""

    enabled: bool = False
    timeout_s: float = 30.0  # per phase: how long to wait for the other nodes' models and views
    calibration_batches: int = 20  # BatchNorm statistics re-estimated on this many local batches

    def __post_init__(self) -> None:
        _check(self.timeout_s > 0 and math.isfinite(self.timeout_s), f"[merge] timeout_s must be > 0, got {self.timeout_s}")
        _check(self.calibration_batches >= 1, f"[merge] calibration_batches must be >= 1, got {self.calibration_batches}")


@dataclass(frozen=True)
class CompressionConfig:
    """Compressed gossip: CHOCO-gossip with top-k differences and error feedback (``gossip.choco``).

    A section of its own rather than a [transport] key: every node must run the same algorithm, and
    the run id covers every section except [transport], [metrics] and [security] (which may differ
    per node). ``[transport] wire_dtype`` only narrows the payload of an uncompressed model.
    """

    method: CompressionKind = "none"  # topk: send top_k(x - x_hat) each round, mix over the public copies
    topk_fraction: float = 0.05  # share of the parameters sent per round (index + value: 8 bytes each)
    # consensus step size: x += gamma * sum_j W_ij (x_hat_j - x_hat). Too large and the copies' errors
    # grow instead of shrinking (CHOCO's gamma bound shrinks with the share sent); too small and the
    # models drift apart while training. 0 = 4 * topk_fraction, capped at 1: stable for shares
    # 0.01..0.5 in a consensus simulation on an 8-node ring (6x diverges from 0.1 up); see README.
    choco_gamma: float = 0.0
    # send the public copy in full every this many rounds: the only way back into a receiver's mix after a
    # loss the sender cannot see (lost on the way, late, refused), so there is no "never"
    resync_every: int = 50

    def __post_init__(self) -> None:
        _check_choice("compression", "method", self.method, CompressionKind)
        # above 1/2 a delta (8 bytes per entry) is larger than the float32 model it replaces
        _check(0 < self.topk_fraction <= 0.5, f"[compression] topk_fraction must be in (0, 0.5], got {self.topk_fraction}")
        _check(0 <= self.choco_gamma <= 1, f"[compression] choco_gamma must be in [0, 1] (0 = 4 * topk_fraction), got {self.choco_gamma}")
        _check(self.resync_every >= 1,
               f"[compression] resync_every must be >= 1 (without resyncs a lost delta leaves its sender out of the mix for good), got {self.resync_every}")

    @property
    def gamma(self) -> float:
        """The consensus step size in use: ``choco_gamma``, or 4 * ``topk_fraction`` (at most 1) when it is 0."""
        return self.choco_gamma or min(1.0, 4 * self.topk_fraction)


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus endpoint of each node (``/metrics`` and ``/healthz``)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    base_port: int = 9100  # node i serves on base_port + i unless ports or port is given
    ports: tuple[int, ...] = ()
    # > 0: every node serves on this one port. For one node per host (containers, pods, network
    # namespaces), where each node has its own address and Prometheus scrapes name:port.
    port: int = 0

    def __post_init__(self) -> None:
        _check(0 <= self.base_port <= 65535, f"[metrics] base_port must be a TCP port, got {self.base_port}")
        _check(0 <= self.port <= 65535, f"[metrics] port must be a TCP port (or 0 for base_port + id), got {self.port}")

    def port_of(self, node_id: int) -> int:
        """The metrics port of ``node_id``."""
        if self.port:
            return self.port
        if self.ports:
            if node_id >= len(self.ports):
                raise ConfigError(f"[metrics] ports has {len(self.ports)} entries, no port for node {node_id}")
            return self.ports[node_id]
        return self.base_port + node_id if self.base_port else 0


@dataclass(frozen=True)
class SecurityConfig:
    """Transport security and the limits that keep a hostile peer from exhausting a node.

    Without CURVE the network is trusted: a sender is whoever its routing id says (see README,
    "Threat model"). With CURVE every link is encrypted and a node admits only its neighbours' keys.
    """

    curve: bool = False
    keys_dir: str = ""  # node-<i>.key and node-<i>.key_secret; gossip launch makes them when empty
    max_messages_per_s: float = 1000.0  # per sender, token bucket; 0 = no limit
    burst_messages: int = 100
    # inbound connections a node holds at once (gossip.connections); 0 = sized from the peers and `ulimit -n`
    max_connections: int = 0
    max_connections_per_address: int = 0  # 0 = the number of nodes that may connect, plus 8
    handshake_timeout_s: float = 10.0  # a connection that has not finished its ZeroMQ (and CURVE) handshake by then is closed

    def __post_init__(self) -> None:
        _check(self.max_messages_per_s >= 0, f"[security] max_messages_per_s must be >= 0, got {self.max_messages_per_s}")
        _check(self.burst_messages >= 1, f"[security] burst_messages must be >= 1, got {self.burst_messages}")
        _check(self.max_connections >= 0, f"[security] max_connections must be >= 0, got {self.max_connections}")
        _check(self.max_connections_per_address >= 0, f"[security] max_connections_per_address must be >= 0, got {self.max_connections_per_address}")
        _check(
            math.isfinite(self.handshake_timeout_s) and self.handshake_timeout_s > 0,
            f"[security] handshake_timeout_s must be a number of seconds > 0, got {self.handshake_timeout_s}",
        )


@dataclass(frozen=True)
class LinksConfig:
    """Link emulation by the sending node (``gossip/linkemu.py``): delay, jitter, loss and bandwidth per edge.

    Each edge's own GraphML attributes (``delay_ms``, ``jitter_ms``, ``loss``, ``bandwidth_mbit``; see
    topologies/README.md) apply when ``enabled``; the values here apply to every edge that does not carry
    that attribute. All zero and no attributes = no emulation (the default: a plain graph costs nothing).
    It needs no root and works anywhere; kernel-level faults (tests/e2e/test_netfaults.py) are the check.
    """

    enabled: bool = True  # apply the topology file's link attributes
    delay_ms: float = 0.0  # one-way delay added to every message
    jitter_ms: float = 0.0  # uniform in [-jitter, +jitter] around the delay (never below 0)
    loss: float = 0.0  # probability that a message is dropped (seeded by run seed, sender, receiver)
    bandwidth_mbit: float = 0.0  # link rate: a message occupies the link for size / rate; 0 = unlimited

    def __post_init__(self) -> None:
        for key in ("delay_ms", "jitter_ms", "bandwidth_mbit"):
            value = getattr(self, key)
            _check(value >= 0 and math.isfinite(value), f"[links] {key} must be a finite number >= 0, got {value}")
        _check(0.0 <= self.loss <= 1.0, f"[links] loss must be a probability in [0, 1], got {self.loss}")


@dataclass(frozen=True)
class FaultsConfig:
    """Deliberate faults for tests and research: make some nodes stragglers. Never set in production runs."""

    slow_nodes: tuple[int, ...] = ()  # these nodes are stragglers
    step_delay_s: float = 0.0  # extra seconds each local SGD step of a slow node takes (an await: it still receives)

    def __post_init__(self) -> None:
        _check(all(n >= 0 for n in self.slow_nodes), f"[faults] slow_nodes must be node ids >= 0, got {list(self.slow_nodes)}")
        _check(self.step_delay_s >= 0 and math.isfinite(self.step_delay_s), f"[faults] step_delay_s must be >= 0, got {self.step_delay_s}")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; every node of the run loads the same one."""

    run: RunSection = field(default_factory=RunSection)
    topology: TopologyConfig = field(default_factory=TopologyConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    aggregation: AggregationConfig = field(default_factory=AggregationConfig)
    byzantine: ByzantineConfig = field(default_factory=ByzantineConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    variance: VarianceConfig = field(default_factory=VarianceConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    merge: MergeConfig = field(default_factory=MergeConfig)
    links: LinksConfig = field(default_factory=LinksConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)

    def __post_init__(self) -> None:
        if self.compression.method != "none":
            self._check_compression()
        if self.training.mode == "async":
            _check(self.schedule.mode == "every", "[schedule] applies to sync rounds; async mode pushes every period_s (set schedule.mode = 'every')")
            _check(self.topology.peers == "all", "[topology] peers = 'one-peer-exponential' needs training.mode = 'sync'")
            _check(not (self.training.push_sum and self.aggregation.rule == "variance" and self.variance.self_weight == "beta"),
                   "[training] push_sum weighs models by mass; [variance] self_weight = 'beta' would replace those weights (use 'mixing')")
            # a robust rule needs a round's set of inputs; async merges one model at a time, and the
            # attacker role is played in synchronous rounds (an async "attacker" would quietly be honest)
            _check(self.aggregation.rule in ("dsgd", "variance"),
                   f"[aggregation] rule = {self.aggregation.rule!r} needs a round's set of models; async mode merges one at a time (use training.mode = 'sync')")
            _check(not self.byzantine.nodes, "[byzantine] attacks are played in synchronous rounds; set training.mode = 'sync'")
        else:
            _check(not self.training.push_sum, "[training] push_sum needs mode = 'async' (sync rounds keep the average with doubly stochastic weights)")
        # the merge is an exact average of every model by design: one attacker would poison every node
        _check(not (self.merge.enabled and self.byzantine.nodes),
               "[merge] the single global merge averages every model and is not Byzantine-robust; disable merge.enabled or byzantine.nodes")
        if self.topology.peers == "one-peer-exponential":
            _check(self.schedule.mode != "random" and self.schedule.outside != "random",
                   "[schedule] random pull picks its own peer; it does not combine with topology.peers = 'one-peer-exponential'")

    def _check_compression(self) -> None:
        """CHOCO-gossip mixes public copies with doubly stochastic weights every round: refuse what would break that."""
        method = f"[compression] method = {self.compression.method!r}"
        _check(self.training.mode == "sync", f"{method} gossips in synchronous rounds; set training.mode = 'sync'")
        _check(self.aggregation.rule == "dsgd",
               f"{method} mixes public copies with the topology's weights; aggregation.rule = {self.aggregation.rule!r} needs whole models (use 'dsgd')")
        _check(not self.byzantine.nodes, f"{method} trusts every delta (no robust rule); byzantine.nodes must be empty")
        _check(self.schedule.mode == "every", f"{method} keeps copies in step with a message every round; set schedule.mode = 'every'")
        _check(self.topology.peers == "all", f"{method} needs every neighbour every round; set topology.peers = 'all'")
        _check(self.transport.wire_dtype == "float32",
               f"{method} sends float32 values and float32 resyncs; set transport.wire_dtype = 'float32'")

    def replace(self, **changes: Mapping[str, Any]) -> RunConfig:
        """A copy with some keys of some sections changed: ``cfg.replace(training={"lr": 0.1})``."""
        return _apply(self, {section: dict(values) for section, values in changes.items()}, source="code")


# --------------------------------------------------------------------------------------------------
# loading


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Build a :class:`RunConfig` from a TOML file, ``GOSSIP_*`` environment variables and overrides.

    ``overrides`` maps dotted keys (``"training.lr"``) to values; strings are parsed like TOML
    values, so ``"0.1"``, ``"true"`` and ``"[1, 2]"`` work from the command line.
    """
    layers: dict[str, dict[str, Any]] = {}
    if path is not None:
        _merge(layers, _read_toml(Path(path)))
    _merge(layers, _from_env(os.environ if env is None else env))
    if overrides:
        _merge(layers, _from_dotted(overrides, source="--set"))
    return _apply(RunConfig(), layers, source=str(path) if path else "config")


def _read_toml(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a directory, not a TOML file: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: top-level key {section!r} must be a [section]")
    return data


def _section_names() -> list[str]:
    return [f.name for f in fields(RunConfig)]


def _from_env(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    sections = _section_names()
    for name, raw in env.items():
        if not name.startswith("GOSSIP_") or name in _ENV_NOT_CONFIG:
            continue
        rest = name[len("GOSSIP_"):].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            raise ConfigError(f"environment variable {name}: no config section matches (sections: {', '.join(sections)})")
        out.setdefault(section, {})[rest[len(section) + 1:]] = _parse_scalar(raw)
    return out


# Environment variables that belong to the CLI, not to the run config.
_ENV_NOT_CONFIG = frozenset({"GOSSIP_NODE_ID", "GOSSIP_CONFIG", "GOSSIP_LOG_LEVEL"})


def _from_dotted(overrides: Mapping[str, Any], source: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for dotted, value in overrides.items():
        section, sep, key = dotted.partition(".")
        if not sep or not key:
            raise ConfigError(f"{source} {dotted!r}: expected section.key=value, e.g. training.lr=0.1")
        out.setdefault(section, {})[key] = _parse_scalar(value) if isinstance(value, str) else value
    return out


def _parse_scalar(text: str) -> Any:
    """Parse a string as a TOML value when it is one (``0.1``, ``true``, ``[1, 2]``), else keep the string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _merge(into: dict[str, dict[str, Any]], layer: Mapping[str, Mapping[str, Any]]) -> None:
    for section, values in layer.items():
        into.setdefault(section, {}).update(values)


def _apply(base: RunConfig, layers: Mapping[str, Mapping[str, Any]], source: str) -> RunConfig:
    sections = {f.name: f for f in fields(RunConfig)}
    changes: dict[str, Any] = {}
    for section, values in layers.items():
        if section not in sections:
            raise ConfigError(f"{source}: unknown section [{section}]{_did_you_mean(section, sections)}")
        current = getattr(base, section)
        changes[section] = _apply_section(current, section, values, source)
    return dataclasses.replace(base, **changes)


def _apply_section(current: Any, section: str, values: Mapping[str, Any], source: str) -> Any:
    known = {f.name: f for f in fields(current)}
    hints = typing.get_type_hints(type(current))
    coerced: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key {key!r} in [{section}]{_did_you_mean(key, known)}")
        coerced[key] = _coerce(value, hints[key], f"[{section}] {key}")
    return dataclasses.replace(current, **coerced)


def _did_you_mean(word: str, options: Mapping[str, Any] | Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = get_origin(hint)
    if origin is Literal:
        return value  # the section's __post_init__ checks the choice and names it
    if origin in (tuple, Sequence):
        item_type = get_args(hint)[0]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return tuple(_coerce(_parse_scalar(v) if isinstance(v, str) and item_type is not str else v, item_type, where) for v in value)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        return _coerce(value, next(a for a in get_args(hint) if a is not type(None)), where)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where} must be a string, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------------
# writing


def config_to_toml(cfg: RunConfig) -> str:
    """Serialise a config as TOML that :func:`load_config` reads back to an equal config."""
    lines: list[str] = []
    for section in fields(cfg):
        value = getattr(cfg, section.name)
        assert is_dataclass(value)  # internal invariant, not input validation
        lines.append(f"[{section.name}]")
        for f in fields(value):
            lines.append(f"{f.name} = {_toml_value(getattr(value, f.name))}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if value is None:
        raise ConfigError("None cannot be written to TOML")
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")
