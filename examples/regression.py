"""A regression task for gossip: its own data loader, model, loss and metric, as plug-ins.

    python examples/regression.py              # 4 node processes learn y = sin(x) from noisy samples
    python examples/regression.py --simulate   # the same run, every node in one process

The nodes fit y = sin(x) + noise on x in [-3, 3]. Every piece is a plug-in named in the config:

- ``[model] name = "regression:SineNet"``: called as ``SineNet(input_shape, num_outputs, **[model] options)``;
- ``[training] loss = "regression:huber"``: called with ``loss_options`` as keyword arguments, returns
  ``loss(outputs, targets) -> 0-d tensor`` (``"torch.nn:MSELoss"`` works the same way);
- ``[training] metric = "regression:WithinTolerance"``: called with ``metric_options``, returns a callable whose
  value on a batch is a per-sample mean; its ``name`` and ``higher_is_better`` go into summaries and plots;
- ``[data] dataset = "regression:load"``: the loader contract ``load(root, seed, **options) -> gossip.data.Dataset``,
  here with float targets (only the iid split applies to them).

The same run from the command line: ``PYTHONPATH=examples gossip launch --config regression.toml``, with the
keys of :func:`config` in the file.

The module must import on the Python path of every process that uses it (``python examples/...`` puts this
directory there).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

import gossip
from gossip.data import Dataset


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


def config(rounds: int = 60) -> gossip.RunConfig:
    """The run: 4 nodes on a ring, iid split (the only split float targets have), each piece above as a plug-in."""
    return gossip.configure(
        gossip.RunConfig(),
        {
            "run.nodes": 4,
            "topology.spec": "ring",
            "training.rounds": rounds,
            "training.local_steps": 5,
            "training.lr": 0.05,
            "training.eval_every": 10,
            "data.dataset": "regression:load",
            "metrics.enabled": False,
            "model.name": "regression:SineNet",
            "training.loss": "regression:huber",
            "training.loss_options": "delta=0.5",
            "training.metric": "regression:WithinTolerance",
            "training.metric_options": "tol=0.2",
        },
    )


def main() -> int:
    simulated = "--simulate" in sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        result = gossip.experiment(config(), run_dir=Path(tmp) / "run", simulate=simulated, progress=False)
        if not result.ok:
            print(result.log)
            return 1
        within = result.records.array("accuracy")  # the metric's values: (nodes, rounds), NaN between evaluations
    print(f"round  {result.summary.metric.name} (mean over 4 nodes)")
    for t in range(within.shape[1]):
        if not np.isnan(within[:, t]).all():
            print(f"{t + 1:5d}  {np.nanmean(within[:, t]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
