"""A regression task for gossip: its own data loader, model, loss and metric, as plug-ins.

    python examples/regression.py         # 4 simulated nodes learn y = sin(x) from noisy samples

The nodes fit y = sin(x) + noise on x in [-3, 3]. Every piece is a plug-in named in the config:

- ``[model] name = "regression:SineNet"``: called as ``SineNet(input_shape, num_outputs, **[model] options)``;
- ``[training] loss = "regression:huber"``: called with ``loss_options`` as keyword arguments, returns
  ``loss(outputs, targets) -> 0-d tensor`` (``"torch.nn:MSELoss"`` works the same way);
- ``[training] metric = "regression:WithinTolerance"``: called with ``metric_options``, returns a callable whose
  value on a batch is a per-sample mean; its ``name`` and ``higher_is_better`` go into summaries and plots;
- :func:`load` has the loader contract ``load(root, seed, **options) -> gossip.data.Dataset`` with float
  targets. This script hands the dataset to :func:`gossip.run.simulate.simulate`.

The module must import on the Python path of every process that uses it (``python examples/...`` puts this
directory there).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from gossip.config import RunConfig, load_config
from gossip.data import Dataset
from gossip.run.simulate import simulate


def load(root: str, seed: int, samples: int = 800, noise: float = 0.1) -> Dataset:
    """y = sin(x) + N(0, noise²) for x uniform on [-3, 3]; a quarter of the samples for the test set. ``root`` is unused."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3.0, 3.0, size=(samples, 1)).astype(np.float32)
    y = (np.sin(x) + rng.normal(0.0, noise, size=x.shape)).astype(np.float32)  # float targets, shape (N, 1)
    cut = samples * 3 // 4
    return Dataset("sine", x[:cut], y[:cut], x[cut:], y[cut:], num_classes=1, input_shape=(1,))  # num_classes: outputs


class SineNet(nn.Module):
    """A small tanh MLP; ``num_outputs`` is the targets' width (1 here)."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(input_shape[0], hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, num_outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


def huber(delta: float = 1.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The Huber loss with threshold ``delta`` (``[training] loss_options = ["delta=0.5"]``): squared near 0, linear beyond."""
    return lambda outputs, targets: nn.functional.huber_loss(outputs, targets, delta=delta)


class WithinTolerance:
    """Share of test samples predicted within ``tol`` of the target: a per-sample mean, so batch means average right."""

    name = "within-tolerance"
    higher_is_better = True

    def __init__(self, tol: float = 0.2) -> None:
        self.tol = tol

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return ((outputs - targets).abs() <= self.tol).float().mean()


def config(rounds: int = 60) -> RunConfig:
    """The run: 4 nodes on a ring, iid split (the only split float targets have), each piece above as a plug-in."""
    return load_config(
        env={},
        overrides={
            "run.nodes": 4,
            "topology.spec": "ring",
            "training.rounds": rounds,
            "training.local_steps": 5,
            "training.lr": 0.05,
            "training.eval_every": 10,
            "model.name": "regression:SineNet",
            "training.loss": "regression:huber",
            "training.loss_options": "delta=0.5",
            "training.metric": "regression:WithinTolerance",
            "training.metric_options": "tol=0.2",
        },
    )


def main() -> int:
    result = simulate(config(), dataset=load("", seed=0))
    print("round  within-tolerance (mean over 4 nodes)")
    for t, value in result.curve:
        print(f"{t:5d}  {value:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
