"""gossip.data.source and gossip.data.split: a dataset loader and a partition named like any plug-in, the shipped
ones through the same path, a lazy dataset read only where it is needed, and every split's output checked."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gossip.config import RunConfig, load_config
from gossip.data import TorchData, partition
from gossip.data.source import dataset_of, load_source, resolve_loader
from gossip.data.split import SHIPPED_PARTITIONS, check_parts, resolve_partition, split_training_set
from gossip.errors import ConfigError, DataError
from gossip.node.plan import plan_node

LAB = """
import numpy as np
from gossip.data import TorchData

READ = []


class Counted:
    def __init__(self, n, split):
        self.n, self.split = n, split

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        READ.append((self.split, i))
        return np.full(3, float(i), dtype=np.float32), i % 2


def lazy(root, seed, size=20):
    return TorchData(Counted(size, "train"), Counted(6, "test"), num_outputs=2)


def labelled(root, seed):
    return TorchData(Counted(20, "train"), Counted(6, "test"), num_outputs=2, labels=[i % 2 for i in range(20)])


class Regression(Counted):
    def __getitem__(self, i):
        x, _ = super().__getitem__(i)
        return x, np.array([0.5 * i, -float(i)], dtype=np.float64)


def lazy_regression(root, seed, mixed=False):
    test = Counted(6, "test") if mixed else Regression(6, "test")
    return TorchData(Regression(20, "train"), test, num_outputs=2)


def halves(num_samples, labels, nodes, seed, shift=0):
    return [list(range(shift + i, num_samples, nodes)) for i in range(nodes)]


def relay_first(num_samples, labels, nodes, seed):
    return [[]] + [list(range(i - 1, num_samples, nodes - 1)) for i in range(1, nodes)]


relay_first.allows_empty = True
"""


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's module ``datalab`` on the path, and a distribution that registers its loader and split as entry points."""
    (tmp_path / "datalab.py").write_text(textwrap.dedent(LAB))
    info = tmp_path / "datalab-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: datalab\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[gossip.datasets]\nlabset = datalab:lazy\n\n[gossip.partitions]\nhalves = datalab:halves\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "datalab", raising=False)
    return tmp_path


def config(**data: object) -> RunConfig:
    return load_config(env={}, overrides={"run.nodes": 2, "topology.spec": "complete", **{f"data.{k}": v for k, v in data.items()}})


def reads() -> list[tuple[str, int]]:
    import datalab

    return list(datalab.READ)


def test_a_shipped_name_resolves_to_the_shipped_loader_before_any_plug_in() -> None:
    """``digits`` is the shipped loader under the plug-in contract ``load(root, seed, **options)``, any case."""
    ds = resolve_loader("Digits")("", 0)
    assert ds.num_train == 1437 and ds.input_shape == (64,)


def test_an_entry_point_name_loads_the_registered_dataset_and_partition(lab: Path) -> None:
    """Names registered under ``gossip.datasets`` and ``gossip.partitions`` are accepted and called with their options."""
    cfg = config(dataset="labset", options=["size=8"], partition="halves", partition_options=["shift=1"])
    found = load_source(cfg)
    assert isinstance(found, TorchData) and len(found.train) == 8
    assert [p.tolist() for p in split_training_set(cfg, 2, None, 8)] == [[1, 3, 5, 7], [2, 4, 6]]


def test_the_shipped_partitions_are_the_same_split_through_the_plug_in_contract() -> None:
    """``iid``, ``dirichlet`` and ``shards`` resolve to functions of the contract that give :func:`partition`'s split."""
    labels = np.arange(100) % 5
    for scheme in ("iid", "dirichlet", "shards"):
        assert resolve_partition(scheme) is SHIPPED_PARTITIONS[scheme]
        got = check_parts(scheme, SHIPPED_PARTITIONS[scheme](100, labels, 4, 7, alpha=0.5), 4, 100)
        assert all(np.array_equal(a, b) for a, b in zip(got, partition(labels, 4, scheme, 7), strict=True))


def test_parts_may_overlap_across_nodes_and_come_back_sorted() -> None:
    """Two nodes may hold the same sample (replicated data), and a part need not be in order or cover everything."""
    got = check_parts("p", [np.array([3, 1]), (1, 2)], 2, 5)
    assert [p.tolist() for p in got] == [[1, 3], [1, 2]] and all(p.dtype == np.int64 for p in got)


def test_a_split_that_allows_empty_parts_gives_those_nodes_no_data() -> None:
    """``allows_empty``: an empty part is a node without data (it only mixes), not a mistake; the others come back as usual."""
    got = check_parts("p", [[], [2, 0]], 2, 5, allows_empty=True)
    assert [p.tolist() for p in got] == [[], [0, 2]] and all(p.dtype == np.int64 for p in got)


def test_an_empty_part_is_refused_unless_the_split_allows_it() -> None:
    """Without ``allows_empty`` an empty part is a bug in the split: one line that says how to mean it."""
    with pytest.raises(DataError, match=r"part 0 is empty; every node needs at least one sample \(or mark the split allows_empty = True\)"):
        check_parts("p", [[], [1]], 2, 5)


def test_a_split_where_no_node_holds_data_is_refused_even_when_it_allows_empty_parts() -> None:
    """At least one node must hold data: a run of relays alone trains nothing."""
    with pytest.raises(DataError, match="every part is empty; at least one node needs data"):
        check_parts("p", [[], []], 2, 5, allows_empty=True)


def test_a_plug_in_split_marked_allows_empty_reaches_the_run_with_its_empty_parts(lab: Path) -> None:
    """:func:`split_training_set` reads the plug-in's ``allows_empty`` attribute: node 0 gets nothing, the others the data."""
    parts = split_training_set(config(partition="datalab:relay_first"), 3, np.arange(9) % 3)
    assert [len(p) for p in parts] == [0, 5, 4]


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        (5, "returned a int, not one sequence of sample indices per node"),
        ([[0], [[1, 2]]], "part 1 is not a flat sequence of integer sample indices"),
        ([[0], [True]], "part 1 is not a flat sequence of integer sample indices"),
        ([[0], [-1]], "part 1 holds index -1, outside the training set's 0..4"),
        ([[0], [1, [2]]], "part 1 is not a flat sequence of integer sample indices"),
    ],
    ids=["not-a-sequence", "nested", "booleans", "negative", "ragged"],
)
def test_a_split_that_is_not_one_valid_part_per_node_is_refused(parts: object, message: str) -> None:
    """Whatever a plug-in returns is checked as hostile input: one DataError line naming what is wrong."""
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace(".", r"\.")):
        check_parts("p", parts, 2, 5)


def test_a_node_plan_of_a_lazy_dataset_reads_only_its_part_and_the_test_set(lab: Path) -> None:
    """``gossip node`` without a run directory splits the indices itself, then reads its part's samples and the test
    set, nothing else: not even ``train[0]`` when another node holds it."""
    plan = plan_node(config(dataset="datalab:lazy", partition="datalab:halves"), 1)
    assert plan.dataset.num_train == 10 and plan.shard.tolist() == list(range(10))
    assert plan.dataset.x_train[:, 0].tolist() == [float(i) for i in range(1, 20, 2)]
    assert sorted(reads()) == sorted([("train", i) for i in range(1, 20, 2)] + [("test", i) for i in range(6)])


def test_the_simulation_reads_a_lazy_dataset_whole(lab: Path) -> None:
    """One process holds every node, so ``dataset_of`` reads every training and test sample once into a Dataset."""
    ds = dataset_of(config(dataset="datalab:labelled"))
    assert ds.num_train == 20 and ds.num_test == 6 and ds.y_train.tolist() == [i % 2 for i in range(20)]
    assert sorted(reads()) == sorted([("train", i) for i in range(20)] + [("test", i) for i in range(6)] + [("train", 0), ("test", 0)])


def test_labels_a_loader_gives_must_be_one_integer_label_per_training_sample(lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Labels feed label-skewed splits: a wrong count is refused in one line naming the loader."""
    import datalab

    monkeypatch.setattr(
        datalab, "labelled", lambda root, seed: TorchData(datalab.Counted(20, "train"), datalab.Counted(6, "test"), 2, labels=[0, 1])
    )
    with pytest.raises(DataError, match=r"\[data\] dataset = 'datalab:labelled': TorchData.labels must be 20 integer labels"):
        load_source(config(dataset="datalab:labelled"))


def test_a_malformed_import_path_for_a_dataset_is_refused_by_the_config() -> None:
    """``[data] dataset = "my data:load"`` is neither a name nor an import path: the config says how to write it."""
    with pytest.raises(ConfigError, match=r"\[data\] dataset = 'my data:load' is not an import path"):
        config(dataset="my data:load")


def test_a_lazy_dataset_may_hold_float_regression_targets(lab: Path) -> None:
    """``y`` a float array per sample: a node's part is float32 targets of that shape (regression), read as given."""
    part = plan_node(config(dataset="datalab:lazy_regression"), 0).dataset
    assert part.is_regression and part.y_train.dtype == np.float32 and part.y_train.shape == (part.num_train, 2)
    index = part.x_train[:, 0]  # sample i's features are all i
    assert part.y_train[:, 0].tolist() == (0.5 * index).tolist() and part.y_train[:, 1].tolist() == (-index).tolist()


def test_a_lazy_dataset_whose_targets_change_kind_between_samples_is_refused(lab: Path) -> None:
    """Float targets in the training set and class indices in the test set: one DataError naming both."""
    with pytest.raises(DataError, match=r"y_train and y_test differ \(float32 \(2,\) vs int64"):
        dataset_of(config(dataset="datalab:lazy_regression", options=["mixed=true"]))
