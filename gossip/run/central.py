"""The centralised reference: the same model trained on all the data in one process.

D-SGD with n nodes, batch b each and one step per round sees n·b samples per round, like
minibatch SGD with batch n·b. The reference therefore trains with batch ``n · batch_size`` for the
same number of steps (= the same number of epochs), from the same shared initialisation and with
the same optimiser settings. The gap between the two is what decentralisation costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gossip.config import RunConfig
from gossip.data import Dataset
from gossip.learn.flat import flatten_
from gossip.learn.models import model_of
from gossip.learn.trainer import Evaluation, LocalTrainer

__all__ = ["CentralResult", "train_centrally"]


@dataclass(frozen=True)
class CentralResult:
    steps: int
    epochs: float
    curve: tuple[tuple[int, float], ...]  # (step, test accuracy)
    final: Evaluation


def train_centrally(cfg: RunConfig, dataset: Dataset, nodes: int, eval_every: int = 0) -> CentralResult:
    """Train ``cfg``'s model on the whole training set for the steps a ``nodes``-node run takes."""
    torch.manual_seed(cfg.run.seed)
    module = model_of(cfg, dataset)
    flatten_(module)  # same parameter storage as a node (no numerical effect)
    trainer = LocalTrainer(
        module,
        dataset.x_train,
        dataset.y_train,
        dataset.x_test,
        dataset.y_test,
        cfg.training,
        batch_size=cfg.data.batch_size * nodes,
        seed=cfg.run.seed,
    )
    steps = cfg.training.rounds * cfg.training.local_steps
    curve: list[tuple[int, float]] = []
    every = eval_every or max(1, steps // 50)
    for s in range(1, steps + 1):
        trainer.steps(1)
        if s % every == 0 or s == steps:
            curve.append((s, trainer.evaluate().accuracy))
    epochs = steps * trainer.batch_size / len(dataset.x_train)
    return CentralResult(steps, epochs, tuple(curve), trainer.evaluate())
