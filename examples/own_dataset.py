"""A user's own dataset and partition for gossip, as plug-ins: samples read lazily from memory-mapped files.

    python examples/own_dataset.py                        # writes the files, runs 4 node processes, prints accuracy
    python examples/own_dataset.py --write data/own       # only writes the files (the digits, as .npy arrays)
    PYTHONPATH=examples gossip launch --set data.dataset=own_dataset:load --set data.root=data/own \\
        --set data.partition=own_dataset:blocks --set data.partition_options=overlap=10 ...

``load`` returns :class:`gossip.data.TorchData`: the launcher reads two samples (the input shape) and the labels
file, splits the indices with ``blocks`` and starts the nodes; each node calls ``load`` itself and reads only its
own block's samples and the test set. The option ``trace=DIR`` records, per process, which samples it read.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

import gossip
from gossip.data import TorchData


class NpyFolder(Dataset[tuple[torch.Tensor, int]]):
    """One split (``train`` or ``test``) of a folder: ``<split>_x.npy`` opened memory-mapped, so ``len`` reads nothing."""

    def __init__(self, root: Path, split: str, trace: str = "") -> None:
        self.x = np.load(root / f"{split}_x.npy", mmap_mode="r")  # the header only; rows are read when indexed
        self.y = np.load(root / f"{split}_y.npy", mmap_mode="r")
        self.split, self.trace = split, trace

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.trace:  # which process read which sample: lets a test see that a node reads only its part
            with open(Path(self.trace) / f"reads-{os.getpid()}-{self.split}.txt", "a") as log:
                log.write(f"{index}\n")
        return torch.from_numpy(np.array(self.x[index], dtype=np.float32)), int(self.y[index])


def load(root: str, seed: int, trace: str = "") -> TorchData:
    """The gossip.data.DatasetLoader contract: ``root`` is ``[data] root``, options (``trace``) are ``[data] options``."""
    folder = Path(root)
    if not (folder / "train_x.npy").is_file():
        raise FileNotFoundError(f"no train_x.npy in {folder}; write the files first: python examples/own_dataset.py --write {folder}")
    train = NpyFolder(folder, "train", trace)
    labels = np.load(folder / "train_y.npy")  # the labels are small: given, they allow label-skewed partitions too
    return TorchData(train=train, test=NpyFolder(folder, "test", trace), num_outputs=10, labels=labels)


def blocks(num_samples: int, labels: np.ndarray | None, nodes: int, seed: int, overlap: int = 0) -> Sequence[Sequence[int]]:
    """The gossip.data.Partition contract: node i gets the i-th contiguous block, plus the first ``overlap`` samples
    of the next block (parts may overlap across nodes; each part lists a sample once)."""
    bounds = np.linspace(0, num_samples, nodes + 1).astype(int)
    return [list(range(bounds[i], min(bounds[i + 1] + overlap, num_samples))) for i in range(nodes)]


def write(root: str | Path) -> None:
    """The digits (8x8 images, 10 classes) as four .npy files: 1437 training and 360 test samples, shuffled."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    x, y = (digits.data[order] / 16.0).astype(np.float32), digits.target[order].astype(np.int64)
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in (("train_x", x[:1437]), ("train_y", y[:1437]), ("test_x", x[1437:]), ("test_y", y[1437:])):
        np.save(folder / f"{name}.npy", array)


def config(root: str | Path, rounds: int = 20, overlap: int = 10) -> gossip.RunConfig:
    """4 nodes on a ring, each on its own block of the files in ``root`` (plus ``overlap`` samples of the next)."""
    return gossip.configure(
        gossip.RunConfig(),
        {
            "run.nodes": 4,
            "topology.spec": "ring",
            "training.rounds": rounds,
            "data.dataset": "own_dataset:load",
            "data.root": str(root),
            "data.partition": "own_dataset:blocks",
            "data.partition_options": f"overlap={overlap}",
            "metrics.enabled": False,
        },
    )


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write"]:
        write(argv[1] if len(argv) > 1 else "data/own")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp) / "own")
        result = gossip.experiment(config(Path(tmp) / "own"), run_dir=Path(tmp) / "run", progress=False)
        if not result.ok:
            print(result.log)
            return 1
        print(f"final accuracy {result.accuracy_mean:.3f} over 4 nodes, each on its own block (chance 0.100)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
