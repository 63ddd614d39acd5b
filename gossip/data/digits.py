"""The digits dataset (8×8 handwritten digits, 1797 samples) read from the file scikit-learn ships, without importing it.

Why not ``sklearn.datasets.load_digits``: importing scikit-learn takes two to three seconds on a small
machine (it imports SciPy), and every ``gossip launch`` of a digits run paid it before its nodes could
start. The data are one gzipped CSV in scikit-learn's package directory; the test split is scikit-learn's
``train_test_split(test_size=0.2, stratify=y, random_state=seed)`` done here step for step with the same
random stream, so a seed gives the same split as before (``tests/unit/test_digits.py`` compares the two).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np

from gossip.errors import DataError

__all__ = ["TEST_FRACTION", "digits_file", "read_digits", "stratified_split"]

TEST_FRACTION = 0.2


def digits_file() -> Path:
    """Where scikit-learn keeps ``digits.csv.gz``; found by the package's location, which does not import it."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("dataset 'digits' reads scikit-learn's copy of it: install scikit-learn (pip install scikit-learn)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise DataError(f"dataset 'digits': scikit-learn's data file {path} is missing; reinstall scikit-learn")
    return path


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 images as float64 pixel values 0..16 (64 per row) and their int64 labels, in the file's order."""
    raw = np.loadtxt(digits_file(), delimiter=",")
    return raw[:, :-1], raw[:, -1].astype(np.int64)


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Samples per class for ``n_draws`` draws: the floors of the proportional shares, the rest to the largest
    remainders, ties broken by ``rng`` (scikit-learn's rule, so that the random stream stays in step with it)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    counts: np.ndarray = floored.astype(int)
    return counts


def stratified_split(labels: np.ndarray, seed: int, test_fraction: float = TEST_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices with every class in both at its share, shuffled by ``seed``.

    The same draws in the same order as scikit-learn's ``StratifiedShuffleSplit`` (one split) behind
    ``train_test_split``: the class counts of each side, a permutation per class, then one per side.
    """
    n_samples = len(labels)
    n_test = math.ceil(test_fraction * n_samples)
    n_train = n_samples - n_test
    classes, y_indices, class_counts = np.unique(labels, return_inverse=True, return_counts=True)
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for i in range(len(classes)):
        in_class = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(in_class[: n_i[i]])
        test.extend(in_class[n_i[i] : n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)
