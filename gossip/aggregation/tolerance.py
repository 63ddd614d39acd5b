"""How many Byzantine neighbours each rule withstands, and the check that refuses a run asking for more.

Run by ``gossip launch`` (``prepare_run``) and by every ``gossip node`` before any socket opens, so a
configuration the rule cannot defend is one line naming the node, exit code 2, and no process
started. Bounds are *local*: what matters is each honest node's own inputs (itself plus its d_i
neighbours, N_i = d_i + 1), not the global fraction of attackers (He et al. 2022).

=================  ======================================================  ==========================
rule               per-node requirement (f = ``aggregation.f``)             Byzantine neighbours b_i
=================  ======================================================  ==========================
dsgd               —                                                       not checked: the undefended
                                                                           baseline is allowed to lose
median             —                                                       b_i < N_i / 2 (honest majority)
trimmed-mean       N_i − 2b ≥ 1, b = f or floor(β N_i)                      b_i ≤ b
krum, multi-krum   N_i ≥ 2f + 3                                            b_i ≤ f
clipped-gossip     adaptive "he" radius: f < d_i                           b_i ≤ f for the "he" radius;
                                                                           no count bound otherwise
balance            —                                                       no count bound (the filter
                                                                           is relative to the node)
=================  ======================================================  ==========================
"""

from __future__ import annotations

from gossip.config import RunConfig
from gossip.errors import ConfigError
from gossip.topology import Topology

__all__ = ["check_tolerance", "tolerated"]


def tolerated(cfg: RunConfig, inputs: int) -> int | None:
    """Byzantine inputs the configured rule withstands among ``inputs``; ``None`` = no count bound."""
    agg = cfg.aggregation
    if agg.rule == "dsgd":
        return 0
    if agg.rule == "median":
        return (inputs - 1) // 2
    if agg.rule == "trimmed-mean":
        b = int(agg.trim_beta * inputs) if agg.trim_beta > 0 else agg.f
        return b if inputs - 2 * b >= 1 else -1
    if agg.rule in ("krum", "multi-krum"):
        return agg.f if inputs >= 2 * agg.f + 3 else -1
    if agg.rule == "clipped-gossip" and agg.clip_tau == 0 and agg.clip_rule == "he":
        return agg.f if agg.f < inputs - 1 else -1
    return None


def check_tolerance(cfg: RunConfig, topology: Topology) -> None:
    """Raise :class:`ConfigError` (one line, naming the node) when some honest node cannot be defended."""
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
            raise ConfigError(f"[aggregation] rule {agg.rule!r}: {_need(cfg, inputs)}, but node {i} has {len(neighbours)} neighbours ({inputs} inputs with itself); lower aggregation.f or use a denser topology")
        attackers = [j for j in neighbours if j in bad]
        if bound is None or len(attackers) <= bound or agg.rule == "dsgd":
            continue
        who = ", ".join(map(str, attackers))
        if agg.rule == "median":
            raise ConfigError(f"[byzantine] node {i} has {len(attackers)} Byzantine neighbours ({who}) among its {inputs} inputs; rule 'median' needs an honest majority at every node")
        raise ConfigError(
            f"[byzantine] node {i} has {len(attackers)} Byzantine neighbours ({who}) but rule {agg.rule!r} tolerates {bound} there; "
            "raise aggregation.f (if the degree allows) or place the attackers further apart"
        )


def _need(cfg: RunConfig, inputs: int) -> str:
    agg = cfg.aggregation
    if agg.rule == "trimmed-mean":
        b = int(agg.trim_beta * inputs) if agg.trim_beta > 0 else agg.f
        return f"trimming {b} per side needs more than {2 * b} inputs"
    if agg.rule in ("krum", "multi-krum"):
        return f"f = {agg.f} needs at least 2f + 3 = {2 * agg.f + 3} inputs"
    return f"the adaptive 'he' radius with f = {agg.f} needs more than f neighbours"
