"""Order-statistics robust aggregation: coordinate-wise median, trimmed mean, Krum and Multi-Krum.

Each rule runs on the node's own model plus the models that arrived this round, stacked as one
``(N, P)`` tensor — row 0 is the node's own model, then the neighbours in sorted id order, so the
result never depends on arrival order. All are vectorised over the flat parameter vector (one sort
or one distance matrix, no Python loop over parameters), and finite float32 inputs give finite
results up to the float32 limit (:func:`midpoint`, :func:`mean_rows`, Krum's float64 distances).
These rules ignore the mixing weights: their robustness comes from treating the N inputs
symmetrically. Used decentrally the way the ClippedGossip authors' code does (``DeCM``, ``DeTM``,
``DeKrum``; He, Karimireddy & Jaggi 2022): what each node needs is a *local* honest majority among
its own inputs, not a global one.

Fewer arrivals than expected (timeouts, a silent neighbour) shrink N. Each rule says below what it
does when N becomes too small for its guarantee; none of them is ever called with N < 1 (the own
model is always an input).

Reporting: a rule calls ``report(count, action)`` once per aggregation with how many *neighbour*
models it discarded (the node wires this to ``gossip_aggregation_inputs_discarded_total``). Krum
discards whole models. The coordinate-wise rules keep or drop single coordinates, so for them a
neighbour counts as discarded when the rule used its value in fewer than half as many coordinates as
an exchangeable input would get (k of N per coordinate, with k values kept): a sign-flipped or
far-away model is dropped in nearly every coordinate, an honest one in about (N-k)/N of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import torch

from gossip.config import share_of
from gossip.ids import NodeId

__all__ = [
    "CoordinateMedian",
    "Krum",
    "Report",
    "TrimmedMean",
    "coordinate_median",
    "krum_scores",
    "mean_rows",
    "midpoint",
    "multi_krum",
    "stack_inputs",
    "trimmed_mean",
]

Action = Literal["discarded", "clipped"]
"""What a robust rule did to a neighbour's model (the ``action`` label of ``gossip_robust_discarded_total``)."""

Report = Callable[[int, Action], None]
"""``report(count, action)``: ``count`` neighbour models were ``"discarded"`` or ``"clipped"`` this round."""


def no_report(count: int, action: Action) -> None:
    """The default :data:`Report`: tell nobody."""


def stack_inputs(local: torch.Tensor, received: Mapping[NodeId, torch.Tensor]) -> torch.Tensor:
    """The node's own vector then the received ones in sorted sender order, as one ``(N, P)`` tensor."""
    return torch.stack([local, *(received[j] for j in sorted(received))])


def _rows(inputs: torch.Tensor) -> int:
    if inputs.dim() != 2 or inputs.shape[0] < 1:
        raise ValueError(f"expected a non-empty (N, P) stack of inputs, got shape {tuple(inputs.shape)}")
    return int(inputs.shape[0])


def _rarely_kept(order: torch.Tensor, lo: int, hi: int) -> int:
    """Neighbour rows (not row 0) kept in fewer than half their fair share of coordinates.

    ``order`` is the per-coordinate argsort of the inputs; positions ``lo..hi-1`` are the kept ones.
    """
    n, p = order.shape
    kept = torch.bincount(order[lo:hi].reshape(-1), minlength=n).to(torch.float64) / p
    fair = (hi - lo) / n
    return int((kept[1:] < fair / 2).sum())


def midpoint(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(a + b) / 2 elementwise, finite for any finite a and b.

    Why: ``a + b`` overflows to inf once the values pass half the largest float (~1.7e38 in float32),
    and so does ``a + (b - a) / 2`` when they have opposite signs. Halving first cannot overflow and
    is exact for normal numbers; it is used only where the sum overflowed, so every other result is
    the correctly rounded ``(a + b) / 2`` (halving first would lose the last bit of subnormals).
    """
    total = a + b
    if bool(torch.isfinite(total).all()):  # the common case, one pass cheaper than the where below
        return total.mul_(0.5)
    return torch.where(torch.isfinite(total), total * 0.5, a * 0.5 + b * 0.5)


def mean_rows(rows: torch.Tensor) -> torch.Tensor:
    """The mean of the rows of a ``(k, P)`` stack, summed in float64 and returned in the stack's dtype.

    Why: a float32 sum of finite values above ~1e38 overflows to inf (torch sums float32 in
    float32), while their mean is finite. Row by row: k is small, and a float64 copy of the whole
    stack would double the memory of the largest tensor a rule holds.
    """
    total = torch.zeros(rows.shape[1:], dtype=torch.float64)
    for row in rows:
        total.add_(row)
    return total.div_(rows.shape[0]).to(rows.dtype)


def coordinate_median(inputs: torch.Tensor) -> torch.Tensor:
    """Per coordinate, the median of the N values (mean of the two middle ones when N is even)."""
    return _median_sorted(inputs.sort(dim=0).values, _rows(inputs))


def _median_sorted(values: torch.Tensor, n: int) -> torch.Tensor:
    lo, hi = (n - 1) // 2, n // 2
    return values[lo].clone() if lo == hi else midpoint(values[lo], values[hi])


def trimmed_mean(inputs: torch.Tensor, b: int) -> torch.Tensor:
    """Per coordinate, drop the ``b`` largest and ``b`` smallest values and average the other N - 2b."""
    n = _rows(inputs)
    if b < 0 or n - 2 * b < 1:
        raise ValueError(f"trimming {b} per side of {n} inputs leaves nothing to average")
    return mean_rows(inputs.sort(dim=0).values[b : n - b])


def krum_scores(inputs: torch.Tensor, f: int) -> torch.Tensor:
    """Krum score of each input: the sum of squared distances to its N - f - 2 nearest other inputs.

    Distances are computed in float64 directly (not through the Gram-matrix shortcut, whose
    cancellation loses the small distances between nearly equal models).
    """
    n = _rows(inputs)
    k = n - f - 2
    if k < 1:
        raise ValueError(f"Krum with f = {f} needs at least f + 3 = {f + 3} inputs, got {n}")
    x = inputs.to(torch.float64)
    d2 = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist").square_()
    d2.fill_diagonal_(float("inf"))
    return d2.topk(k, dim=1, largest=False).values.sum(dim=1)


def multi_krum(inputs: torch.Tensor, f: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average of the ``m`` inputs with the lowest Krum scores (m = 1 is Krum); returns it and their rows.

    Ties go to the lower row (stable sort), i.e. to the node's own model first.
    """
    scores = krum_scores(inputs, f)
    if not 1 <= m <= inputs.shape[0]:
        raise ValueError(f"Multi-Krum m must be in 1..{inputs.shape[0]}, got {m}")
    chosen = torch.argsort(scores, stable=True)[:m]
    return mean_rows(inputs[chosen]), chosen


@dataclass(frozen=True)
class CoordinateMedian:
    """Coordinate-wise median (Yin, Chen, Ramchandran & Bartlett 2018).

    Breakdown point 1/2: with a strict honest majority among the N inputs every coordinate of the
    result lies between the smallest and the largest honest value. Cost O(N P log N) (one sort of
    the stack per coordinate; N is small). Never short of inputs (N = 1 returns the own model).
    """

    report: Report = no_report

    def aggregate(self, local: torch.Tensor, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float]) -> torch.Tensor:
        inputs = stack_inputs(local, received)
        n = inputs.shape[0]
        values, order = inputs.sort(dim=0)
        lo, hi = (n - 1) // 2, n // 2
        self.report(_rarely_kept(order, lo, hi + 1), "discarded")
        return _median_sorted(values, n)


@dataclass(frozen=True)
class TrimmedMean:
    """Coordinate-wise trimmed mean (Yin et al. 2018): drop b values per side, average the rest.

    ``b = floor(beta * N)`` when ``beta > 0`` (adapts to how many arrived; the floor is exact for
    β as written, :func:`gossip.config.share_of`), else ``b = f``. Breakdown: tolerates up to b
    Byzantine inputs (b/N < 1/2); with at most b of them, every coordinate lies inside the honest
    values' range. Cost O(N P log N). Too few inputs (N <= 2b, e.g. after timeouts): nothing would
    be left after trimming, so the node keeps its own model this round and counts every arrival as
    discarded.
    """

    f: int
    beta: float = 0.0
    report: Report = no_report

    def trim(self, n: int) -> int:
        """How many values are dropped per side for ``n`` inputs."""
        return share_of(self.beta, n) if self.beta > 0 else self.f

    def aggregate(self, local: torch.Tensor, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float]) -> torch.Tensor:
        inputs = stack_inputs(local, received)
        n = inputs.shape[0]
        b = self.trim(n)
        if n - 2 * b < 1:
            self.report(len(received), "discarded")
            return local.clone()
        values, order = inputs.sort(dim=0)
        self.report(_rarely_kept(order, b, n - b), "discarded")
        return mean_rows(values[b : n - b])


@dataclass(frozen=True)
class Krum:
    """Krum and Multi-Krum (Blanchard, El Mhamdi, Guerraoui & Stainer 2017).

    Scores each input by the summed squared distance to its N - f - 2 nearest others (in float64,
    so no finite float32 input overflows a score into a tie at inf) and averages the ``m`` best
    (``m = 1``: Krum, which returns one of the inputs as is; ``m = 0``: N - f, the usual Multi-Krum
    choice; m is capped at N - f). Breakdown: needs N >= 2f + 3 and at most f Byzantine inputs.

    What that buys: at least N - f inputs are honest and m <= N - f, so every selected input,
    Byzantine or not, scores no worse than the worst-scoring honest input (Krum's single pick: no
    worse than the best one); a far-away attacker is never selected. It does *not* keep Byzantine
    inputs out: a payload placed among the honest ones (ALIE's μ − zσ) scores as well as they do
    and is averaged in, up to min(b, m) of them at weight 1/m each. Cost O(N^2 P) for the distance
    matrix.

    Too few inputs (timeouts shrink N below 2f + 3): Krum's guarantee is void, so the rule falls
    back to the coordinate-wise median while N >= 2f + 1 (still inside the honest range with at
    most f attackers), and below that keeps the node's own model, counting every arrival discarded.
    """

    f: int
    m: int = 1
    report: Report = no_report

    def aggregate(self, local: torch.Tensor, received: Mapping[NodeId, torch.Tensor], weights: Mapping[NodeId, float]) -> torch.Tensor:
        inputs = stack_inputs(local, received)
        n = inputs.shape[0]
        if n >= 2 * self.f + 3:
            m = min(self.m or n - self.f, n - self.f)
            out, chosen = multi_krum(inputs, self.f, m)
            self.report(len(received) - int((chosen > 0).sum()), "discarded")
            return out
        if n >= 2 * self.f + 1:
            return CoordinateMedian(self.report).aggregate(local, received, weights)
        self.report(len(received), "discarded")
        return local.clone()
