"""Your own CNN as a model plug-in: 4 gossip nodes train it on CIFAR-10-format files this script writes.

    python examples/own_cnn.py            # writes ~700 small images, launches 4 node processes, prints the accuracy

The same run from the command line, once the files exist in DIR (``write_cifar10``):

    PYTHONPATH=examples gossip launch --nodes 4 --topology ring --rounds 15 --set data.dataset=cifar10 \\
        --set data.root=DIR --set model.name=own_cnn:SmallCNN --set model.options=width=8

``[model] name = "own_cnn:SmallCNN"`` names the class; gossip calls it as ``SmallCNN(input_shape, num_outputs,
**options)`` with the dataset's per-sample shape (3, 32, 32) and class count (10), and ``[model] options``
as the keyword arguments. The module must import on the launcher's Python path (``python examples/...`` puts
this directory there; the launcher gives its nodes that path).
"""

from __future__ import annotations

import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

import gossip

TRAIN_PER_CLASS, TEST_PER_CLASS = 50, 20  # 500 training and 200 test images in all


class SmallCNN(nn.Module):
    """Two 3x3 convolutions with max-pooling, then one linear layer. No BatchNorm, so ``gossip simulate`` runs it too.

    It keeps PyTorch's default initialisation: gossip re-initialises only its own shipped models.
    """

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, width: int = 8) -> None:
        super().__init__()
        channels, height, width_px = input_shape  # (3, 32, 32) for CIFAR-10
        self.conv1 = nn.Conv2d(channels, width, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, kernel_size=3, padding=1)
        self.out = nn.Linear(2 * width * (height // 4) * (width_px // 4), num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        logits: torch.Tensor = self.out(x.flatten(1))
        return logits


def write_cifar10(root: Path, seed: int = 0) -> None:
    """Write the six CIFAR-10 python batches (``data_batch_1..5``, ``test_batch``) into ``root``.

    Each class is a fixed random colour pattern plus heavy pixel noise: a task a small CNN learns in a few
    rounds, where a single pixel says little. The files have the official layout (protocol-2 pickles of a
    dict with ``data`` uint8 (N, 3072), channel-major rows, and ``labels``), which gossip reads without unpickling code.
    """
    rng = np.random.default_rng(seed)
    patterns = rng.normal(0.0, 1.0, size=(10, 3072))

    def images(per_class: int) -> tuple[np.ndarray, list[int]]:
        labels = np.repeat(np.arange(10), per_class)
        rng.shuffle(labels)
        pixels = 128 + 40 * patterns[labels] + rng.normal(0.0, 60.0, size=(len(labels), 3072))
        return np.clip(pixels, 0, 255).astype(np.uint8), labels.tolist()

    root.mkdir(parents=True, exist_ok=True)
    train, labels = images(TRAIN_PER_CLASS)
    for k, rows in enumerate(np.array_split(np.arange(len(labels)), 5), start=1):
        _write_batch(root / f"data_batch_{k}", train[rows], [labels[i] for i in rows])
    _write_batch(root / "test_batch", *images(TEST_PER_CLASS))


def _write_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    path.write_bytes(pickle.dumps({b"batch_label": path.name.encode(), b"labels": labels, b"data": data}, protocol=2))


def config(root: str | Path, rounds: int = 15) -> gossip.RunConfig:
    """4 nodes on a ring train :class:`SmallCNN` on the CIFAR-10-format files in ``root``."""
    return gossip.configure(
        gossip.RunConfig(),
        {
            "run.nodes": 4,
            "topology.spec": "ring",
            "training.rounds": rounds,
            "training.eval_every": 5,
            "data.dataset": "cifar10",
            "data.root": str(root),
            "model.name": "own_cnn:SmallCNN",
            "model.options": "width=8",
            "metrics.enabled": False,
        },
    )


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        write_cifar10(Path(tmp) / "cifar10")
        result = gossip.experiment(config(Path(tmp) / "cifar10"), run_dir=Path(tmp) / "run", progress=False)
        if not result.ok:
            print(result.log)
            return 1
        print(f"final accuracy {result.accuracy_mean:.3f} over 4 nodes (chance 0.100)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
