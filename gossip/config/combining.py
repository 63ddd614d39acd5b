"""The sections that say how a node combines models: aggregation, attackers, variance correction, the
communication schedule, the single merge and compression. Like :mod:`gossip.config.sections`, the same on every
node of a run and covered by its run id; a field's trailing comment is its documentation.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from gossip.config.choices import (
    AttackKind,
    ClipRule,
    CompressionKind,
    LayersKind,
    OutsideKind,
    RuleKind,
    ScheduleKind,
    SelfWeightKind,
    VarianceTarget,
)
from gossip.config.fields import DAY_S, FOREVER, MAX_NODES, check, check_choice, check_fields, integer, integers, real, show
from gossip.config.sections import check_plugin
from gossip.plugins import (
    AGGREGATOR,
    ATTACK,
)

__all__ = ["AggregationConfig", "ByzantineConfig", "CompressionConfig", "MergeConfig", "ScheduleConfig", "VarianceConfig"]


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
