"""Datasets and how they are split across nodes: load, cache, partition; a user's own through the same contracts.

A loader (:class:`DatasetLoader`: shipped, or a plug-in returning a :class:`Dataset` or a lazy :class:`TorchData`)
and a split (:class:`Partition`) are resolved and checked in :mod:`gossip.data.source` and :mod:`gossip.data.split`.

The :class:`Dataset` value lives in :mod:`gossip.data.dataset`, its .npz cache in :mod:`gossip.data.cache`,
the loaders in :mod:`gossip.data.datasets`. File-format readers (MNIST IDX, CIFAR-10 python batches through
the restricted unpickler of :mod:`gossip.data.unpickle`) live in :mod:`gossip.data.files`; they are not
re-exported because only the loaders need them.
"""

from __future__ import annotations

from gossip.data.cache import load_npz, save_npz
from gossip.data.datasets import DATASET_NAMES, Dataset, load_dataset
from gossip.data.partition import PARTITION_SCHEMES, label_histogram, load_part, partition, partition_key, save_parts
from gossip.data.source import DatasetLoader, TorchData
from gossip.data.split import Partition

__all__ = [
    "DATASET_NAMES",
    "PARTITION_SCHEMES",
    "Dataset",
    "DatasetLoader",
    "Partition",
    "TorchData",
    "label_histogram",
    "load_dataset",
    "load_npz",
    "load_part",
    "partition",
    "partition_key",
    "save_npz",
    "save_parts",
]
