"""SGD and Adam as a few vectorised operations on the flat parameter vector, without ``torch.optim``.

Why not ``torch.optim``: constructing any ``torch.optim.Optimizer`` imports torch's compiler stack
(``torch._dynamo``, sympy, ``torch.distributed``: about 800 modules and 70 MiB of resident memory per
process, measured with ``bench/round_time.py``), and a node process holds nothing else that large
besides torch itself. And the node's parameters already live in one vector (``gossip.learn.flat``), so
the update is one ``add_`` over it, not a loop over parameter tensors.

The gradients live in one flat buffer too: each parameter's ``.grad`` is set to a view of it, and
autograd accumulates into an existing ``.grad`` in place, so after ``backward()`` the buffer holds
the whole gradient. The math is ``torch.optim.SGD`` / ``torch.optim.Adam``'s (no nesterov, no
dampening, no amsgrad), the same as ``gossip.run.simulate``'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["FlatOptimizer", "flat_prefix"]


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
        self.kind = kind
        self.vector = vector
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.betas = betas
        self.eps = eps
        self.grad = torch.zeros_like(vector)
        offset = 0
        for p in params:
            p.grad = self.grad[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        self._params = list(params)
        self._buf: torch.Tensor | None = None  # SGD momentum / Adam first moment
        self._sq: torch.Tensor | None = None  # Adam second moment
        self._steps = 0

    def state_arrays(self) -> dict[str, torch.Tensor]:
        """The optimiser's state for a checkpoint (gossip.node.checkpoint): moment buffers and the step count."""
        out = {"steps": torch.tensor(self._steps, dtype=torch.int64)}
        if self._buf is not None:
            out["buf"] = self._buf
        if self._sq is not None:
            out["sq"] = self._sq
        return out

    def load_state_arrays(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_arrays`; ``ValueError`` if a buffer does not have the vector's size."""
        for key in ("buf", "sq"):
            if key in state and state[key].shape != self.vector.shape:
                raise ValueError(f"optimiser state {key!r} has shape {tuple(state[key].shape)}, the vector {tuple(self.vector.shape)}")
        self._buf = state["buf"].to(self.vector.dtype).clone() if "buf" in state else None
        self._sq = state["sq"].to(self.vector.dtype).clone() if "sq" in state else None
        self._steps = int(state.get("steps", torch.tensor(0)))

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradient buffer (``set_to_none`` is accepted and ignored: the views must stay)."""
        storage = self.grad.untyped_storage().data_ptr()
        if any(p.grad is None or p.grad.untyped_storage().data_ptr() != storage for p in self._params):
            raise RuntimeError("a parameter's .grad no longer points into the flat gradient (was it replaced or set to None?)")
        self.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of the vector from the gradient buffer."""
        g = self.grad
        x = self.vector
        if self.weight_decay:
            g.add_(x, alpha=self.weight_decay)
        self._steps += 1
        if self.kind == "sgd":
            if self.momentum:
                if self._buf is None:
                    self._buf = g.clone()
                else:
                    self._buf.mul_(self.momentum).add_(g)
                g = self._buf
            x.add_(g, alpha=-self.lr)
            return
        beta1, beta2 = self.betas
        if self._buf is None or self._sq is None:
            self._buf, self._sq = torch.zeros_like(x), torch.zeros_like(x)
        self._buf.lerp_(g, 1 - beta1)
        self._sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        step_size = self.lr / (1 - beta1**self._steps)
        denom = (self._sq.sqrt() / math.sqrt(1 - beta2**self._steps)).add_(self.eps)
        x.addcdiv_(self._buf, denom, value=-step_size)
