"""gossip.plugins: a rule or an attack named by import path or entry point, loaded and built with its options."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from gossip.algorithms import build_aggregator
from gossip.algorithms.attacks import build_attack
from gossip.algorithms.tolerance import tolerated
from gossip.config import AggregationConfig, ByzantineConfig, load_config
from gossip.errors import ConfigError
from gossip.learn.flat import flatten_
from gossip.plugins import parse_options

RULES = """
import torch


class Scaled:
    def __init__(self, factor=1.0):
        self.factor = factor

    def aggregate(self, local, received, weights):
        return local * self.factor

    @staticmethod
    def tolerated(inputs):
        return inputs - 1


class Echo:
    name = "echo"
    omniscient = False
    trains = True

    def __init__(self, times=1):
        self.times = times

    def payloads(self, t, own, honest, targets):
        return {tg.id: own * self.times for tg in targets}
"""


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's module ``unitlab`` on the path, and a distribution that registers its classes as entry points."""
    (tmp_path / "unitlab.py").write_text(textwrap.dedent(RULES))
    info = tmp_path / "unitlab-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: unitlab\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[gossip.aggregators]\nscaled = unitlab:Scaled\n\n[gossip.attacks]\necho = unitlab:Echo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "unitlab", raising=False)
    return tmp_path


def test_options_are_name_value_pairs_read_as_toml_values() -> None:
    """Each option is ``name=value``; the value is a TOML number, boolean or list when it reads as one, else a string."""
    assert parse_options("w", ["n=3", "eps=1e-6", "on=true", "mode=fast", "xs=[1, 2]"]) == {
        "n": 3, "eps": 1e-6, "on": True, "mode": "fast", "xs": [1, 2],
    }  # fmt: skip


@pytest.mark.parametrize("item", ["n", "=3", "1n=3", "a-b=1"])
def test_an_option_that_is_not_name_value_is_refused(item: str) -> None:
    """The name must be a Python identifier: it becomes a keyword argument."""
    with pytest.raises(ConfigError, match="is not 'name=value'"):
        parse_options("[aggregation] options", [item])


def test_an_import_path_rule_is_built_with_its_options(lab: Path) -> None:
    """``rule = "unitlab:Scaled"`` with ``options = ["factor=2.0"]`` builds ``Scaled(factor=2.0)``."""
    cfg = AggregationConfig(rule="unitlab:Scaled", options=("factor=2.0",))
    rule = build_aggregator(cfg, flatten_(nn.Linear(2, 1)).layout)
    assert torch.equal(rule.aggregate(torch.ones(3), {}, {}), torch.full((3,), 2.0))


def test_an_entry_point_name_builds_the_registered_rule(lab: Path) -> None:
    """A name registered under ``gossip.aggregators`` is accepted by the config and built like an import path."""
    cfg = load_config(env={}, overrides={"aggregation.rule": "scaled", "aggregation.options": "factor=3"})
    rule = build_aggregator(cfg.aggregation, flatten_(nn.Linear(2, 1)).layout)
    assert torch.equal(rule.aggregate(torch.ones(2), {}, {}), torch.full((2,), 3.0))


def test_an_entry_point_name_builds_the_registered_attack(lab: Path) -> None:
    """A name registered under ``gossip.attacks`` is an attack, built with ``[byzantine] options``."""
    attack = build_attack(ByzantineConfig(nodes=(1,), attack="echo", options=("times=2",)), seed=0)
    assert attack.name == "echo"


def test_a_name_no_package_registers_is_refused_by_the_config() -> None:
    """Neither shipped nor registered nor an import path: the shipped names are listed, and the plug-in forms named."""
    with pytest.raises(ConfigError, match=re.escape("[byzantine] attack = 'mimic' is not one of 'none', 'sign-flip'")):
        load_config(env={}, overrides={"byzantine.nodes": "[1]", "byzantine.attack": "mimic"})


def test_a_plug_in_rule_withstands_what_it_declares(lab: Path) -> None:
    """The tolerance check asks the plug-in's ``tolerated(inputs)``: here ``inputs - 1``."""
    cfg = load_config(env={}, overrides={"aggregation.rule": "unitlab:Scaled"})
    assert tolerated(cfg, 5) == 4
