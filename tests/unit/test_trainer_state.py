"""The local training state a checkpoint keeps: a trainer restored from it takes exactly the steps the original takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gossip.config import TrainingConfig
from gossip.learn.trainer import LocalTrainer
from gossip.node import checkpoint


def _trainer(optimizer: str, seed: int = 5) -> tuple[LocalTrainer, torch.nn.Module]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 6)).astype(np.float32)
    y = rng.integers(0, 3, 50)
    return LocalTrainer(model, x, y, x[:10], y[:10], TrainingConfig(optimizer=optimizer, lr=0.05), batch_size=8, seed=seed), model


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_restored_trainer_continues_bit_for_bit(optimizer: str, tmp_path: Path) -> None:
    """Train 9 steps, checkpoint (parameters + optimiser buffers + batch position, through the .npz file), train 7
    more; a fresh trainer restored from the checkpoint takes the same 7 steps: identical parameters."""
    original, model = _trainer(optimizer)
    original.steps(9)
    params = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()
    checkpoint.save(tmp_path / "c.npz", checkpoint.Checkpoint(params, 9, bytes(16), original.state()))
    original.steps(7)
    expected = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    restored, model2 = _trainer(optimizer, seed=99)  # another batch seed: the checkpoint must override it
    saved = checkpoint.load(tmp_path / "c.npz")
    offset = 0
    with torch.no_grad():
        for p in model2.parameters():
            p.copy_(torch.from_numpy(saved.vector[offset : offset + p.numel()]).reshape(p.shape))
            offset += p.numel()
    restored.load_state(saved.extras)
    restored.steps(7)
    assert torch.equal(torch.cat([p.detach().reshape(-1) for p in model2.parameters()]), expected)


def test_training_state_of_another_model_is_refused() -> None:
    """Momentum buffers whose shapes do not match the parameters are a ValueError, not a silent broadcast."""
    trainer, _ = _trainer("sgd")
    trainer.steps(2)
    state = trainer.state()
    state["opt.0.momentum_buffer"] = np.zeros((3, 3), dtype=np.float32)
    fresh, _ = _trainer("sgd")
    with pytest.raises(ValueError, match="shape"):
        fresh.load_state(state)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_flat_vector_optimiser_of_a_node_restores_bit_for_bit(optimizer: str) -> None:
    """The same with a node's model (parameters tiling one flat vector, so the FlatOptimizer): restored buffers and
    step count give the same next steps."""
    from gossip.learn.flat import flatten_
    from gossip.learn.optim import FlatOptimizer

    def build(seed: int) -> tuple[LocalTrainer, torch.Tensor]:
        torch.manual_seed(0)
        flat = flatten_(torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)))
        rng = np.random.default_rng(1)
        x = rng.standard_normal((50, 6)).astype(np.float32)
        y = rng.integers(0, 3, 50)
        trainer = LocalTrainer(flat.module, x, y, x[:10], y[:10], TrainingConfig(optimizer=optimizer, lr=0.05), batch_size=8, seed=seed)
        assert isinstance(trainer.optimizer, FlatOptimizer)
        return trainer, flat.vector

    original, vector = build(5)
    original.steps(9)
    saved, state = vector.clone(), original.state()
    original.steps(7)
    restored, vector2 = build(99)
    vector2.copy_(saved)
    restored.load_state(state)
    restored.steps(7)
    assert torch.equal(vector2, vector)
