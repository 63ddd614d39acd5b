"""Choice lists stated in two places agree: config's ``Literal`` types and the code that acts on each value.

A value that config accepts but the code does not know would load fine and fail later, in a node; a
value the code knows but config refuses could never be used. Where one list cannot be derived from the
other (the lower layer cannot import the upper), these tests pin them together.
"""

from __future__ import annotations

import re
from typing import get_args

import pytest
from torch import nn

from gossip.algorithms import build_aggregator
from gossip.algorithms.attacks import ATTACKS, build_attack
from gossip.algorithms.base import SHIPPED_RULES
from gossip.config import AggregationConfig, ByzantineConfig, DataConfig, ModelConfig, TrainingConfig
from gossip.config.choices import AttackKind, DatasetKind, LossKind, MetricKind, ModelKind, PartitionKind, RuleKind
from gossip.data import DATASET_NAMES, PARTITION_SCHEMES
from gossip.data.datasets import SYNTHETIC_DEFAULTS
from gossip.data.split import SHIPPED_PARTITIONS
from gossip.errors import ConfigError
from gossip.learn.flat import flatten_
from gossip.learn.models import build_model, model_names
from gossip.learn.objectives import build_loss, build_metric


@pytest.mark.parametrize("rule", get_args(RuleKind))
def test_every_configurable_rule_builds_an_aggregator(rule: str) -> None:
    """``[aggregation] rule`` accepts exactly the names the aggregator factory builds."""
    layout = flatten_(nn.Linear(4, 2)).layout

    assert hasattr(build_aggregator(AggregationConfig(rule=rule), layout), "aggregate")


def test_the_factorys_shipped_rules_are_configs_choices() -> None:
    """The factory's table of shipped rules is exactly config's list of shipped names."""
    assert SHIPPED_RULES == get_args(RuleKind)


def test_a_rule_config_does_not_ship_is_a_plug_in_to_the_factory_and_refused_when_nothing_registers_it() -> None:
    """An unknown name is never a default rule: the factory looks it up as an entry point and refuses it in one line."""
    cfg = AggregationConfig()
    object.__setattr__(cfg, "rule", "mean")

    with pytest.raises(ConfigError, match=re.escape("rule = 'mean': no entry point of that name in group 'gossip.aggregators'")):
        build_aggregator(cfg, flatten_(nn.Linear(4, 2)).layout)


def test_configurable_attacks_are_the_attacks_there_are() -> None:
    """``[byzantine] attack`` names every attack the attack factory builds, plus 'none' for an honest run."""
    assert set(get_args(AttackKind)) == {"none", *ATTACKS}
    for attack in ATTACKS:
        assert build_attack(ByzantineConfig(nodes=(0,), attack=attack), seed=0).name == attack


def test_configurable_partitions_are_the_partition_schemes() -> None:
    """``[data] partition`` takes exactly the schemes gossip.data.partition splits by."""
    assert get_args(PartitionKind) == PARTITION_SCHEMES


def test_the_shipped_datasets_and_partitions_are_configs_choices() -> None:
    """config tells a shipped dataset or split (no ``options``) from a plug-in by these lists: they are the loaders' and splits' registries."""
    assert get_args(DatasetKind) == DATASET_NAMES
    assert get_args(PartitionKind) == tuple(SHIPPED_PARTITIONS)


def test_the_synthetic_datasets_defaults_are_configs_defaults() -> None:
    """``[data]``'s synthetic keys default to what load_dataset('synthetic') uses without options."""
    assert DataConfig(dataset="synthetic").dataset_options() == {k: v for k, v in SYNTHETIC_DEFAULTS.items() if k != "separation"}


@pytest.mark.parametrize("name", model_names())
def test_hidden_applies_to_exactly_the_models_that_take_it(name: str) -> None:
    """``[model] hidden`` is accepted for a model if and only if build_model takes a ``hidden`` option for it."""
    try:
        build_model(name, (1, 28, 28), 10, hidden=(8,))
        takes_hidden = True
    except ConfigError as exc:
        assert "has no option(s) hidden" in str(exc)
        takes_hidden = False
    try:
        ModelConfig(name=name, hidden=(8,))
        config_accepts = True
    except ConfigError:
        config_accepts = False

    assert config_accepts == takes_hidden


def test_configurable_models_are_the_shipped_models() -> None:
    """``[model] name``'s shipped names are exactly the models gossip.learn.models builds without a plug-in."""
    assert get_args(ModelKind) == model_names()


@pytest.mark.parametrize("loss", get_args(LossKind))
def test_every_configurable_loss_builds(loss: str) -> None:
    """``[training] loss``'s shipped names each build a loss without a plug-in."""
    assert callable(build_loss(TrainingConfig(loss=loss)))


@pytest.mark.parametrize("metric", get_args(MetricKind))
def test_every_configurable_metric_builds_under_its_own_name(metric: str) -> None:
    """``[training] metric``'s shipped names each build a metric that reports itself by that name."""
    assert build_metric(TrainingConfig(metric=metric)).name == metric
