"""A node's minibatch order: a seeded permutation of its shard, walked one batch at a time, reshuffled each epoch.

One class for every place that draws a node's batches (the node's trainer, the centralised reference and
``gossip simulate``), so a simulated node sees exactly the batches its process would: same generator,
same permutations, same walk. Its state (generator, permutation, position) goes into a checkpoint, so
a restored node continues with the batch it would have drawn next.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

__all__ = ["BatchOrder"]


class BatchOrder:
    """Indices of the next minibatch of a shard of ``size`` samples; a short last batch of an epoch is skipped.

    ``batch`` is capped at the shard's size (a shard smaller than one batch trains on all of it each step).
    """

    def __init__(self, size: int, batch: int, seed: int) -> None:
        self.size = size
        self.batch = min(batch, max(1, size))
        self._gen = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.int64)
        self._pos = 0

    def next(self) -> torch.Tensor:
        """The next ``batch`` indices into the shard."""
        if self._pos + self.batch > len(self._order):
            self._order = torch.randperm(self.size, generator=self._gen)
            self._pos = 0
        idx = self._order[self._pos : self._pos + self.batch]
        self._pos += self.batch
        return idx

    def state(self) -> dict[str, np.ndarray]:
        """Generator state, current permutation and position: ``rng``, ``order``, ``pos`` (numbers only, no pickle)."""
        return {
            "rng": self._gen.get_state().numpy().copy(),
            "order": self._order.numpy().copy(),
            "pos": np.asarray(self._pos, dtype=np.int64),
        }

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore :meth:`state`; ``ValueError`` when the saved permutation is not one of this shard."""
        self._gen.set_state(torch.from_numpy(np.array(state["rng"], dtype=np.uint8)))
        order = torch.from_numpy(np.array(state.get("order", np.empty(0)), dtype=np.int64))
        if order.numel() and (order.numel() != self.size or int(order.max()) >= self.size):
            raise ValueError("batch order does not fit this shard")
        self._order = order
        self._pos = int(state.get("pos", 0))
