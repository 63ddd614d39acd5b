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

import collections
import dataclasses
import difflib
import math
import numbers
import os
import re
import stat
import string
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from gossip.errors import ConfigError

__all__ = [
    "MAX_NODES",
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
    "check_link_value",
    "check_path_text",
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


MAX_NODES = 10_000  # the most nodes a run may have (a process or container each); the memory check refuses far fewer on one machine
MAX_SEED = 2**32 - 1  # seeds derived from it (seed * 1_000_003 + node) stay inside torch's 64-bit generator seeds
MAX_TEXT = 4096  # the longest string setting (PATH_MAX): paths, names, addresses
MAX_CONFIG_BYTES = 1 << 20  # the largest TOML file (or --set / GOSSIP_* value) read; real configs are a few kB
DAY_S = 86_400.0
FOREVER = 1e100  # the bound of attack magnitudes: any finite number an experiment may want to try


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _show(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error message stays one short line whatever was typed."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _name(text: str) -> str:
    """A name or path as typed, or its cut-down repr when it holds characters that would break the line."""
    return text if len(text) <= 200 and text.isprintable() else _show(text, 200)


def _number_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else repr(float(x))


@dataclass(frozen=True)
class _Range:
    """The values a numeric setting may take: every section checks its fields against theirs on load."""

    kind: type  # int or float
    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    max_len: int | None = None  # set for a list of such numbers: its longest length

    def __str__(self) -> str:
        if self.kind is int:
            return f"{int(self.lo)}..{int(self.hi)}"
        return f"{'(' if self.lo_open else '['}{_number_text(self.lo)}, {_number_text(self.hi)}{')' if self.hi_open else ']'}"

    def admits(self, value: object) -> bool:
        """Whether ``value`` is a number of this kind (never a bool, NaN or infinity) inside the range."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        if isinstance(value, numbers.Integral):
            value = int(value)
        elif not math.isfinite(value):
            return False
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def checked(self, value: object, where: str) -> Any:
        """``value`` as the field stores it (a float for a float field, a tuple for a list), or ConfigError naming ``where``."""
        what = "an integer" if self.kind is int else "a number"
        if self.max_len is not None:
            ok = isinstance(value, (tuple, list)) and len(value) <= self.max_len and all(self.admits(v) for v in value)
            shown = list(value) if isinstance(value, tuple) else value
            _check(ok, f"{where} must be a list of at most {self.max_len} integers in {self}, got {_show(shown)}")
            return tuple(int(v) for v in value)  # type: ignore[union-attr]
        _check(self.admits(value), f"{where} must be {what} in {self}, got {_show(value)}")
        return float(value) if self.kind is float else int(value)  # type: ignore[arg-type]


def _int(default: int, lo: int, hi: int) -> Any:
    """A field holding an integer in ``lo..hi``."""
    return field(default=default, metadata={"range": _Range(int, lo, hi)})


def _real(default: float, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Any:
    """A field holding a finite number in ``[lo, hi]`` (or an open end)."""
    return field(default=default, metadata={"range": _Range(float, lo, hi, lo_open, hi_open)})


def _ints(lo: int, hi: int, max_len: int) -> Any:
    """A field holding a list of at most ``max_len`` integers in ``lo..hi`` (default: empty)."""
    return field(default=(), metadata={"range": _Range(int, lo, hi, max_len=max_len)})


# C0 and C1 control characters (newline, tab, NUL, DEL, ...) and lone surrogates (bytes of invalid UTF-8 on a command line)
_UNWRITABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _check_text(where: str, text: str) -> None:
    """Refuse a string that would break a file, a path or an address it ends up in."""
    _check(len(text) <= MAX_TEXT, f"{where} is longer than {MAX_TEXT} characters")
    bad = _UNWRITABLE.search(text)
    if bad is not None:
        what = "bytes that are not UTF-8" if "\ud800" <= bad.group() <= "\udfff" else "control characters (newline, tab, ...)"
        raise ConfigError(f"{where} must not contain {what}, got {_show(text)}")


def check_path_text(where: str, text: str) -> None:
    """Refuse a path that a run's files could not hold (a newline in it, say): ConfigError naming ``where``."""
    _check_text(where, text)


def _check_fields(section: Any, name: str) -> None:
    """Check every field of a section: numbers against their ranges, strings for what files and paths cannot hold.

    Runs first in every section's ``__post_init__``, so the checks after it compare real numbers (never NaN).
    """
    for f in fields(section):
        value = getattr(section, f.name)
        where = f"[{name}] {f.name}"
        rng = f.metadata.get("range")
        if rng is not None:
            object.__setattr__(section, f.name, rng.checked(value, where))
        elif isinstance(value, str):
            _check_text(where, value)
        elif isinstance(value, tuple):
            _check(len(value) <= MAX_NODES, f"{where} has more than {MAX_NODES} entries")
            for item in value:
                if isinstance(item, str):
                    _check_text(where, item)


def _check_choice(section: str, key: str, value: object, kind: Any) -> None:
    choices = get_args(kind)
    _check(value in choices, f"[{section}] {key} = {_show(value)} is not one of {', '.join(map(repr, choices))}")


def share_of(fraction: float, n: int, *, up: bool = False) -> int:
    """⌊fraction · n⌋ (⌈fraction · n⌉ with ``up``), exact for the fraction as it was written.

    Why: the float product is not the product of the decimals a user writes, so ``int(0.29 * 100)``
    is 28 and ``math.ceil(0.07 * 100)`` is 8. A float's shortest ``repr`` is the decimal that was
    typed (TOML, ``--set``), so the count is computed from it in integer arithmetic (no ``fractions``
    import: it pulls in ``decimal``, ~0.5 MiB in every node). ``fraction`` must be finite.
    """
    mantissa, _, exponent = repr(float(fraction)).lower().partition("e")
    whole, _, decimals = mantissa.partition(".")
    numerator, denominator = int(whole + decimals), 10 ** len(decimals)
    shift = int(exponent or 0)
    numerator, denominator = (numerator * 10**shift, denominator) if shift >= 0 else (numerator, denominator * 10**-shift)
    return -((-numerator * n) // denominator) if up else (numerator * n) // denominator


@dataclass(frozen=True)
class RunSection:
    """What the run is: its size, its seed, where its results go."""

    nodes: int = _int(0, 0, MAX_NODES)  # 0 = take N from a topology file; generators need it set
    seed: int = _int(0, 0, MAX_SEED)  # one seed for split, init, batches: same config + seed = same results
    name: str = ""  # run directory name (one path component); empty = timestamp + topology
    out_dir: str = "runs"  # parent of the run directories gossip launch creates
    # a node logs a round's line at most this often, plus its first and last round and any round whose
    # missing neighbours changed (gossip.node.roundlog); the JSONL has every round. 0 = a line every round.
    log_interval_s: float = _real(1.0, 0, DAY_S)

    def __post_init__(self) -> None:
        _check_fields(self, "run")
        _check(
            self.name not in (".", "..") and "/" not in self.name and "\\" not in self.name,
            f"[run] name must be one directory name under out_dir (no '/', not '.' or '..'), got {_show(self.name)}",
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
        _check_fields(self, "topology")
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
    alpha: float = _real(0.5, 0.001, 1000)  # Dirichlet concentration; smaller = more skewed
    shards_per_node: int = _int(2, 1, 10_000)
    min_size: int = _int(0, 0, 10_000_000)  # fewest samples a node may get; 0 = the scheme's default (classes for dirichlet)
    batch_size: int = _int(32, 1, 1_000_000)
    # The seeded Gaussian-cluster dataset ("synthetic") only: its size and shape. Benchmarks use it to
    # set the input width a model needs (64 features for a 64-200-10 MLP, 1000 for 1000-1000-10).
    # The launcher also checks that (train + test) x features fits in memory before generating it.
    features: int = _int(64, 1, 1_000_000)
    classes: int = _int(10, 2, 100_000)
    train_samples: int = _int(4000, 1, 10_000_000)
    test_samples: int = _int(1000, 1, 10_000_000)

    def __post_init__(self) -> None:
        _check_fields(self, "data")
        _check_choice("data", "partition", self.partition, PartitionKind)
        if self.dataset.strip().lower() != "synthetic":
            changed = [k for k, v in self.dataset_options(all_keys=True).items() if v != _SYNTHETIC_DEFAULTS[k]]
            _check(not changed, f"[data] {changed[0] if changed else ''} applies to dataset = 'synthetic' only, not {self.dataset!r}")

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
    # Each width 1..1000000, at most 32 layers; the launcher counts the parameters (no model built) and
    # refuses a model that cannot fit in memory.
    hidden: tuple[int, ...] = _ints(1, 1_000_000, 32)

    def __post_init__(self) -> None:
        _check_fields(self, "model")
        _check_choice("model", "init", self.init, InitKind)
        _check(
            not self.hidden or self.name in _MODELS_WITH_HIDDEN,
            f"[model] hidden applies to {' and '.join(_MODELS_WITH_HIDDEN)} only, not {self.name!r}",
        )

    def options(self) -> dict[str, tuple[int, ...]]:
        """The keyword options ``build_model`` takes for this model (``hidden`` when set)."""
        return {"hidden": self.hidden} if self.hidden else {}


@dataclass(frozen=True)
class TrainingConfig:
    """Local optimisation between two communications (adapt-then-combine D-SGD)."""

    rounds: int = _int(50, 1, 10_000_000)
    local_steps: int = _int(1, 0, 100_000)  # minibatch steps per round, before the gossip step
    optimizer: OptimizerKind = "sgd"
    lr: float = _real(0.05, 0, 1e6)  # large values make a run diverge on purpose (tests of the divergence stop)
    momentum: float = _real(0.9, 0, 1, hi_open=True)  # local heavy-ball momentum; its state never travels
    weight_decay: float = _real(0.0, 0, 1)
    eval_every: int = _int(1, 1, 10_000_000)  # evaluate on the test set every k rounds (and always at the last)
    # sync: D-SGD rounds (send, wait for the round's models, mix). async: gossip learning after
    # Ormándi et al. 2013 — every period_s a node takes its local steps and pushes its model to one
    # random neighbour; it merges whatever arrives as it arrives. No rounds, no waiting.
    mode: ModeKind = "sync"
    period_s: float = _real(0.0, 0, DAY_S)  # async: pause between two pushes (0 = as fast as the node trains)
    duration_s: float = _real(0.0, 0, 30 * DAY_S)  # async: time budget; 0 = none (then `rounds` pushes are the budget)
    # async: push-sum (Kempe et al. 2003) — a push hands over half the sender's mass w, the receiver
    # weighs models by mass. Keeps the network average exact when sends are one-way.
    push_sum: bool = False
    # sync: write nodes/node-<i>.ckpt.npz every this many rounds (and always at the end or on SIGTERM),
    # so a node killed with SIGKILL restarts (`gossip node --resume`) from at most this many rounds back.
    # 0 = only at the end. A checkpoint is an fsynced temp file renamed over the old one: ~ms per write.
    checkpoint_every: int = _int(10, 0, 10_000_000)
    # ... and at least this many seconds apart: a run of millisecond rounds would otherwise spend a tenth
    # of its time in fsync (measured: 13 % of a node's samples at 15k parameters). 0 = every checkpoint_every.
    checkpoint_interval_s: float = _real(5.0, 0, DAY_S)

    def __post_init__(self) -> None:
        _check_fields(self, "training")
        _check_choice("training", "mode", self.mode, ModeKind)
        _check_choice("training", "optimizer", self.optimizer, OptimizerKind)


@dataclass(frozen=True)
class TransportConfig:
    """Where nodes listen and how long they wait for each other.

    A node's address is ``addresses[id]`` when the list is given (``gossip launch`` writes one),
    else ``address_template`` with ``{id}`` and ``{port}`` (= ``base_port + id``) filled in — so a
    compose or Kubernetes deployment names peers by DNS (``tcp://gossip-{id}.gossip:7000``) and a
    laptop by port. ``listen`` overrides what the node binds (``tcp://0.0.0.0:7000`` in a container).
    Every address is checked: ``tcp://HOST:PORT`` (a port in 1..65535 once filled in, a host without
    spaces) or ``ipc://PATH`` (at most 107 bytes); a template fills in only ``{id}`` and ``{port}``. The
    list and node 0's address when the config loads, any other node's when it is asked for (a node
    asks for its own and its neighbours' before it binds). ``gossip launch`` picks its own addresses
    (the template gives the host), so only ``gossip node`` uses the template's ports. The template
    ``ipc://`` alone lets ``gossip launch --ipc`` pick the names.
    """

    address_template: str = "tcp://127.0.0.1:{port}"
    base_port: int = _int(7000, 1, 65535)  # node i gets base_port + i, which must be a port too
    addresses: tuple[str, ...] = ()
    listen: str = ""  # empty = bind the node's own address
    round_timeout_s: float = _real(30.0, 0, DAY_S, lo_open=True)  # wait this long for neighbours' models, then mix what arrived
    startup_timeout_s: float = _real(120.0, 0, DAY_S, lo_open=True)  # deadline for every neighbour to say hello
    max_rounds_ahead: int = _int(2, 1, 1000)  # buffer neighbours' models this many rounds ahead of ours
    queue_messages: int = _int(4, 1, 10_000)  # ZeroMQ high-water mark per peer, in messages (bounds memory)
    max_message_bytes: int = _int(0, 0, 2**40)  # 0 = model size + header slack; larger frames never reach Python
    wire_dtype: WireDtype = "float32"  # int8: block-wise symmetric quantisation (gossip.net.codec); models stay float32
    # sync rounds hand ZeroMQ the live model: zero-copy from 1 MiB (mixed only once ZeroMQ let go), below
    # copied by the socket inside send; false: always send a snapshot copy (async and link emulation always do)
    zero_copy: bool = True

    def __post_init__(self) -> None:
        _check_fields(self, "transport")
        _check_choice("transport", "wire_dtype", self.wire_dtype, WireDtype)
        for address in self.addresses:
            _check_endpoint("[transport] addresses", address, address)
        if self.address_template != "ipc://":
            self.address_of(0)
        if self.listen:
            self.listen_address(0)

    def address_of(self, node_id: int) -> str:
        """The address peers use to reach ``node_id``."""
        if self.addresses:
            if node_id >= len(self.addresses):
                raise ConfigError(f"[transport] addresses has {len(self.addresses)} entries, no address for node {node_id}")
            return self.addresses[node_id]
        return self._fill("address_template", self.address_template, node_id)

    def listen_address(self, node_id: int) -> str:
        """The address ``node_id`` binds."""
        if self.listen:
            return self._fill("listen", self.listen, node_id, bind=True)
        return self.address_of(node_id)

    def _fill(self, key: str, template: str, node_id: int, *, bind: bool = False) -> str:
        """``template`` with ``{id}`` and ``{port}`` (= base_port + id) filled in, checked as an address."""
        where = f"[transport] {key}"
        try:
            parts = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ConfigError(f"{where} {_show(template)}: {exc}") from None
        for _text, name, spec, conversion in parts:
            # no attribute or index look-ups ({id.real}), no conversions, no widths that could build a huge string
            _check(
                name is None or (name in ("id", "port") and not conversion and _FORMAT_SPEC.fullmatch(spec or "") is not None),
                f"{where} {_show(template)}: only {{id}} and {{port}} can be filled in (e.g. tcp://gossip-{{id}}:7000)",
            )
        address = template.format(id=node_id, port=self.base_port + node_id)
        _check_endpoint(where, address, template, node_id=node_id, bind=bind)
        return address


_FORMAT_SPEC = re.compile(r"0?\d{0,2}d?")  # e.g. {id:03d}: zero-padded, at most 99 wide
_IPC_PATH_BYTES = 107  # sockaddr_un's sun_path holds 108 bytes with the terminating NUL


def _check_endpoint(where: str, address: str, source: str, *, node_id: int | None = None, bind: bool = False) -> None:
    """Refuse an address ZeroMQ cannot bind or connect: ``tcp://HOST:PORT`` or ``ipc://PATH``.

    A bind address may use port ``*`` or 0 (any free port); a peer's address needs a real one.
    """
    scheme, sep, rest = address.partition("://")
    filled = f" (node {node_id}: {_show(address)})" if node_id is not None and address != source else ""
    problem = ""
    if not sep or scheme not in ("tcp", "ipc"):
        problem = "must start with tcp:// or ipc://"
    elif scheme == "ipc":
        if not rest:
            problem = "names no socket path"
        elif len(rest.encode("utf-8", "surrogatepass")) > _IPC_PATH_BYTES:
            problem = f"has a socket path longer than {_IPC_PATH_BYTES} bytes"
    else:
        host, colon, port = rest.rpartition(":")
        lowest = 0 if bind else 1
        if not colon or not host:
            problem = "needs HOST:PORT after tcp://"
        elif any(c.isspace() for c in host):
            problem = "has a space in its host"
        elif not (bind and port == "*") and not (port.isascii() and port.isdigit() and len(port) <= 5 and lowest <= int(port) <= 65535):
            problem = f"port {_show(port)} is not in {lowest}..65535"
    if problem:
        raise ConfigError(f"{where} {_show(source)}{filled}: {problem}")


ClipRule = Literal["he", "second-largest"]
AttackKind = Literal["none", "sign-flip", "gaussian", "label-flip", "alie", "ipm", "dissensus", "silent"]


@dataclass(frozen=True)
class AggregationConfig:
    """How a node combines its model with what arrived (default: D-SGD mixing with the topology's weights).

    The robust rules (``gossip/algorithms/robust.py``) run on the node's own model plus the models
    that arrived this round; ``f`` is the number of Byzantine *neighbours* each node must tolerate
    (a local bound: launch refuses a run in which some node's degree cannot support it).
    """

    rule: RuleKind = "dsgd"  # dsgd | variance (settings in [variance]) | a robust rule (below)
    f: int = _int(1, 0, MAX_NODES)  # Byzantine neighbours to tolerate per node (krum, multi-krum, trimmed-mean, adaptive clipping)
    trim_beta: float = _real(0.0, 0, 0.5, hi_open=True)  # trimmed-mean: trim floor(beta * N) per side of the N inputs; 0 = trim f per side
    krum_m: int = _int(0, 0, MAX_NODES)  # multi-krum: average the m best-scored inputs; 0 = N - f (Blanchard et al. 2017)
    clip_tau: float = _real(0.0, 0, FOREVER)  # clipped-gossip radius; 0 = adaptive (see clip_rule)
    clip_rule: ClipRule = "he"  # adaptive radius: He et al.'s formula, or the (f+1)-th largest distance (f = 1: the authors' code)
    balance_gamma: float = _real(0.7, 0, 1e6, lo_open=True)  # balance: accept a neighbour within gamma * exp(-kappa * t/T) * ||own model||
    balance_kappa: float = _real(1.0, 0, 1e6)
    balance_alpha: float = _real(0.5, 0, 1)  # balance: weight kept on the own model

    def __post_init__(self) -> None:
        _check_fields(self, "aggregation")
        _check_choice("aggregation", "rule", self.rule, RuleKind)
        _check_choice("aggregation", "clip_rule", self.clip_rule, ClipRule)


@dataclass(frozen=True)
class ByzantineConfig:
    """Which nodes misbehave and how (``gossip/algorithms/attacks.py``); empty ``nodes`` = an honest run.

    Attackers speak the same wire protocol as everyone else and never flag themselves: the defence
    must come from the honest nodes' aggregation rule.
    """

    nodes: tuple[int, ...] = _ints(0, MAX_NODES - 1, MAX_NODES)
    attack: AttackKind = "none"
    # Attack magnitudes may be anything finite (1e39 overflows float32 on purpose: the wire must refuse it).
    scale: float = _real(1.0, 0, FOREVER, lo_open=True)  # sign-flip: send -scale * own model
    noise_std: float = _real(1.0, 0, FOREVER)  # gaussian: send own model + N(0, noise_std^2 I)
    alie_z: float = _real(0.0, -FOREVER, FOREVER)  # alie: 0 = z_max from Baruch et al.'s formula for the target's (n, f); else this z
    ipm_epsilon: float = _real(0.1, 0, FOREVER, lo_open=True)  # ipm: send -epsilon * mean(honest models received)
    dissensus_epsilon: float = _real(
        1.5, 0, FOREVER, lo_open=True
    )  # dissensus: push each target away from its neighbourhood by this factor
    silent_from_round: int = _int(0, 0, 10_000_000)  # silent: stop sending models from this round on (0 = never send; >0 = a crash mid-run)
    wait_fraction: float = _real(
        0.5, 0, 1, lo_open=True, hi_open=True
    )  # omniscient attacks wait this fraction of round_timeout_s for the honest models

    def __post_init__(self) -> None:
        _check_fields(self, "byzantine")
        _check_choice("byzantine", "attack", self.attack, AttackKind)
        dupes = sorted(n for n, times in collections.Counter(self.nodes).items() if times > 1)
        _check(not dupes, f"[byzantine] nodes lists node {dupes[0] if dupes else ''} twice")
        _check(
            not self.nodes or self.attack != "none",
            f"[byzantine] nodes = {_show(list(self.nodes))} but attack = 'none'; name the attack they play",
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
    beta: float = _real(0.5, 0, 1, hi_open=True)  # own-model weight in the conservative average (paper setup: 0.5)
    # others: mean variance of the received models (the paper's FollowOthers); self: the node's own
    # model before averaging; conservative: the same beta (or mixing) mix of both.
    target: VarianceTarget = "others"
    layers: LayersKind = "weights"  # weights: tensors of dim >= 2 only; all: biases and norm too
    eps: float = _real(0.0, 0, 1)  # added to both variances; 1e-4 reproduces DFL_torch, 0 the original C++

    def __post_init__(self) -> None:
        _check_fields(self, "variance")
        _check_choice("variance", "self_weight", self.self_weight, SelfWeightKind)
        _check_choice("variance", "target", self.target, VarianceTarget)
        _check_choice("variance", "layers", self.layers, LayersKind)


@dataclass(frozen=True)
class ScheduleConfig:
    """When a node communicates (sync mode); rounds without communication are local training only.

    every: each round. periodic: every ``period`` rounds. random: the sparse random pull of Zhu et al.
    2025 — each round a node pulls one random neighbour with ``probability`` and mixes 1/2-1/2 (on
    the complete graph: any node). window: every round inside ``[window_start, window_end)`` (fractions
    of the rounds), ``outside`` elsewhere. none: no communication at all (until the final merge).
    """

    mode: ScheduleKind = "every"
    period: int = _int(1, 1, 10_000_000)
    probability: float = _real(0.2, 0, 1)
    window_start: float = _real(0.0, 0, 1)
    window_end: float = _real(1.0, 0, 1)
    outside: OutsideKind = "none"

    def __post_init__(self) -> None:
        _check_fields(self, "schedule")
        _check_choice("schedule", "mode", self.mode, ScheduleKind)
        _check(
            self.window_start < self.window_end,
            f"[schedule] need 0 <= window_start < window_end <= 1, got {self.window_start}, {self.window_end}",
        )
        _check_choice("schedule", "outside", self.outside, OutsideKind)


@dataclass(frozen=True)
class MergeConfig:
    """The single global merge at the end (Zhu et al. 2025): every live node ends with the exact average."""

    enabled: bool = False
    timeout_s: float = _real(30.0, 0, DAY_S, lo_open=True)  # per phase: how long to wait for the other nodes' models and views
    calibration_batches: int = _int(20, 1, 100_000)  # BatchNorm statistics re-estimated on this many local batches

    def __post_init__(self) -> None:
        _check_fields(self, "merge")


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
    topk_fraction: float = _real(0.05, 0, 0.5, lo_open=True)
    # consensus step size: x += gamma * sum_j W_ij (x_hat_j - x_hat). Too large and the copies' errors
    # grow instead of shrinking (CHOCO's gamma bound shrinks with the share sent); too small and the
    # models drift apart while training. 0 = 4 * topk_fraction, capped at 1: stable for shares
    # 0.01..0.5 in a consensus simulation on an 8-node ring (6x diverges from 0.1 up); see README.
    choco_gamma: float = _real(0.0, 0, 1)
    # send the public copy in full every this many rounds: the only way back into a receiver's mix after a
    # loss the sender cannot see (lost on the way, late, refused), so there is no "never"
    # (at least 1: without resyncs a lost delta leaves its sender out of the mix for good)
    resync_every: int = _int(50, 1, 10_000_000)

    def __post_init__(self) -> None:
        _check_fields(self, "compression")
        _check_choice("compression", "method", self.method, CompressionKind)

    @property
    def gamma(self) -> float:
        """The consensus step size in use: ``choco_gamma``, or 4 * ``topk_fraction`` (at most 1) when it is 0."""
        return self.choco_gamma or min(1.0, 4 * self.topk_fraction)


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus endpoint of each node (``/metrics`` and ``/healthz``)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    # node i serves on base_port + i (which must be a port too) unless ports or port is given; 0 = any free port
    base_port: int = _int(9100, 0, 65535)
    ports: tuple[int, ...] = _ints(0, 65535, MAX_NODES)
    # > 0: every node serves on this one port. For one node per host (containers, pods, network
    # namespaces), where each node has its own address and Prometheus scrapes name:port.
    port: int = _int(0, 0, 65535)

    def __post_init__(self) -> None:
        _check_fields(self, "metrics")
        _check(
            bool(self.host) and not any(c.isspace() for c in self.host),
            f"[metrics] host must be a host name or address, got {_show(self.host)}",
        )

    def port_of(self, node_id: int) -> int:
        """The metrics port of ``node_id``."""
        if self.port:
            return self.port
        if self.ports:
            if node_id >= len(self.ports):
                raise ConfigError(f"[metrics] ports has {len(self.ports)} entries, no port for node {node_id}")
            return self.ports[node_id]
        if not self.base_port:
            return 0
        _check(
            self.base_port + node_id <= 65535,
            f"[metrics] base_port {self.base_port} + node {node_id} = {self.base_port + node_id} is past port 65535",
        )
        return self.base_port + node_id


@dataclass(frozen=True)
class SecurityConfig:
    """Transport security and the limits that keep a hostile peer from exhausting a node.

    Without CURVE the network is trusted: a sender is whoever its routing id says (see README,
    "Threat model"). With CURVE every link is encrypted and a node admits only its neighbours' keys.
    """

    curve: bool = False
    keys_dir: str = ""  # node-<i>.key and node-<i>.key_secret; gossip launch makes them when empty
    max_messages_per_s: float = _real(1000.0, 0, 1e9)  # per sender, token bucket; 0 = no limit
    burst_messages: int = _int(100, 1, 1_000_000)
    # inbound connections a node holds at once (gossip.net.connections); 0 = sized from the peers and `ulimit -n`
    max_connections: int = _int(0, 0, 1_000_000)
    max_connections_per_address: int = _int(0, 0, 1_000_000)  # 0 = the number of nodes that may connect, plus 8
    # a connection that has not finished its ZeroMQ (and CURVE) handshake by then is closed
    handshake_timeout_s: float = _real(10.0, 0, 3600, lo_open=True)

    def __post_init__(self) -> None:
        _check_fields(self, "security")


@dataclass(frozen=True)
class LinksConfig:
    """Link emulation by the sending node (``gossip/net/linkemu.py``): delay, jitter, loss and bandwidth per edge.

    Each edge's own GraphML attributes (``delay_ms``, ``jitter_ms``, ``loss``, ``bandwidth_mbit``; see
    topologies/README.md) apply when ``enabled``; the values here apply to every edge that does not carry
    that attribute. All zero and no attributes = no emulation (the default: a plain graph costs nothing).
    It needs no root and works anywhere; kernel-level faults (tests/e2e/test_netfaults.py) are the check.
    """

    # The same ranges hold for each edge's attributes, so that no link can hold a run up for long: a
    # delay of at most a minute, and a rate of at least 1 kbit/s (the launcher also refuses a link on
    # which no model could arrive within round_timeout_s).
    enabled: bool = True  # apply the topology file's link attributes
    delay_ms: float = _real(0.0, 0, 60_000)  # one-way delay added to every message
    jitter_ms: float = _real(0.0, 0, 60_000)  # uniform in [-jitter, +jitter] around the delay (never below 0)
    loss: float = _real(0.0, 0, 1)  # probability that a message is dropped (seeded by run seed, sender, receiver)
    # link rate: a message occupies the link for size / rate; 0 = unlimited, else 0.001 (1 kbit/s) .. 1000000
    bandwidth_mbit: float = _real(0.0, 0, 1e6)

    def __post_init__(self) -> None:
        _check_fields(self, "links")
        check_link_value("bandwidth_mbit", self.bandwidth_mbit, "[links] bandwidth_mbit")


@dataclass(frozen=True)
class FaultsConfig:
    """Deliberate faults for tests and research: make some nodes stragglers. Never set in production runs."""

    slow_nodes: tuple[int, ...] = _ints(0, MAX_NODES - 1, MAX_NODES)  # these nodes are stragglers
    step_delay_s: float = _real(0.0, 0, 3600)  # extra seconds each local SGD step of a slow node takes (an await: it still receives)

    def __post_init__(self) -> None:
        _check_fields(self, "faults")


_MIN_BANDWIDTH_MBIT = 0.001


def check_link_value(key: str, value: object, where: str) -> float:
    """A link setting (``[links]`` or an edge's attribute) as a float, or ConfigError naming ``where``.

    One rule for both, so that a topology file cannot set what ``[links]`` refuses: delay and jitter in
    0..60000 ms, loss a probability, bandwidth 0 (unlimited) or 0.001..1000000 Mbit/s.
    """
    number = _range_of(LinksConfig, key).checked(value, where)
    _check(
        key != "bandwidth_mbit" or number == 0 or number >= _MIN_BANDWIDTH_MBIT,
        f"{where} must be 0 (unlimited) or at least {_MIN_BANDWIDTH_MBIT} Mbit/s, got {_show(value)}",
    )
    return float(number)


def _range_of(cls: type, key: str) -> _Range:
    return next(f.metadata["range"] for f in fields(cls) if f.name == key)


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
            _check(
                self.schedule.mode == "every",
                "[schedule] applies to sync rounds; async mode pushes every period_s (set schedule.mode = 'every')",
            )
            _check(self.topology.peers == "all", "[topology] peers = 'one-peer-exponential' needs training.mode = 'sync'")
            _check(
                not (self.training.push_sum and self.aggregation.rule == "variance" and self.variance.self_weight == "beta"),
                "[training] push_sum weighs models by mass; [variance] self_weight = 'beta' would replace those weights (use 'mixing')",
            )
            # a robust rule needs a round's set of inputs; async merges one model at a time, and the
            # attacker role is played in synchronous rounds (an async "attacker" would quietly be honest)
            _check(
                self.aggregation.rule in ("dsgd", "variance"),
                f"[aggregation] rule = {self.aggregation.rule!r} needs a round's set of models; async mode merges one at a time (use training.mode = 'sync')",
            )
            _check(not self.byzantine.nodes, "[byzantine] attacks are played in synchronous rounds; set training.mode = 'sync'")
        else:
            _check(
                not self.training.push_sum,
                "[training] push_sum needs mode = 'async' (sync rounds keep the average with doubly stochastic weights)",
            )
        # the merge is an exact average of every model by design: one attacker would poison every node
        _check(
            not (self.merge.enabled and self.byzantine.nodes),
            "[merge] the single global merge averages every model and is not Byzantine-robust; disable merge.enabled or byzantine.nodes",
        )
        if self.topology.peers == "one-peer-exponential":
            _check(
                self.schedule.mode != "random" and self.schedule.outside != "random",
                "[schedule] random pull picks its own peer; it does not combine with topology.peers = 'one-peer-exponential'",
            )

    def _check_compression(self) -> None:
        """CHOCO-gossip mixes public copies with doubly stochastic weights every round: refuse what would break that."""
        method = f"[compression] method = {self.compression.method!r}"
        _check(self.training.mode == "sync", f"{method} gossips in synchronous rounds; set training.mode = 'sync'")
        _check(
            self.aggregation.rule == "dsgd",
            f"{method} mixes public copies with the topology's weights; aggregation.rule = {self.aggregation.rule!r} needs whole models (use 'dsgd')",
        )
        _check(not self.byzantine.nodes, f"{method} trusts every delta (no robust rule); byzantine.nodes must be empty")
        _check(self.schedule.mode == "every", f"{method} keeps copies in step with a message every round; set schedule.mode = 'every'")
        _check(self.topology.peers == "all", f"{method} needs every neighbour every round; set topology.peers = 'all'")
        _check(
            self.transport.wire_dtype == "float32",
            f"{method} sends float32 values and float32 resyncs; set transport.wire_dtype = 'float32'",
        )

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
    return _apply(RunConfig(), layers, source=_name(str(path)) if path else "config")


def _read_toml(path: Path) -> dict[str, dict[str, Any]]:
    data = _parse_toml(_read_capped(path), _name(str(path)))
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{_name(str(path))}: top-level key {_show(section)} must be a [section]")
    return data


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _read_capped(path: Path) -> str:
    """The text of a regular file of at most ``MAX_CONFIG_BYTES``; anything else is refused before it is read.

    Opened non-blocking, so that a FIFO with no writer does not hang the open, then checked on the open
    descriptor: /dev/zero or a pipe would otherwise be read until memory runs out.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {_name(str(path))}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {_name(str(path))}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((what for test, what in _FILE_KINDS if test(info.st_mode)), "not a regular file")
            raise ConfigError(f"config path {_name(str(path))} is {kind}, not a TOML file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {_name(str(path))} is larger than {MAX_CONFIG_BYTES // 1024} KiB; a run config is a few kB")
        data = b""
        while len(data) <= MAX_CONFIG_BYTES:  # a read may return less than asked (/proc, network file systems)
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {_name(str(path))} is larger than {MAX_CONFIG_BYTES // 1024} KiB; a run config is a few kB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{_name(str(path))}: not a UTF-8 text file") from None


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    """``tomllib.loads``, with everything it can raise on hostile text turned into one ConfigError line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses per level of nested arrays and inline tables
        raise ConfigError(f"{source}: invalid TOML: values nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4300 digits (sys.get_int_max_str_digits)
        raise ConfigError(f"{source}: invalid TOML: {_show(str(exc), 100)}") from None


def _section_names() -> list[str]:
    return [f.name for f in fields(RunConfig)]


def _from_env(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    sections = _section_names()
    for name, raw in env.items():
        if not name.startswith("GOSSIP_") or name in _ENV_NOT_CONFIG:
            continue
        rest = name[len("GOSSIP_") :].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            raise ConfigError(f"environment variable {name}: no config section matches (sections: {', '.join(sections)})")
        out.setdefault(section, {})[rest[len(section) + 1 :]] = _parse_scalar(raw, name)
    return out


# Environment variables that belong to the CLI, not to the run config.
_ENV_NOT_CONFIG = frozenset({"GOSSIP_NODE_ID", "GOSSIP_CONFIG", "GOSSIP_LOG_LEVEL"})


def _from_dotted(overrides: Mapping[str, Any], source: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for dotted, value in overrides.items():
        section, sep, key = dotted.partition(".")
        if not sep or not key:
            raise ConfigError(f"{source} {dotted!r}: expected section.key=value, e.g. training.lr=0.1")
        out.setdefault(section, {})[key] = _parse_scalar(value, f"{source} {dotted}") if isinstance(value, str) else value
    return out


def _parse_scalar(text: str, source: str = "value") -> Any:
    """Parse a string as a TOML value when it is one (``0.1``, ``true``, ``[1, 2]``), else keep the string.

    Exactly one value: ``0.1\n[run]\nseed = 1`` stays a string (which the key's own check then refuses).
    """
    _check(len(text) <= MAX_CONFIG_BYTES, f"{source}: value longer than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        parsed = tomllib.loads(f"v = {text}")
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        return text
    return parsed["v"] if list(parsed) == ["v"] else text


def _merge(into: dict[str, dict[str, Any]], layer: Mapping[str, Mapping[str, Any]]) -> None:
    for section, values in layer.items():
        into.setdefault(section, {}).update(values)


def _apply(base: RunConfig, layers: Mapping[str, Mapping[str, Any]], source: str) -> RunConfig:
    sections = {f.name: f for f in fields(RunConfig)}
    changes: dict[str, Any] = {}
    for section, values in layers.items():
        if section not in sections:
            raise ConfigError(f"{source}: unknown section [{_name(section)}]{_did_you_mean(section, sections)}")
        current = getattr(base, section)
        changes[section] = _apply_section(current, section, values, source)
    return dataclasses.replace(base, **changes)


def _apply_section(current: Any, section: str, values: Mapping[str, Any], source: str) -> Any:
    known = {f.name: f for f in fields(current)}
    hints = typing.get_type_hints(type(current))
    coerced: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key {_show(key)} in [{section}]{_did_you_mean(key, known)}")
        coerced[key] = _coerce(value, hints[key], f"[{section}] {key}")
    return dataclasses.replace(current, **coerced)


def _did_you_mean(word: str, options: Mapping[str, Any] | Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1) if len(word) <= 100 else []
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
            raise ConfigError(f"{where} must be a list, got {_show(value)}")
        return tuple(_coerce(_parse_scalar(v) if isinstance(v, str) and item_type is not str else v, item_type, where) for v in value)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        return _coerce(value, next(a for a in get_args(hint) if a is not type(None)), where)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {_show(value)}")
    if hint in (int, float):
        return value  # the section checks it against the field's range, and names the range
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where} must be a string, got {_show(value)}")
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
        return '"' + _TOML_ESCAPE.sub(_toml_escape, value) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if value is None:
        raise ConfigError("None cannot be written to TOML")
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


# What a TOML basic string cannot hold as itself: the quote, the backslash and control characters.
_TOML_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f\ud800-\udfff]')
_TOML_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_escape(match: re.Match[str]) -> str:
    char = match.group()
    if "\ud800" <= char <= "\udfff":  # no TOML escape (nor UTF-8) can write half a character
        raise ConfigError("a string with bytes that are not UTF-8 cannot be written to TOML")
    return _TOML_SHORT.get(char) or f"\\u{ord(char):04x}"
