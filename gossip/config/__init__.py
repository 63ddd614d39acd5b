"""What a run is set to: one typed, frozen place for every setting, loaded TOML → environment → flags.

Why frozen dataclasses and not a dict: a typo in a key or a value out of range must fail before any
process starts, with one line that names the key (``unknown key 'lrr' in [training]; did you mean
'lr'?``). Each section validates itself in ``__post_init__`` and raises :class:`ConfigError`, never
``assert``. Units live in the names (``round_timeout_s``, ``max_message_bytes``).

Precedence, lowest first: the dataclass defaults, a TOML file, ``GOSSIP_<SECTION>_<KEY>`` environment
variables (12-factor style, e.g. ``GOSSIP_TRAINING_LR=0.1``), then command-line overrides
(``--set training.lr=0.1`` and the shortcut flags of ``gossip launch``).

- :mod:`~gossip.config.sections`: what a run computes (run, topology, data, model, training);
  :mod:`~gossip.config.combining`: how its nodes combine models (the algorithms' sections); :mod:`~gossip.config.deployment`: where its nodes live (transport, metrics,
  security, links, faults); :mod:`~gossip.config.run_config`: the whole, and the checks across sections;
- :mod:`~gossip.config.fields`: ranges and text checks every field runs; :mod:`~gossip.config.choices`:
  the closed sets of values;
- :mod:`~gossip.config.loader`, :mod:`~gossip.config.overlay`: reading and laying sources over the
  defaults; :mod:`~gossip.config.writer`: the TOML a run directory keeps.
"""

from __future__ import annotations

from gossip.config.combining import AggregationConfig, ByzantineConfig, CompressionConfig, MergeConfig, ScheduleConfig, VarianceConfig
from gossip.config.deployment import FaultsConfig, LinksConfig, MetricsConfig, SecurityConfig, TransportConfig, check_link_value
from gossip.config.fields import MAX_NODES, MAX_SEED, check_path_text, share_of
from gossip.config.loader import configure, load_config
from gossip.config.membership import MembershipConfig
from gossip.config.run_config import RunConfig
from gossip.config.sections import DataConfig, ModelConfig, RunSection, TopologyConfig, TrainingConfig
from gossip.config.writer import config_to_toml

__all__ = [
    "MAX_NODES",
    "MAX_SEED",
    "AggregationConfig",
    "ByzantineConfig",
    "CompressionConfig",
    "DataConfig",
    "FaultsConfig",
    "LinksConfig",
    "MembershipConfig",
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
    "configure",
    "load_config",
    "share_of",
]
