"""How many Byzantine neighbours each rule withstands, and the check that refuses a run asking for more.

Run by ``gossip launch`` (``prepare_run``) and by every ``gossip node`` before any socket opens, so a
configuration the rule cannot defend is one line naming the node, exit code 2, and no process
started. Bounds are *local*: what matters is each honest node's own inputs (itself plus its d_i
neighbours, N_i = d_i + 1), not the global fraction of attackers (He et al. 2022). They assume
every neighbour arrives; timeouts shrink N_i at run time, and each rule's docstring says what it
does then.

A rule "withstands" b_i Byzantine neighbours when, with at most b_i of them, its result is held by
the honest inputs (the third column). With one more the bound is void: the median, the trimmed mean
and the adaptive clipping radii then follow the attackers without limit, and Krum can return an
attacker's payload (tests/unit/test_aggregation_robust.py shows each).

================  ===================================  ==================================================
rule              per-node requirement                 Byzantine neighbours b_i withstood, and the bound
                  (f = ``aggregation.f``)
================  ===================================  ==================================================
dsgd, variance    —                                    0: one attacker moves the node anywhere. Not
                                                       checked: the undefended baselines may lose
median            —                                    b_i ≤ ⌊(N_i − 1)/2⌋ (an honest majority): every
                                                       coordinate lies in the honest values' range
trimmed-mean      N_i − 2b ≥ 1, b = f or ⌊β N_i⌋        b_i ≤ b: every coordinate lies in the honest
                                                       values' range
krum, multi-krum  N_i ≥ 2f + 3                         b_i ≤ f: every averaged input scores no worse than
                                                       the worst honest input; attackers placed among
                                                       the honest inputs (ALIE) are still averaged in
clipped-gossip,   —                                    no count bound: each attacker moves the node by
fixed τ                                                at most W_ib τ per round (δ_i τ for all of them)
clipped-gossip,   f < d_i                              b_i ≤ f: the radius is no larger than the honest
adaptive τ                                             neighbours' distances allow ("he" and
                                                       "second-largest" take it from what is left once
                                                       the f farthest are set aside)
balance           —                                    no count bound: one round moves the node by at
                                                       most (1 − α) γ e^{−κ t/T} ‖x_i‖; attackers inside
                                                       that ball are averaged in
a plug-in         what its ``tolerated(inputs)``       what it declares; 0 when it declares nothing, so
("module:Class")  returns (< 0: refused)               an attacker beside an honest node is refused
================  ===================================  ==================================================
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from gossip import plugins
from gossip.algorithms.attacks import ATTACKS
from gossip.algorithms.base import SHIPPED_RULES
from gossip.config import AggregationConfig, RunConfig, share_of
from gossip.errors import ConfigError
from gossip.topology import Topology

__all__ = ["UNDEFENDED", "check_plugins", "check_tolerance", "tolerated"]

UNDEFENDED = ("dsgd", "variance")
"""Rules with breakdown point 0, run as baselines: never refused, whatever the attackers."""


def tolerated(cfg: RunConfig, inputs: int) -> int | None:
    """Byzantine inputs the configured rule withstands among ``inputs``; ``None`` = no count bound."""
    agg = cfg.aggregation
    if agg.rule not in SHIPPED_RULES:
        return _plugin_tolerated(agg, inputs)
    if agg.rule in UNDEFENDED:
        return 0
    if agg.rule == "median":
        return (inputs - 1) // 2
    if agg.rule == "trimmed-mean":
        b = _trim(agg, inputs)
        return b if inputs - 2 * b >= 1 else -1
    if agg.rule in ("krum", "multi-krum"):
        return agg.f if inputs >= 2 * agg.f + 3 else -1
    if agg.rule == "clipped-gossip" and agg.clip_tau == 0:
        return agg.f if agg.f < inputs - 1 else -1
    return None


def _plugin_tolerated(agg: AggregationConfig, inputs: int) -> int:
    """What a plug-in rule declares through ``tolerated(inputs)`` on what ``rule`` names; 0 when it declares nothing.

    Why 0 and not "no bound": gossip cannot tell what an unknown rule withstands, and a run that puts an attacker
    next to an honest node under a rule that makes no claim is one whose numbers mean nothing. Declaring the bound
    is one line (a geometric median: ``(inputs - 1) // 2``), and the user who writes it owns the claim.
    """
    declare = _declared(agg.rule)
    if declare is None:
        return 0
    try:
        bound = declare(inputs)
    except Exception as exc:
        raise ConfigError(f"[aggregation] rule = {agg.rule!r}: tolerated({inputs}) failed: {type(exc).__name__}: {exc}") from None
    if isinstance(bound, bool) or not isinstance(bound, int):
        raise ConfigError(f"[aggregation] rule = {agg.rule!r}: tolerated({inputs}) returned {bound!r}, not an int")
    return bound


@functools.cache
def _declared(rule: str) -> Callable[[int], object] | None:
    """The plug-in's ``tolerated``, loaded once per rule (the check asks for every node)."""
    declare = getattr(plugins.load(plugins.AGGREGATOR, rule), "tolerated", None)
    return declare if callable(declare) else None


def _trim(agg: AggregationConfig, inputs: int) -> int:
    """The trimmed mean's b for ``inputs`` inputs, as ``TrimmedMean.trim`` computes it."""
    return share_of(agg.trim_beta, inputs) if agg.trim_beta > 0 else agg.f


def check_plugins(cfg: RunConfig) -> None:
    """Build the run's plug-in rule and attack once, so a plug-in that does not import, refuses its options or lacks
    its contract's methods is one line before any process starts (``gossip launch``) or any socket opens (``gossip node``).
    """
    from gossip.algorithms.attacks import build_attack
    from gossip.algorithms.base import build_plugin_aggregator

    if cfg.aggregation.rule not in SHIPPED_RULES:
        build_plugin_aggregator(cfg.aggregation)
    if cfg.byzantine.attack not in (*ATTACKS, "none"):
        build_attack(cfg.byzantine, seed=0)


def check_tolerance(cfg: RunConfig, topology: Topology) -> None:
    """Raise :class:`ConfigError` (one line, naming the node) when some honest node cannot be defended.

    Plug-ins are built first (:func:`check_plugins`): the bound of a plug-in rule is its own to declare.
    """
    check_plugins(cfg)
    byz = cfg.byzantine
    outside = [b for b in byz.nodes if not 0 <= b < topology.n]
    if outside:
        raise ConfigError(f"[byzantine] node {outside[0]} is not in the topology (nodes 0..{topology.n - 1})")
    bad = set(byz.nodes)
    agg = cfg.aggregation
    for i in range(topology.n):
        if i in bad:
            continue
        neighbours = list(topology.neighbours(i))
        inputs = len(neighbours) + 1
        bound = tolerated(cfg, inputs)
        if bound is not None and bound < 0:
            raise ConfigError(
                f"[aggregation] rule {agg.rule!r}: {_need(cfg, inputs)}, but node {i} has {len(neighbours)} neighbours ({inputs} inputs with itself); lower aggregation.f or use a denser topology"
            )
        attackers = [j for j in neighbours if j in bad]
        if bound is None or len(attackers) <= bound or agg.rule in UNDEFENDED:
            continue
        who = ", ".join(map(str, attackers))
        if agg.rule not in SHIPPED_RULES:
            claim = f"tolerates {bound} there" if bound else "declares no Byzantine tolerance (no tolerated(inputs))"
            raise ConfigError(
                f"[byzantine] node {i} has {len(attackers)} Byzantine neighbours ({who}) but plug-in rule {agg.rule!r} {claim}; "
                "declare tolerated(inputs) on the rule, or place the attackers further apart"
            )
        if agg.rule == "median":
            raise ConfigError(
                f"[byzantine] node {i} has {len(attackers)} Byzantine neighbours ({who}) among its {inputs} inputs; rule 'median' needs an honest majority at every node"
            )
        knob = "aggregation.trim_beta" if agg.rule == "trimmed-mean" and agg.trim_beta > 0 else "aggregation.f"
        raise ConfigError(
            f"[byzantine] node {i} has {len(attackers)} Byzantine neighbours ({who}) but rule {agg.rule!r} tolerates {bound} there; "
            f"raise {knob} (if the degree allows) or place the attackers further apart"
        )


def _need(cfg: RunConfig, inputs: int) -> str:
    agg = cfg.aggregation
    if agg.rule == "trimmed-mean":
        b = _trim(agg, inputs)
        return f"trimming {b} per side needs more than {2 * b} inputs"
    if agg.rule not in SHIPPED_RULES:
        return f"its tolerated({inputs}) is negative"
    if agg.rule in ("krum", "multi-krum"):
        return f"f = {agg.f} needs at least 2f + 3 = {2 * agg.f + 3} inputs"
    return f"the adaptive {agg.clip_rule!r} radius with f = {agg.f} needs more than f neighbours"
