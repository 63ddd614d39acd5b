"""The Dataset value: a train/test split in memory, checked once when it is made so every user can trust its arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gossip.errors import DataError

__all__ = ["MAX_CLASSES", "Dataset"]

MAX_CLASSES = 100_000
"""Most classes a dataset may declare: the model's output layer has one unit per class."""


@dataclass(frozen=True, eq=False)  # eq=False: == on arrays is elementwise, so a generated __eq__ would be wrong
class Dataset:
    """A train/test split held in memory. Arrays are C-contiguous; labels are ``0..num_classes-1``."""

    name: str
    x_train: np.ndarray  # float32, shape (N_train, *input_shape)
    y_train: np.ndarray  # int64, shape (N_train,)
    x_test: np.ndarray  # float32, shape (N_test, *input_shape)
    y_test: np.ndarray  # int64, shape (N_test,)
    num_classes: int
    input_shape: tuple[int, ...]  # per-sample shape, e.g. (40,) or (1, 28, 28)

    def __post_init__(self) -> None:
        if not 1 <= self.num_classes <= MAX_CLASSES:
            raise DataError(f"dataset {self.name!r}: num_classes must be in 1..{MAX_CLASSES:,}, got {self.num_classes:,}")
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if len(y) == 0:
                # an empty test set "scores" 0.0 accuracy; an empty training set trains nothing: neither is a run
                raise DataError(f"dataset {self.name!r} has no {'training' if split == 'train' else 'test'} samples")
            if x.dtype != np.float32 or not x.flags.c_contiguous:
                raise DataError(f"dataset {self.name!r}: x_{split} must be C-contiguous float32, got {x.dtype}")
            if y.dtype != np.int64 or y.ndim != 1:
                raise DataError(f"dataset {self.name!r}: y_{split} must be 1-D int64, got {y.dtype} {y.shape}")
            if x.shape != (len(y), *self.input_shape):
                raise DataError(f"dataset {self.name!r}: x_{split} has shape {x.shape}, expected {(len(y), *self.input_shape)}")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise DataError(f"dataset {self.name!r}: y_{split} has labels outside 0..{self.num_classes - 1}")

    @property
    def num_train(self) -> int:
        """Number of training samples."""
        return len(self.y_train)

    @property
    def num_test(self) -> int:
        """Number of test samples."""
        return len(self.y_test)
