"""The digits dataset read without scikit-learn gives what scikit-learn's loader and split give."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from gossip.data.datasets import load_dataset
from gossip.data.digits import read_digits, stratified_split


def test_the_file_read_directly_holds_what_load_digits_returns() -> None:
    pixels, labels = read_digits()
    bunch = load_digits()
    assert np.array_equal(pixels, bunch.data) and np.array_equal(labels, bunch.target)


@pytest.mark.parametrize("seed", [0, 1, 2, 7, 42, 1234, 2**31 - 1])
def test_the_split_is_train_test_split_stratified_with_the_same_seed(seed: int) -> None:
    _, labels = read_digits()
    index = np.arange(len(labels))
    want_train, want_test = train_test_split(index, test_size=0.2, random_state=seed, stratify=labels)
    train, test = stratified_split(labels, seed)
    assert np.array_equal(train, want_train) and np.array_equal(test, want_test)


def test_a_split_with_classes_that_tie_on_their_remainders_matches_too() -> None:
    labels = np.repeat(np.arange(7), [25, 25, 25, 24, 24, 13, 13])  # ties: the seed breaks them, in step with scikit-learn
    for seed in range(20):
        want = train_test_split(np.arange(len(labels)), test_size=0.2, random_state=seed, stratify=labels)
        assert all(np.array_equal(a, b) for a, b in zip(stratified_split(labels, seed), want, strict=True))


def test_loading_digits_does_not_import_scikit_learn() -> None:
    probe = "import sys; from gossip.data.datasets import load_dataset; load_dataset('digits'); print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_the_loaded_dataset_is_the_stratified_split_scaled_to_the_unit_interval() -> None:
    ds = load_dataset("digits", seed=3)
    x = (load_digits().data / 16.0).astype(np.float32)
    want_train, want_test = train_test_split(np.arange(len(x)), test_size=0.2, random_state=3, stratify=load_digits().target)
    assert np.array_equal(ds.x_train, x[want_train]) and np.array_equal(ds.x_test, x[want_test])
    assert (len(ds.y_train), len(ds.y_test)) == (1437, 360)
