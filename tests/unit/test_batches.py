"""A node's batch order: a seeded walk through fresh permutations of its shard, restorable from a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gossip.learn.batches import BatchOrder


def test_each_epoch_is_a_permutation_walked_in_whole_batches() -> None:
    """10 samples, batches of 4: two batches per epoch (the short remainder is skipped), then a new permutation."""
    order = BatchOrder(10, 4, seed=3)
    epoch = torch.cat([order.next(), order.next()])
    assert len(set(epoch.tolist())) == 8 and all(0 <= i < 10 for i in epoch.tolist())
    epochs = {tuple(torch.cat([order.next(), order.next()]).tolist()) for _ in range(10)}
    assert len(epochs) > 1  # every epoch draws a new permutation from the generator


def test_a_batch_larger_than_the_shard_is_the_whole_shard() -> None:
    """A shard of 3 with batch size 8 trains on all 3 samples each step."""
    order = BatchOrder(3, 8, seed=0)
    assert order.batch == 3 and sorted(order.next().tolist()) == [0, 1, 2]


def test_a_restored_order_draws_the_same_batches() -> None:
    """Mid-epoch state into another order (another seed): both continue with identical batches."""
    a = BatchOrder(50, 8, seed=5)
    for _ in range(9):
        a.next()
    b = BatchOrder(50, 8, seed=99)
    b.load_state(a.state())
    for _ in range(20):
        assert torch.equal(a.next(), b.next())


def test_an_order_of_another_shard_is_refused() -> None:
    """A saved permutation of 50 samples does not fit a shard of 40: ValueError, not a silent out-of-range index."""
    a = BatchOrder(50, 8, seed=5)
    a.next()
    with pytest.raises(ValueError, match="does not fit"):
        BatchOrder(40, 8, seed=5).load_state(a.state())
    assert a.state()["pos"].dtype == np.int64
