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
    """A train/test split held in memory. Arrays are C-contiguous.

    Targets are either class labels (classification: ``y`` int64 of shape ``(N,)``, values ``0..num_classes-1``)
    or regression targets (``y`` float32 of shape ``(N, *target_shape)``, the same shape in both splits, every
    value finite). ``num_classes`` is the width of the model's output in both cases (:attr:`num_outputs`): the
    number of classes, or what the model must output for one sample's target (e.g. 1 for ``y`` of shape ``(N,)``
    or ``(N, 1)``). Which partitions apply: every one to labels, ``iid`` only to float targets.
    """

    name: str
    x_train: np.ndarray  # float32, shape (N_train, *input_shape)
    y_train: np.ndarray  # int64 (N_train,) labels, or float32 (N_train, *target_shape) regression targets
    x_test: np.ndarray  # float32, shape (N_test, *input_shape)
    y_test: np.ndarray  # like y_train
    num_classes: int  # the model's output count: classes, or the regression output's width
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
            if x.shape != (len(y), *self.input_shape):
                raise DataError(f"dataset {self.name!r}: x_{split} has shape {x.shape}, expected {(len(y), *self.input_shape)}")
            self._check_targets(split, y)
        if self.y_train.dtype != self.y_test.dtype or self.y_train.shape[1:] != self.y_test.shape[1:]:
            raise DataError(
                f"dataset {self.name!r}: y_train and y_test differ ({self.y_train.dtype} {self.y_train.shape[1:]} vs "
                f"{self.y_test.dtype} {self.y_test.shape[1:]} per sample)"
            )

    def _check_targets(self, split: str, y: np.ndarray) -> None:
        """Labels in ``0..num_classes-1``, or finite C-contiguous float32 targets."""
        if y.dtype == np.float32:
            if y.ndim < 1 or not y.flags.c_contiguous or not np.isfinite(y).all():
                raise DataError(f"dataset {self.name!r}: float y_{split} must be C-contiguous, at least 1-D and finite")
            return
        if y.dtype != np.int64 or y.ndim != 1:
            raise DataError(
                f"dataset {self.name!r}: y_{split} must be 1-D int64 labels or float32 regression targets, got {y.dtype} {y.shape}"
            )
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise DataError(f"dataset {self.name!r}: y_{split} has labels outside 0..{self.num_classes - 1}")

    @property
    def num_outputs(self) -> int:
        """The width of the model's output: the number of classes, or of a regression target's values per sample."""
        return self.num_classes

    @property
    def is_regression(self) -> bool:
        """Whether the targets are float regression targets, not class labels."""
        return bool(self.y_train.dtype == np.float32)

    @property
    def num_train(self) -> int:
        """Number of training samples."""
        return len(self.y_train)

    @property
    def num_test(self) -> int:
        """Number of test samples."""
        return len(self.y_test)
