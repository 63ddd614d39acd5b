"""Local training and evaluation on one node's shard: the only place that runs the optimiser.

Batches come from a :class:`~gossip.learn.batches.BatchOrder` seeded by (run seed, node id): a fresh
permutation each epoch, so a node's sequence of batches is the same in every run with the same
config — the first half of gossip's determinism (the second is sorted aggregation).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from gossip.config import TrainingConfig
from gossip.learn.batches import BatchOrder
from gossip.learn.device import LossScale, local_autocast, shard_device
from gossip.learn.objectives import build_loss, build_metric
from gossip.learn.optim import FlatOptimizer, UpdateRule, flat_prefix

__all__ = ["Evaluation", "LocalTrainer", "StepResult", "make_optimizer", "update_rule"]


@dataclass(frozen=True)
class StepResult:
    loss: float  # mean training loss over the steps (nan when no step ran)
    seconds: float
    step_seconds: tuple[float, ...]


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # the configured metric's value ([training] metric; accuracy by default)
    loss: float


def update_rule(cfg: TrainingConfig) -> UpdateRule:
    """The configured SGD / Adam settings, for code that updates a vector or a matrix of models itself."""
    return UpdateRule("adam" if cfg.optimizer == "adam" else "sgd", cfg.lr, cfg.momentum, cfg.weight_decay)


def make_optimizer(params: list[nn.Parameter], cfg: TrainingConfig) -> torch.optim.Optimizer | FlatOptimizer:
    """The configured optimiser; its state (momentum, Adam moments) stays local and never travels.

    Parameters that tile one flat vector (every node's, see ``gossip.learn.flat``) get the vectorised
    :class:`~gossip.learn.optim.FlatOptimizer` (same math, less memory per process); anything else
    a ``torch.optim`` one.
    """
    vector = flat_prefix(params)
    if vector is not None:
        return FlatOptimizer(params, vector, kind=cfg.optimizer, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


class LocalTrainer:
    """SGD steps on a fixed shard, and evaluation on a fixed test set."""

    def __init__(
        self,
        model: nn.Module,
        x: np.ndarray,
        y: np.ndarray,
        x_test: np.ndarray,
        y_test: np.ndarray,
        cfg: TrainingConfig,
        batch_size: int,
        seed: int,
        device: torch.device | None = None,
    ) -> None:
        self.model = model
        # on a GPU the test set lives there, and the shard when it fits (else each batch goes over); on the CPU: no copy
        self.device = device = device or torch.device("cpu")
        store = shard_device(device, x.nbytes + y.nbytes)
        self.x = torch.from_numpy(np.ascontiguousarray(x)).to(store)
        self.y = torch.from_numpy(np.ascontiguousarray(y)).to(store)
        self._shard_on_host = store != device
        if self._shard_on_host:  # page-locked, so a batch's copy to the GPU is one DMA
            self.x, self.y = self.x.pin_memory(), self.y.pin_memory()
        self.x_test = torch.from_numpy(np.ascontiguousarray(x_test)).to(device)
        self.y_test = torch.from_numpy(np.ascontiguousarray(y_test)).to(device)
        self.batches = BatchOrder(len(self.x), batch_size, seed)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, cfg)
        self.precision = cfg.precision  # autocast of the forward pass; fp16 with loss scaling
        self.loss_scale = LossScale(cfg.precision == "fp16")
        self.loss_fn = build_loss(cfg)
        self.metric = build_metric(cfg)

    @property
    def batch_size(self) -> int:
        """Samples per step: the configured batch, or the whole shard when that is smaller."""
        return self.batches.batch

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.batches.next()
        if self._shard_on_host:  # a GPU node whose shard did not fit there
            return self.x[idx].to(self.device), self.y[idx].to(self.device)
        return self.x[idx], self.y[idx]

    def steps(self, count: int) -> StepResult:
        """Take ``count`` minibatch steps; returns their mean loss and timings."""
        start = time.perf_counter()
        if count == 0 or len(self.x) == 0:
            return StepResult(float("nan"), 0.0, ())
        if not self.model.training:  # train() walks every submodule; most rounds the model is in train mode already
            self.model.train()
        losses: list[float] = []
        times: list[float] = []
        for _ in range(count):
            t0 = time.perf_counter()
            xb, yb = self._next_batch()
            self.optimizer.zero_grad(set_to_none=True)
            if self.precision == "fp32":  # the plain step, nothing around it (a few µs a step count on small models)
                loss = self.loss_fn(self.model(xb), yb)
                torch.autograd.backward(loss)
                self.optimizer.step()
            else:
                with local_autocast(self.precision, self.device):
                    loss = self.loss_fn(self.model(xb), yb)
                self.loss_scale.backward_and_step(loss, self.optimizer, self.params)
            losses.append(float(loss.detach()))
            times.append(time.perf_counter() - t0)
        return StepResult(sum(losses) / len(losses), time.perf_counter() - start, tuple(times))

    def state(self) -> dict[str, np.ndarray]:
        """The local training state a checkpoint keeps: optimiser buffers and the batch sequence's position.

        Names: ``opt.flat.<buf|sq|steps>`` for the flat-vector optimiser (every node's), else
        ``opt.<param index>.<key>`` (``momentum_buffer``, ``exp_avg``, ``exp_avg_sq``, ``step``), and
        ``batches.rng`` / ``batches.order`` / ``batches.pos``. Numbers only, so a checkpoint never needs pickle.
        """
        out: dict[str, np.ndarray] = {}
        if isinstance(self.optimizer, FlatOptimizer):
            for key, value in self.optimizer.state_arrays().items():
                out[f"opt.flat.{key}"] = value.detach().cpu().numpy().copy()
        for index, entries in ({} if isinstance(self.optimizer, FlatOptimizer) else self.optimizer.state_dict()["state"]).items():
            for key, value in entries.items():
                if isinstance(value, torch.Tensor):
                    out[f"opt.{index}.{key}"] = value.detach().cpu().numpy().copy()
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    out[f"opt.{index}.{key}"] = np.asarray(value)
        out.update({f"batches.{key}": value for key, value in self.batches.state().items()})
        return out

    def load_state(self, extras: Mapping[str, np.ndarray]) -> None:
        """Restore :meth:`state`; raises ``ValueError`` when it does not fit this model and optimiser."""
        if isinstance(self.optimizer, FlatOptimizer):
            flat = {name.split(".", 2)[2]: torch.from_numpy(np.array(v)) for name, v in extras.items() if name.startswith("opt.flat.")}
            if any(name.startswith("opt.") and not name.startswith("opt.flat.") for name in extras):
                raise ValueError("optimiser state of a per-parameter optimiser does not fit this flat one")
            self.optimizer.load_state_arrays(flat)
        params = [] if isinstance(self.optimizer, FlatOptimizer) else [p for group in self.optimizer.param_groups for p in group["params"]]
        state: dict[int, dict[str, torch.Tensor]] = {}
        for name, value in extras.items():
            parts = name.split(".")
            if parts[0] != "opt" or isinstance(self.optimizer, FlatOptimizer):
                continue
            if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(params):
                raise ValueError(f"optimiser state {name!r} does not fit this model")
            index, key = int(parts[1]), parts[2]
            tensor = torch.from_numpy(np.array(value))
            if tensor.ndim and tensor.shape != params[index].shape:
                raise ValueError(f"optimiser state {name!r} has shape {tuple(tensor.shape)}, the parameter {tuple(params[index].shape)}")
            state.setdefault(index, {})[key] = tensor
        if state and not isinstance(self.optimizer, FlatOptimizer):  # state is only ever filled for a torch optimiser
            full = self.optimizer.state_dict()
            full["state"] = state
            self.optimizer.load_state_dict(full)
        if "batches.rng" in extras:
            self.batches.load_state({name.split(".", 1)[1]: value for name, value in extras.items() if name.startswith("batches.")})

    @torch.no_grad()
    def evaluate(self, batch: int = 2048) -> Evaluation:
        """The metric and the mean loss on the whole test set: batch means weighted by batch size."""
        self.model.eval()
        total_metric = 0.0
        total_loss = 0.0
        n = len(self.x_test)
        for i in range(0, n, batch):
            xb, yb = self.x_test[i : i + batch], self.y_test[i : i + batch]
            outputs = self.model(xb)
            total_loss += float(self.loss_fn(outputs, yb)) * len(xb)
            total_metric += self.metric(outputs, yb) * len(xb)
        return Evaluation(total_metric / max(n, 1), total_loss / max(n, 1))
