"""How a node learns alone: the models, the flat parameter vector they live in, the optimiser and the trainer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gossip.exports import lazy_exports

if TYPE_CHECKING:
    from gossip.learn.batches import BatchOrder
    from gossip.learn.flat import FlatModel, Layout, flatten_, model_hash
    from gossip.learn.models import build_model, model_names, model_of, parameter_count
    from gossip.learn.optim import FlatOptimizer, apply_update_
    from gossip.learn.trainer import Evaluation, LocalTrainer, StepResult

__all__ = [
    "BatchOrder",
    "Evaluation",
    "FlatModel",
    "FlatOptimizer",
    "Layout",
    "LocalTrainer",
    "StepResult",
    "apply_update_",
    "build_model",
    "flatten_",
    "model_hash",
    "model_names",
    "model_of",
    "parameter_count",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "gossip.learn.models": ("build_model", "model_names", "model_of", "parameter_count"),
        "gossip.learn.flat": ("FlatModel", "Layout", "flatten_", "model_hash"),
        "gossip.learn.optim": ("FlatOptimizer", "apply_update_"),
        "gossip.learn.trainer": ("Evaluation", "LocalTrainer", "StepResult"),
        "gossip.learn.batches": ("BatchOrder",),
    },
)
