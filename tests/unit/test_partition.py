"""Partitioners: every scheme is a deterministic split into disjoint parts covering every sample."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.data import PARTITION_SCHEMES, label_histogram, load_part, partition, partition_key, save_parts
from gossip.errors import DataError

# Not `import gossip.data.partition as m`: that finds the function gossip.data re-exports under the same name.
partition_module = importlib.import_module("gossip.data.partition")

N_SAMPLES = 2000


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    """2000 labels over 10 classes, near-balanced like MNIST-1D, in random order."""
    return np.random.default_rng(0).integers(0, 10, N_SAMPLES)


def _max_class_fraction(labels: np.ndarray, parts: list[np.ndarray]) -> float:
    """Mean over nodes of the fraction of the node's data in its most common class (1.0 = one class each)."""
    hist = label_histogram(labels, parts, 10)
    return float((hist.max(1) / hist.sum(1)).mean())


@pytest.mark.parametrize("scheme", PARTITION_SCHEMES)
@pytest.mark.parametrize("n_nodes", [1, 7, 16])
def test_parts_are_disjoint_and_complete(labels: np.ndarray, scheme: str, n_nodes: int) -> None:
    """Every sample index is in exactly one part, for every scheme and node count."""
    parts = partition(labels, n_nodes, scheme, seed=3)

    everything = np.concatenate(parts)
    assert len(parts) == n_nodes
    assert np.array_equal(np.sort(everything), np.arange(N_SAMPLES))


@pytest.mark.parametrize("scheme", PARTITION_SCHEMES)
def test_parts_are_sorted_int64(labels: np.ndarray, scheme: str) -> None:
    """Each part is an int64 array sorted ascending (shuffling for batches is the trainer's job)."""
    parts = partition(labels, 8, scheme, seed=0)

    for part in parts:
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)


@pytest.mark.parametrize("scheme", PARTITION_SCHEMES)
def test_same_seed_gives_identical_split(labels: np.ndarray, scheme: str) -> None:
    """Same labels, node count, scheme, seed and parameters: the same parts, part for part."""
    first = partition(labels, 10, scheme, seed=11, alpha=0.3, shards_per_node=3)
    second = partition(labels.copy(), 10, scheme, seed=11, alpha=0.3, shards_per_node=3)

    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("scheme", PARTITION_SCHEMES)
def test_different_seed_gives_different_split(labels: np.ndarray, scheme: str) -> None:
    """Another seed moves samples between nodes."""
    first = partition(labels, 10, scheme, seed=1)
    second = partition(labels, 10, scheme, seed=2)

    assert not all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_iid_sizes_differ_by_at_most_one(labels: np.ndarray) -> None:
    """iid cuts a permutation into n nearly equal parts (2000 over 7 nodes: 285 or 286 each)."""
    sizes = [len(p) for p in partition(labels, 7, "iid", seed=0)]

    assert max(sizes) - min(sizes) <= 1


def test_iid_parts_mirror_the_global_label_mix(labels: np.ndarray) -> None:
    """With 4 nodes of 500 samples each, no class is over-represented much: max class fraction < 0.15."""
    assert _max_class_fraction(labels, partition(labels, 4, "iid", seed=0)) < 0.15


def test_dirichlet_small_alpha_is_much_more_skewed(labels: np.ndarray) -> None:
    """Mean per-node max class fraction: above 0.5 at alpha=0.1, below 0.2 at alpha=100 (0.1 = uniform)."""
    skewed = _max_class_fraction(labels, partition(labels, 16, "dirichlet", seed=0, alpha=0.1))
    uniform = _max_class_fraction(labels, partition(labels, 16, "dirichlet", seed=0, alpha=100.0))

    assert skewed > 0.5 and uniform < 0.2


@pytest.mark.parametrize("seed", range(5))
def test_dirichlet_default_min_size_is_the_number_of_classes(labels: np.ndarray, seed: int) -> None:
    """By default (decentralizepy's rule) every node gets at least one sample per class present: 10 here."""
    parts = partition(labels, 32, "dirichlet", seed=seed, alpha=0.1)

    assert min(len(p) for p in parts) >= 10


def test_dirichlet_explicit_min_size_is_respected(labels: np.ndarray) -> None:
    """An explicit min_size (here 60 with 16 nodes, i.e. about half the mean share) holds for every node."""
    parts = partition(labels, 16, "dirichlet", seed=0, alpha=0.5, min_size=60)

    assert min(len(p) for p in parts) >= 60


def test_dirichlet_balance_caps_node_sizes(labels: np.ndarray) -> None:
    """The balance trick: a node stops receiving once it holds N/n samples, so none exceeds N/n plus one class."""
    parts = partition(labels, 16, "dirichlet", seed=0, alpha=0.1)

    largest_class = np.bincount(labels).max()
    assert max(len(p) for p in parts) < N_SAMPLES / 16 + largest_class


def test_dirichlet_gives_up_with_a_clear_error(labels: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreachable min_size ends after MAX_DIRICHLET_DRAWS draws with a DataError, not an endless loop."""
    monkeypatch.setattr(partition_module, "MAX_DIRICHLET_DRAWS", 5)

    with pytest.raises(DataError, match="after 5 draws"):
        partition(labels, 16, "dirichlet", seed=0, alpha=0.001, min_size=120)


@pytest.mark.parametrize("scheme", PARTITION_SCHEMES)
def test_more_nodes_than_samples_is_refused(scheme: str) -> None:
    """5 samples cannot feed 6 nodes: a DataError saying so, for every scheme."""
    with pytest.raises(DataError, match="cannot split 5 samples across 6 nodes"):
        partition(np.arange(5) % 2, 6, scheme, seed=0)


@pytest.mark.parametrize("scheme", PARTITION_SCHEMES)
def test_impossible_min_size_is_refused_up_front(labels: np.ndarray, scheme: str) -> None:
    """n_nodes * min_size > N is refused before any drawing."""
    with pytest.raises(DataError, match="at least 201 samples"):
        partition(labels, 10, scheme, seed=0, min_size=201)


def test_shards_exact_case_gives_each_node_at_most_shards_per_node_classes() -> None:
    """10 classes x 100 samples, 10 nodes x 2 shards of 50: each shard is one class, each node <= 2 classes."""
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 100))

    parts = partition(labels, 10, "shards", seed=0, shards_per_node=2)

    assert all(len(np.unique(labels[p])) <= 2 for p in parts)
    assert all(len(p) == 100 for p in parts)


@pytest.mark.parametrize("shards_per_node", [1, 2, 3])
def test_shards_general_case_gives_each_node_at_most_twice_shards_per_node_classes(labels: np.ndarray, shards_per_node: int) -> None:
    """With shards no larger than the smallest class, a shard spans <= 2 classes, so a node sees <= 2 * s."""
    n_nodes = 20
    assert N_SAMPLES // (n_nodes * shards_per_node) + 1 <= np.bincount(labels).min()  # the premise

    parts = partition(labels, n_nodes, "shards", seed=0, shards_per_node=shards_per_node)

    assert max(len(np.unique(labels[p])) for p in parts) <= 2 * shards_per_node


def test_shards_is_far_more_skewed_than_iid(labels: np.ndarray) -> None:
    """Two shards per node on 10 nodes: the mean max class fraction is at least 0.5 (iid: about 0.12)."""
    assert _max_class_fraction(labels, partition(labels, 10, "shards", seed=0)) >= 0.5


def test_too_many_shards_is_refused() -> None:
    """More shards than samples cannot all be non-empty: DataError."""
    with pytest.raises(DataError, match="non-empty shards"):
        partition(np.arange(10) % 2, 4, "shards", seed=0, shards_per_node=3)


def test_unknown_scheme_lists_the_known_ones(labels: np.ndarray) -> None:
    """An unknown scheme is a DataError naming iid, dirichlet and shards."""
    with pytest.raises(DataError, match="known: iid, dirichlet, shards"):
        partition(labels, 4, "kshard", seed=0)


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan"), float("inf")])
def test_non_positive_or_non_finite_alpha_is_refused(labels: np.ndarray, alpha: float) -> None:
    """alpha must be a positive finite number."""
    with pytest.raises(DataError, match="alpha"):
        partition(labels, 4, "dirichlet", seed=0, alpha=alpha)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_nodes": 0}, "n_nodes"),
        ({"n_nodes": True}, "n_nodes"),
        ({"seed": -1}, "seed"),
        ({"shards_per_node": 0}, "shards_per_node"),
        ({"min_size": 0}, "min_size"),
    ],
)
def test_invalid_parameters_are_refused(labels: np.ndarray, kwargs: dict[str, object], message: str) -> None:
    """Out-of-range integer parameters are a DataError naming the parameter."""
    args: dict[str, object] = {"n_nodes": 4, "scheme": "iid", "seed": 0, **kwargs}

    with pytest.raises(DataError, match=message):
        partition(labels, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [np.zeros((3, 2), dtype=np.int64), np.array([0, -1]), np.array([], dtype=np.int64)],
    ids=["2-d", "negative", "empty"],
)
def test_invalid_labels_are_refused(bad: np.ndarray) -> None:
    """Labels must be a non-empty 1-D array of non-negative integers."""
    with pytest.raises(DataError, match="labels"):
        partition(bad, 1, "iid", seed=0)


def test_iid_splits_float_regression_targets_like_labels_of_the_same_count() -> None:
    """iid needs only the sample count: float targets (any per-sample shape) split exactly as labels would."""
    targets = np.linspace(0, 1, 40, dtype=np.float32).reshape(20, 2)

    parts = partition(targets, 4, "iid", seed=3)

    expected = partition(np.zeros(20, dtype=np.int64), 4, "iid", seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, expected, strict=True))


@pytest.mark.parametrize("scheme", ["dirichlet", "shards"])
def test_label_partitions_refuse_float_targets_in_one_line(scheme: str) -> None:
    """dirichlet and shards split by class, which float regression targets do not have: one DataError line saying use iid."""
    with pytest.raises(DataError, match=f"partition '{scheme}' splits by class label, but this dataset's targets are floats"):
        partition(np.array([0.0, 1.0, 2.0, 3.0], dtype=np.float32), 2, scheme, seed=0)


def test_label_histogram_counts_classes_per_part(labels: np.ndarray) -> None:
    """Rows sum to part sizes, columns to class counts, shape (n_nodes, num_classes)."""
    parts = partition(labels, 5, "dirichlet", seed=0)

    hist = label_histogram(labels, parts, 12)

    assert hist.shape == (5, 12) and hist.dtype == np.int64
    assert hist.sum(1).tolist() == [len(p) for p in parts]
    assert np.array_equal(hist.sum(0), np.bincount(labels, minlength=12))


def test_label_histogram_refuses_labels_beyond_num_classes(labels: np.ndarray) -> None:
    """A label >= num_classes is a DataError, not a silently widened histogram."""
    with pytest.raises(DataError, match="num_classes"):
        label_histogram(labels, [np.arange(N_SAMPLES)], 5)


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 5), min_size=1, max_size=300),
    n_nodes=st.integers(1, 12),
    scheme=st.sampled_from(PARTITION_SCHEMES),
    seed=st.integers(0, 2**32),
    alpha=st.floats(0.01, 100.0),
    shards_per_node=st.integers(1, 4),
)
def test_any_split_is_disjoint_complete_or_a_data_error(
    labels: list[int], n_nodes: int, scheme: str, seed: int, alpha: float, shards_per_node: int
) -> None:
    """Property: for any input, partition either returns a disjoint cover of all indices or raises DataError."""
    array = np.asarray(labels, dtype=np.int64)
    try:
        parts = partition(array, n_nodes, scheme, seed, alpha=alpha, shards_per_node=shards_per_node)
    except DataError:
        return

    assert len(parts) == n_nodes and all(len(p) >= 1 for p in parts)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(array)))


def test_a_saved_split_is_read_back_only_for_the_same_key(tmp_path: Path) -> None:
    """The launcher's shards.npz gives a node its part; another key, a missing or corrupt file, or indices
    outside the training set mean "compute it" (None), never a wrong shard."""
    labels = np.repeat(np.arange(4), 25)
    parts = partition(labels, 5, "dirichlet", 3, alpha=0.3)
    key = partition_key(100, 5, "dirichlet", 3, alpha=0.3, shards_per_node=2, min_size=None)
    save_parts(parts, key, tmp_path / "shards.npz")

    assert all(np.array_equal(load_part(tmp_path / "shards.npz", key, i, 100), parts[i]) for i in range(5))
    other = partition_key(100, 5, "dirichlet", 4, alpha=0.3, shards_per_node=2, min_size=None)
    assert load_part(tmp_path / "shards.npz", other, 0, 100) is None
    assert load_part(tmp_path / "shards.npz", key, 5, 100) is None
    assert load_part(tmp_path / "shards.npz", key, 0, 10) is None  # a part that indexes past the data
    assert load_part(tmp_path / "missing.npz", key, 0, 100) is None
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert load_part(tmp_path / "bad.npz", key, 0, 100) is None
