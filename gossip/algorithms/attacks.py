"""What a Byzantine node sends: each attack's payload as a pure tensor function, and the role objects.

An attacker runs the ordinary node loop and the ordinary wire protocol (``gossip/node/byzantine.py``);
only *what* it puts on the wire changes, possibly a different payload per honest neighbour. It never
flags itself: the defence must come from the honest nodes' aggregation rule. Attacks that need the
honest models ("omniscient": ALIE, IPM, dissensus) use only what the attacker legitimately receives
from its own neighbours in the same round — it waits for their round-t models, then crafts and sends
within the round timeout. The attackers collude: every one of them knows the whole ``[byzantine]``
list and the topology (both are in the shared config), hence every mixing weight W_ik.

Payloads (x = the attacker's own model, H = the honest models it received this round):

=============  ==================================================================  ======================
attack         payload to honest neighbour i                                       source
=============  ==================================================================  ======================
sign-flip      −s · x                                                              (scaled) bit flip, e.g.
                                                                                   epfml ``BitFlippingWorker``
gaussian       x + σ ξ,  ξ ~ N(0, I)                                               Gaussian noise
label-flip     x, trained on its own shard with y → K − 1 − y                      data poisoning
alie           μ(H) − z σ(H) per coordinate, z = max(0, z_max(n_i, f_i)) or fixed  Baruch et al. 2019
ipm            −ε · mean(H)                                                        Xie et al. 2019
dissensus      x_i − ε Σ_{k∈N_i honest} W_ik (x_k − x_i) / Σ_{b∈N_i Byz} W_ib      He et al. 2022
silent         nothing (from round ``silent_from_round`` on: a crash)              —
=============  ==================================================================  ======================

Decentralised adaptations, stated because they are choices:

- ALIE and IPM compute μ, σ, mean over *all* honest models the attacker received (its own
  neighbourhood, which contains each target), the same statistics for every target. ALIE's
  z_max(n, f) is evaluated per target with n = d_i + 1 (the target's inputs) and f = the number of
  Byzantine neighbours of i, with the formula of the epfml code, not the paper's text (see
  :func:`alie_z_max`), and clamped at 0. On small degrees it gives z ≈ 0 (n = 5, f = 1 → 0), i.e.
  the payload is the honest mean and does no harm; the ClippedGossip runs used a fixed z = 10
  ("ALIE10"), which ``alie_z`` sets.
- Dissensus needs x_k for every honest neighbour k of the target, but the attacker only sees the
  ones that are also its own neighbours. It uses the received x_k where it has one and the mean of
  the honest models it received for the others: exact when the attacker is adjacent to all of i's
  honest neighbours (a clique), an estimate otherwise (on a torus, which has no triangles, every
  x_k is estimated).
- When a needed honest model did not arrive in time (its target's, for dissensus) the attacker
  sends its own model to that target that round rather than nothing, so it is not mistaken for a
  silent node.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

import numpy as np
import torch

from gossip import plugins
from gossip.config import ByzantineConfig
from gossip.errors import ConfigError
from gossip.ids import NodeId

__all__ = [
    "ATTACKS",
    "Alie",
    "Attack",
    "Dissensus",
    "GaussianNoise",
    "Ipm",
    "LabelFlip",
    "SignFlip",
    "Silent",
    "Target",
    "alie",
    "alie_z_max",
    "build_attack",
    "dissensus",
    "flip_labels",
    "gaussian",
    "ipm",
    "neighbourhood_pull",
    "sign_flip",
]


# --------------------------------------------------------------------------------------------------
# payloads: pure functions


def sign_flip(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """−scale · x."""
    return x * -scale


def gaussian(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """x + std · ξ with ξ ~ N(0, I) drawn from ``generator``."""
    return x + std * torch.randn(x.shape, generator=generator, dtype=x.dtype)


def flip_labels(y: np.ndarray | torch.Tensor, classes: int) -> np.ndarray | torch.Tensor:
    """y → K − 1 − y (the label-flipping data poisoning of the epfml code, K = 10: y → 9 − y)."""
    return (classes - 1) - y


def alie_z_max(n: int, f: int) -> float:
    """z_max = Φ⁻¹((n − f − s) / (n − f)) with s = floor(n/2 + 1) − f supporters (Baruch et al. 2019).

    Which formula: that of both epfml Byzantine-robustness repositories (the ClippedGossip authors'
    code, which this project's decentralised attacks follow); e.g. n = 50, f = 12 → 0.336. The
    paper's text writes Φ⁻¹((n − s)/n), counting the s supporters among all n inputs rather than
    the n − f honest ones, which gives larger values (n = 50, f = 12 → 0.583; n = 5, f = 1 → 0.253
    where this gives 0). The ALIE authors' own code takes z as a flag (default 1.5).

    The raw quantile, as the references tabulate it: it is negative when s exceeds half the honest
    inputs, i.e. for every even n with f = 1 (n = 4 → −0.431, n = 12 → −0.114). :meth:`Alie.z_for`
    clamps it at 0.
    """
    if not 0 <= f < n:
        raise ValueError(f"ALIE needs 0 <= f < n, got n = {n}, f = {f}")
    s = math.floor(n / 2 + 1) - f
    q = (n - f - s) / (n - f)
    if not 0 < q < 1:
        raise ValueError(f"ALIE's quantile (n - f - s)/(n - f) = {q:.3f} is outside (0, 1) for n = {n}, f = {f}")
    from statistics import NormalDist  # here, not at import: statistics pulls in decimal and fractions (~0.5 MiB a node)

    return NormalDist().inv_cdf(q)


def alie(honest: torch.Tensor, z: float) -> torch.Tensor:
    """μ − z σ per coordinate over the ``(k, P)`` honest stack (σ = 0 when k = 1)."""
    if honest.shape[0] == 0:
        raise ValueError("ALIE needs at least one honest model")
    mu = honest.mean(dim=0)
    if honest.shape[0] == 1:
        return mu
    return mu - z * honest.std(dim=0)


def ipm(honest: torch.Tensor, epsilon: float) -> torch.Tensor:
    """−ε · mean of the ``(k, P)`` honest stack (inner product manipulation, Xie, Koyejo & Gupta 2019)."""
    if honest.shape[0] == 0:
        raise ValueError("IPM needs at least one honest model")
    return honest.mean(dim=0) * -epsilon


def neighbourhood_pull(target: torch.Tensor, models: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """Σ_k W_ik (x_k − x_i): how far one gossip step would move the target towards these models."""
    pull = torch.zeros_like(target)
    for x, w in zip(models, weights, strict=True):  # a handful of neighbours, each a vectorised op
        pull.add_(x - target, alpha=w)
    return pull


def dissensus(target: torch.Tensor, pull: torch.Tensor, byzantine_weight: float, epsilon: float) -> torch.Tensor:
    """x_i − ε · pull / Σ_b W_ib, so that the target's gossip step becomes x_i + (1 − ε) · pull (He et al. 2022)."""
    if byzantine_weight <= 0:
        raise ValueError("dissensus needs a positive Byzantine weight at the target")
    return target - (epsilon / byzantine_weight) * pull


# --------------------------------------------------------------------------------------------------
# roles


@dataclass(frozen=True)
class Target:
    """What the attacker knows about one honest neighbour i: its mixing row and its Byzantine neighbours."""

    id: NodeId
    weights: Mapping[NodeId, float]  # W_ik for every neighbour k of i (not i itself)
    byzantine: frozenset[NodeId]  # the Byzantine neighbours of i (the attacker among them)

    @property
    def inputs(self) -> int:
        """N_i = d_i + 1: how many models the target aggregates."""
        return len(self.weights) + 1


class Attack(Protocol):
    """A Byzantine behaviour: what to send to each honest neighbour in round ``t``.

    The contract of every attack, shipped or plug-in. A plug-in (``[byzantine] attack = "module:Class"``) is a
    callable that takes ``[byzantine] options`` as keyword arguments and returns an object with ``name`` (shown
    in summaries), ``omniscient`` and ``trains`` (plain attributes will do) and ``payloads``, which returns a
    float32 vector shaped like ``own`` for each target it sends to and modifies no input. It runs in the
    attacker's node process, on the ordinary wire: honest nodes check its payloads like any other.
    """

    @property
    def name(self) -> str: ...

    @property
    def omniscient(self) -> bool:
        """Wait for the honest neighbours' round-t models before crafting."""
        ...

    @property
    def trains(self) -> bool:
        """Take the local SGD steps (the attacker's own model matters to its payload)."""
        ...

    def payloads(
        self, t: int, own: torch.Tensor, honest: Mapping[NodeId, torch.Tensor], targets: Sequence[Target]
    ) -> dict[NodeId, torch.Tensor]:
        """Payload per target id; a target missing from the result is sent nothing."""
        ...


def _same(payload: torch.Tensor, targets: Sequence[Target]) -> dict[NodeId, torch.Tensor]:
    return {tg.id: payload for tg in targets}


def _stack(honest: Mapping[NodeId, torch.Tensor]) -> torch.Tensor:
    return torch.stack([honest[j] for j in sorted(honest)])


@dataclass(frozen=True)
class SignFlip:
    scale: float = 1.0
    name: str = "sign-flip"
    omniscient: bool = False
    trains: bool = True

    def payloads(
        self, t: int, own: torch.Tensor, honest: Mapping[NodeId, torch.Tensor], targets: Sequence[Target]
    ) -> dict[NodeId, torch.Tensor]:
        return _same(sign_flip(own, self.scale), targets)


@dataclass(frozen=True)
class GaussianNoise:
    std: float = 1.0
    generator: torch.Generator = field(default_factory=torch.Generator)
    name: str = "gaussian"
    omniscient: bool = False
    trains: bool = True

    def payloads(
        self, t: int, own: torch.Tensor, honest: Mapping[NodeId, torch.Tensor], targets: Sequence[Target]
    ) -> dict[NodeId, torch.Tensor]:
        return _same(gaussian(own, self.std, self.generator), targets)


@dataclass(frozen=True)
class LabelFlip:
    """Honest protocol on poisoned data: the node relabels its own shard (``ByzantineNode`` does it)."""

    name: str = "label-flip"
    omniscient: bool = False
    trains: bool = True

    def payloads(
        self, t: int, own: torch.Tensor, honest: Mapping[NodeId, torch.Tensor], targets: Sequence[Target]
    ) -> dict[NodeId, torch.Tensor]:
        return _same(own, targets)


@dataclass(frozen=True)
class Alie:
    z: float = 0.0  # 0 = z_max(n_i, f_i) per target
    name: str = "alie"
    omniscient: bool = True
    trains: bool = False

    def z_for(self, target: Target) -> float:
        """The fixed z, else max(0, z_max) for the target's (n, f); 0 where the formula is undefined (n <= 2 or a Byzantine majority).

        Why clamp: the paper's supporters are honest inputs farther from the mean than the payload,
        on its side. A payload |z| σ from the mean, on either side, has (n − f)(1 − Φ(|z|)) of them,
        at most (n − f)/2 (at the mean itself). A negative quantile means s exceeds even that: no
        payload has s supporters, and the formula's negative z counts the inputs *below* a payload
        placed above the mean, most of which are not farther out. Clamping keeps the payload where
        the support is largest, the honest mean; a fixed ``alie_z`` (of either sign) sets any shift.
        """
        if self.z != 0:
            return self.z
        try:
            return max(0.0, alie_z_max(target.inputs, len(target.byzantine)))
        except ValueError:
            return 0.0

    def payloads(
        self, t: int, own: torch.Tensor, honest: Mapping[NodeId, torch.Tensor], targets: Sequence[Target]
    ) -> dict[NodeId, torch.Tensor]:
        if not honest:
            return _same(own, targets)
        stack = _stack(honest)
        by_z: dict[float, torch.Tensor] = {}
        out = {}
        for tg in targets:
            z = self.z_for(tg)
            if z not in by_z:
                by_z[z] = alie(stack, z)
            out[tg.id] = by_z[z]
        return out


@dataclass(frozen=True)
class Ipm:
    epsilon: float = 0.1
    name: str = "ipm"
    omniscient: bool = True
    trains: bool = False

    def payloads(
        self, t: int, own: torch.Tensor, honest: Mapping[NodeId, torch.Tensor], targets: Sequence[Target]
    ) -> dict[NodeId, torch.Tensor]:
        if not honest:
            return _same(own, targets)
        return _same(ipm(_stack(honest), self.epsilon), targets)


@dataclass(frozen=True)
class Dissensus:
    epsilon: float = 1.5
    name: str = "dissensus"
    omniscient: bool = True
    trains: bool = False

    def payloads(
        self, t: int, own: torch.Tensor, honest: Mapping[NodeId, torch.Tensor], targets: Sequence[Target]
    ) -> dict[NodeId, torch.Tensor]:
        out: dict[NodeId, torch.Tensor] = {}
        estimate = _stack(honest).mean(dim=0) if honest else None
        for tg in targets:
            x_i = honest.get(tg.id)
            if x_i is None or estimate is None:
                out[tg.id] = own
                continue
            honest_k = [k for k in sorted(tg.weights) if k not in tg.byzantine]
            pull = neighbourhood_pull(x_i, [honest.get(k, estimate) for k in honest_k], [tg.weights[k] for k in honest_k])
            out[tg.id] = dissensus(x_i, pull, sum(tg.weights[b] for b in tg.byzantine), self.epsilon)
        return out


@dataclass(frozen=True)
class Silent:
    """Sends no model from round ``from_round`` on (0: never); neighbours see a crashed peer (no bye)."""

    from_round: int = 0
    name: str = "silent"
    omniscient: bool = False
    trains: bool = True

    def payloads(
        self, t: int, own: torch.Tensor, honest: Mapping[NodeId, torch.Tensor], targets: Sequence[Target]
    ) -> dict[NodeId, torch.Tensor]:
        return {} if t >= self.from_round else _same(own, targets)


_SHIPPED: dict[str, Callable[[ByzantineConfig, int], Attack]] = {
    "sign-flip": lambda cfg, seed: SignFlip(cfg.scale),
    "gaussian": lambda cfg, seed: GaussianNoise(cfg.noise_std, torch.Generator().manual_seed(seed)),
    "label-flip": lambda cfg, seed: LabelFlip(),
    "alie": lambda cfg, seed: Alie(cfg.alie_z),
    "ipm": lambda cfg, seed: Ipm(cfg.ipm_epsilon),
    "dissensus": lambda cfg, seed: Dissensus(cfg.dissensus_epsilon),
    "silent": lambda cfg, seed: Silent(cfg.silent_from_round),
}
"""The shipped attacks by name, each built from its ``[byzantine]`` keys and the attacker's seed."""

ATTACKS = tuple(_SHIPPED)


def build_attack(cfg: ByzantineConfig, seed: int) -> Attack:
    """The attack named in ``[byzantine]``, with its parameters; ``seed`` drives any randomness of a shipped attack.

    A plug-in (``attack = "module:Class"``) is called with ``[byzantine] options`` as keyword arguments.
    """
    make = _SHIPPED.get(cfg.attack)
    if make is not None:
        return make(cfg, seed)
    if cfg.attack == "none":
        raise ConfigError("[byzantine] attack = 'none' builds no attack")
    attack = plugins.build(plugins.ATTACK, cfg.attack, plugins.parse_options(plugins.ATTACK.options_where, cfg.options))
    return cast(Attack, attack)
