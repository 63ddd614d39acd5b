"""SGD and Adam as a few vectorised operations on the flat parameter vector, without ``torch.optim``.

Why not ``torch.optim``: constructing any ``torch.optim.Optimizer`` imports torch's compiler stack
(``torch._dynamo``, sympy, ``torch.distributed``: hundreds of modules and tens of MiB of resident memory
per process, ``bench/round_time.py`` counts them), and a node process holds nothing else that large
besides torch itself. And the node's parameters already live in one vector (``gossip.learn.flat``), so
the update is one ``add_`` over it, not a loop over parameter tensors.

The gradients live in one flat buffer too: each parameter's ``.grad`` is set to a view of it, and
autograd accumulates into an existing ``.grad`` in place, so after ``backward()`` the buffer holds
the whole gradient. The math is ``torch.optim.SGD`` / ``torch.optim.Adam``'s (no nesterov, no
dampening, no amsgrad), written once in :func:`apply_update_` over a ``(P,)`` vector or an ``(N, P)``
matrix: a node's :class:`FlatOptimizer` and ``gossip simulate`` (all N models at once) run the same update.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

__all__ = ["FlatOptimizer", "UpdateRule", "UpdateState", "apply_update_", "flat_prefix"]


@dataclass(frozen=True)
class UpdateRule:
    """The optimiser's settings: ``sgd`` (with momentum and weight decay) or ``adam`` (with weight decay)."""

    kind: Literal["sgd", "adam"]
    lr: float
    momentum: float = 0.0  # SGD only
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # Adam only, torch.optim.Adam's defaults
    eps: float = 1e-8  # Adam only


@dataclass
class UpdateState:
    """The optimiser's memory, shaped like the parameters: momentum / Adam's first moment, Adam's second, the step count."""

    buf: torch.Tensor | None = None
    sq: torch.Tensor | None = None
    steps: int = 0


@torch.no_grad()
def apply_update_(x: torch.Tensor, g: torch.Tensor, state: UpdateState, rule: UpdateRule) -> None:
    """One update of ``x`` in place from its gradient ``g`` (same shape: ``(P,)``, or ``(N, P)`` for N models).

    ``g`` is scratch: the weight decay is added to it in place. Elementwise throughout, so each row of an
    ``(N, P)`` matrix moves as one model would on its own (sharing ``state.steps``, as N models stepping together do).
    """
    if rule.weight_decay:
        g.add_(x, alpha=rule.weight_decay)
    state.steps += 1
    if rule.kind == "sgd":
        if rule.momentum:
            if state.buf is None:
                state.buf = g.clone()
            else:
                state.buf.mul_(rule.momentum).add_(g)
            g = state.buf
        x.add_(g, alpha=-rule.lr)
        return
    beta1, beta2 = rule.betas
    if state.buf is None or state.sq is None:
        state.buf, state.sq = torch.zeros_like(x), torch.zeros_like(x)
    state.buf.lerp_(g, 1 - beta1)
    state.sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    step_size = rule.lr / (1 - beta1**state.steps)
    denom = (state.sq.sqrt() / math.sqrt(1 - beta2**state.steps)).add_(rule.eps)
    x.addcdiv_(state.buf, denom, value=-step_size)


def flat_prefix(params: Sequence[nn.Parameter]) -> torch.Tensor | None:
    """The vector the parameters tile, in order and without gaps, or None when they do not.

    True for a module after :func:`gossip.learn.flat.flatten_`: its parameters are consecutive views at
    the start of the flat vector (buffers follow them, outside the returned range).
    """
    if not params:
        return None
    first = params[0]
    if first.dtype != torch.float32 or first.device.type != "cpu":
        return None
    storage = first.untyped_storage().data_ptr()
    expected = first.storage_offset()
    for p in params:
        if p.dtype != torch.float32 or not p.is_contiguous() or p.untyped_storage().data_ptr() != storage or p.storage_offset() != expected:
            return None
        expected += p.numel()
    start = first.storage_offset()
    view = torch.empty(0, dtype=torch.float32)
    view.set_(first.untyped_storage(), start, (expected - start,), (1,))
    return view


class FlatOptimizer:
    """``torch.optim.SGD`` (momentum, weight decay) or ``torch.optim.Adam`` on one flat vector.

    ``zero_grad()`` then ``backward()`` then ``step()``, as with a torch optimiser.
    """

    def __init__(
        self,
        params: Sequence[nn.Parameter],
        vector: torch.Tensor,
        *,
        kind: str,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if kind not in ("sgd", "adam"):
            raise ValueError(f"unknown optimiser {kind!r}")
        self.rule = UpdateRule("adam" if kind == "adam" else "sgd", lr, momentum, weight_decay, betas, eps)
        self.vector = vector
        self.grad = torch.zeros_like(vector)
        offset = 0
        for p in params:
            p.grad = self.grad[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        self._params = list(params)
        self._state = UpdateState()

    def state_arrays(self) -> dict[str, torch.Tensor]:
        """The optimiser's state for a checkpoint (gossip.node.checkpoint): moment buffers and the step count."""
        out = {"steps": torch.tensor(self._state.steps, dtype=torch.int64)}
        if self._state.buf is not None:
            out["buf"] = self._state.buf
        if self._state.sq is not None:
            out["sq"] = self._state.sq
        return out

    def load_state_arrays(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_arrays`; ``ValueError`` if a buffer does not have the vector's size."""
        for key in ("buf", "sq"):
            if key in state and state[key].shape != self.vector.shape:
                raise ValueError(f"optimiser state {key!r} has shape {tuple(state[key].shape)}, the vector {tuple(self.vector.shape)}")
        self._state = UpdateState(
            state["buf"].to(self.vector.device, self.vector.dtype).clone() if "buf" in state else None,
            state["sq"].to(self.vector.device, self.vector.dtype).clone() if "sq" in state else None,
            int(state.get("steps", torch.tensor(0))),
        )

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradient buffer (``set_to_none`` is accepted and ignored: the views must stay)."""
        storage = self.grad.untyped_storage().data_ptr()
        if any(p.grad is None or p.grad.untyped_storage().data_ptr() != storage for p in self._params):
            raise RuntimeError("a parameter's .grad no longer points into the flat gradient (was it replaced or set to None?)")
        self.grad.zero_()

    def step(self) -> None:
        """One update of the vector from the gradient buffer."""
        apply_update_(self.vector, self.grad, self._state, self.rule)
