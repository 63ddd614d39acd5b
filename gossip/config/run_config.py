"""The whole configuration of one run: every section, and the checks that span sections."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gossip.config.combining import AggregationConfig, ByzantineConfig, CompressionConfig, MergeConfig, ScheduleConfig, VarianceConfig
from gossip.config.deployment import FaultsConfig, LinksConfig, MetricsConfig, SecurityConfig, TransportConfig
from gossip.config.fields import check
from gossip.config.membership import MembershipConfig
from gossip.config.overlay import apply_layers
from gossip.config.sections import DataConfig, ModelConfig, RunSection, TopologyConfig, TrainingConfig
from gossip.plugins import AGGREGATOR, ATTACK, DATASET, LOSS, METRIC, MODEL, PARTITION, PluginKind

__all__ = ["RunConfig"]


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
    membership: MembershipConfig = field(default_factory=MembershipConfig)

    def __post_init__(self) -> None:
        if self.compression.method != "none":
            self._check_compression()
        if self.membership.enabled:
            self._check_membership()
        if self.training.mode == "async":
            check(
                self.schedule.mode == "every",
                "[schedule] applies to sync rounds; async mode pushes every period_s (set schedule.mode = 'every')",
            )
            check(self.topology.peers == "all", "[topology] peers = 'one-peer-exponential' needs training.mode = 'sync'")
            check(
                not (self.training.push_sum and self.aggregation.rule == "variance" and self.variance.self_weight == "beta"),
                "[training] push_sum weighs models by mass; [variance] self_weight = 'beta' would replace those weights (use 'mixing')",
            )
            # a robust rule needs a round's set of inputs; async merges one model at a time, and the
            # attacker role is played in synchronous rounds (an async "attacker" would quietly be honest)
            check(
                self.aggregation.rule in ("dsgd", "variance"),
                f"[aggregation] rule = {self.aggregation.rule!r} needs a round's set of models; async mode merges one at a time (use training.mode = 'sync')",
            )
            check(not self.byzantine.nodes, "[byzantine] attacks are played in synchronous rounds; set training.mode = 'sync'")
        else:
            check(
                not self.training.push_sum,
                "[training] push_sum needs mode = 'async' (sync rounds keep the average with doubly stochastic weights)",
            )
        # the merge is an exact average of every model by design: one attacker would poison every node
        check(
            not (self.merge.enabled and self.byzantine.nodes),
            "[merge] the single global merge averages every model and is not Byzantine-robust; disable merge.enabled or byzantine.nodes",
        )
        if self.topology.peers == "one-peer-exponential":
            check(
                self.schedule.mode != "random" and self.schedule.outside != "random",
                "[schedule] random pull picks its own peer; it does not combine with topology.peers = 'one-peer-exponential'",
            )

    def _check_compression(self) -> None:
        """CHOCO-gossip mixes public copies with doubly stochastic weights every round: refuse what would break that."""
        method = f"[compression] method = {self.compression.method!r}"
        check(self.training.mode == "sync", f"{method} gossips in synchronous rounds; set training.mode = 'sync'")
        check(
            self.aggregation.rule == "dsgd",
            f"{method} mixes public copies with the topology's weights; aggregation.rule = {self.aggregation.rule!r} needs whole models (use 'dsgd')",
        )
        check(not self.byzantine.nodes, f"{method} trusts every delta (no robust rule); byzantine.nodes must be empty")
        check(self.schedule.mode == "every", f"{method} keeps copies in step with a message every round; set schedule.mode = 'every'")
        check(self.topology.peers == "all", f"{method} needs every neighbour every round; set topology.peers = 'all'")
        check(
            self.transport.wire_dtype == "float32",
            f"{method} sends float32 values and float32 resyncs; set transport.wire_dtype = 'float32'",
        )

    def _check_membership(self) -> None:
        """An open network has no fixed member list: refuse what needs one."""
        check(
            self.training.mode == "async",
            "[membership] an open network has no fixed member list for a round barrier to wait on; set training.mode = 'async'",
        )
        check(not self.merge.enabled, "[membership] the single global merge needs a fixed member list; disable merge.enabled")
        check(
            self.compression.method == "none",
            "[membership] compression keeps per-neighbour copies of fixed neighbours; set compression.method = 'none'",
        )
        check(
            self.aggregation.rule == "dsgd",
            "[membership] members merge models one at a time with their own weights; set aggregation.rule = 'dsgd'",
        )
        links = self.links
        check(
            not (links.delay_ms or links.jitter_ms or links.loss or links.bandwidth_mbit),
            "[membership] [links] shapes the edges of a fixed topology; leave its delay, jitter, loss and bandwidth at 0",
        )

    def plugins(self) -> tuple[tuple[PluginKind, str], ...]:
        """Every key that may name a plug-in (rule, attack, model, loss, metric, dataset, partition), with its kind and the name written there (shipped or not)."""
        return (
            (AGGREGATOR, self.aggregation.rule),
            (ATTACK, self.byzantine.attack),
            (MODEL, self.model.name),
            (LOSS, self.training.loss),
            (METRIC, self.training.metric),
            (DATASET, self.data.dataset),
            (PARTITION, self.data.partition),
        )

    def plugin_names(self) -> tuple[str, ...]:
        """The names those keys hold: what a node process imports to run (the import paths among them)."""
        return tuple(name for _, name in self.plugins())

    def replace(self, **changes: Mapping[str, Any]) -> RunConfig:
        """A copy with some keys of some sections changed: ``cfg.replace(training={"lr": 0.1})``."""
        return apply_layers(self, {section: dict(values) for section, values in changes.items()}, source="code")
