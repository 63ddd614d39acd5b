"""Datasets and how they are split across nodes: load, cache, partition.

File-format readers (MNIST IDX, CIFAR-10 python batches) live in :mod:`gossip.data.files`; they are not
re-exported because only the loaders need them (and the CIFAR fixture writer there emits pickles).
"""

from __future__ import annotations

from gossip.data.datasets import DATASET_NAMES, Dataset, load_dataset, load_npz, save_npz
from gossip.data.partition import PARTITION_SCHEMES, label_histogram, load_part, partition, partition_key, save_parts

__all__ = [
    "DATASET_NAMES",
    "PARTITION_SCHEMES",
    "Dataset",
    "label_histogram",
    "load_dataset",
    "load_npz",
    "load_part",
    "partition",
    "partition_key",
    "save_npz",
    "save_parts",
]
