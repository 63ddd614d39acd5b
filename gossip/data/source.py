"""Where a run's data comes from: a loader, shipped or a plug-in, that returns arrays in memory or lazy torch datasets.

``[data] dataset`` names a shipped dataset (:mod:`gossip.data.datasets`) or a plug-in loader, by import path
(``mylab.data:load``) or entry point name (group ``gossip.datasets``). All are :class:`DatasetLoader`
functions, resolved in that order (shipped, entry point, import path) and called by :func:`load_source`:

- a :class:`~gossip.data.dataset.Dataset` is the whole training and test set in memory: the launcher caches it
  as ``data.npz`` and every node reads it, as for the shipped datasets;
- a :class:`TorchData` holds map-style datasets (``len(d)``, ``d[i] -> (x, y)``, e.g. ``torch.utils.data.Dataset``)
  that read samples when asked. The launcher reads only ``train[0]`` and ``test[0]`` (the input shape) and the
  labels the loader gives, splits the indices and writes ``shards.npz``; each node calls the loader itself and
  reads its own part's samples and the test set (:func:`node_dataset`). ``gossip simulate`` holds every node in
  one process and reads everything (:func:`dataset_of`).

Everything a loader can get wrong is one line naming ``[data] dataset`` and the plug-in: options its signature
refuses, an exception, the wrong type, an empty split, samples of different shapes, labels out of range.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from gossip import plugins
from gossip.data.dataset import MAX_CLASSES, Dataset
from gossip.data.datasets import DATASET_NAMES, dataset_shape, load_dataset, unknown_dataset
from gossip.data.partition import load_part
from gossip.data.split import call_plugin, shard_key, split_training_set
from gossip.errors import DataError

if TYPE_CHECKING:
    from gossip.config import RunConfig

__all__ = [
    "SHIPPED_LOADERS",
    "DatasetLoader",
    "MapDataset",
    "TorchData",
    "dataset_of",
    "dataset_shape_of",
    "is_shipped",
    "load_source",
    "node_dataset",
    "probe_dataset",
    "resolve_loader",
    "source_shape",
    "split_of",
]


class MapDataset(Protocol):
    """A map-style dataset (``torch.utils.data.Dataset`` is one): ``len(d)`` samples, ``d[i]`` the pair ``(x, y)``."""

    def __len__(self) -> int:
        """The number of samples."""
        ...

    def __getitem__(self, index: int, /) -> Any:
        """Sample ``index`` as ``(x, y)``: x array-like (a tensor, an ndarray), y an integer class index."""
        ...


@dataclass(frozen=True, eq=False)
class TorchData:
    """A loader's lazy answer: a training and a test set read sample by sample, and the number of classes.

    ``labels``, the training set's labels in order, lets a label-skewed partition (dirichlet, shards) split
    the data without reading every sample; without it only splits that ignore labels (iid, most plug-ins) run.
    """

    train: MapDataset
    test: MapDataset
    num_outputs: int  # classes: the model's output units
    labels: Sequence[int] | np.ndarray | None = None


class DatasetLoader(Protocol):
    """The contract of ``[data] dataset``: ``root`` is ``[data] root``, ``seed`` is ``[run] seed``, options ``[data] options``."""

    def __call__(self, root: str, seed: int, **options: Any) -> Dataset | TorchData:
        """The run's data, in memory or lazy."""
        ...


SHIPPED_LOADERS: Mapping[str, Callable[..., Dataset]] = MappingProxyType(
    {name: functools.partial(load_dataset, name) for name in DATASET_NAMES}
)


def is_shipped(name: str) -> bool:
    """Whether ``name`` is a shipped dataset (any case): its size is known from the config alone."""
    return name.strip().lower() in SHIPPED_LOADERS


def resolve_loader(name: str) -> Callable[..., object]:
    """The loader ``name`` stands for: shipped first, then an entry point, then an import path; else one line."""
    shipped = SHIPPED_LOADERS.get(name.strip().lower())
    if shipped is not None:
        return shipped
    if plugins.is_import_path(name) or _registered(name):
        return plugins.load(plugins.DATASET, name)
    raise unknown_dataset(name)


def _registered(name: str) -> bool:
    """Whether a package registers ``name`` under ``gossip.datasets`` (looked up only for names that are not shipped)."""
    from importlib.metadata import entry_points

    return bool(entry_points(group=plugins.DATASET.group, name=name))


def load_source(cfg: RunConfig, *, probe: bool = True) -> Dataset | TorchData:
    """Call ``cfg``'s loader and check what it returned: a :class:`Dataset`, or a :class:`TorchData` checked as far as
    ``train[0]`` and ``test[0]`` show (``probe=False``: not even those, for a node that reads only its part)."""
    name = cfg.data.dataset
    loader = resolve_loader(name)
    where = f"{plugins.DATASET.where} = {name!r}"
    if is_shipped(name):  # its settings are [data] keys, its errors already name it and what to change
        found = loader(cfg.data.root, cfg.run.seed, **cfg.data.dataset_options())
    else:
        found = call_plugin(
            where, loader, (cfg.data.root, cfg.run.seed), plugins.parse_options(plugins.DATASET.options_where, cfg.data.options)
        )
    if isinstance(found, Dataset):
        return found
    if not isinstance(found, TorchData):
        raise DataError(f"{where} returned a {type(found).__name__}; a loader returns gossip.data.Dataset or gossip.data.TorchData")
    return _checked(where, found, probe)


def _checked(where: str, data: TorchData, probe: bool) -> TorchData:
    """``data`` with its labels as int64, refused in one line when its sizes, first samples or labels are wrong."""
    for split in ("train", "test"):
        d = getattr(data, split)
        if not (hasattr(d, "__len__") and hasattr(d, "__getitem__")):
            raise DataError(f"{where}: TorchData.{split} is a {type(d).__name__}, not a map-style dataset (len(d), d[i] -> (x, y))")
        if len(d) == 0:
            raise DataError(f"{where}: TorchData.{split} is empty; a run needs training and test samples")
    k = data.num_outputs
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_CLASSES:
        raise DataError(f"{where}: TorchData.num_outputs must be an integer in 1..{MAX_CLASSES:,}, got {k!r}")
    if probe:
        shape = _sample(where, "train", data.train, 0, int(k))[0].shape
        test_shape = _sample(where, "test", data.test, 0, int(k))[0].shape
        if test_shape != shape:
            raise DataError(f"{where}: inconsistent shapes: train[0] has shape {shape} but test[0] has {test_shape}")
    if data.labels is None:
        return data
    labels = np.asarray(data.labels)
    if labels.ndim != 1 or len(labels) != len(data.train) or (labels.size and labels.dtype.kind not in "iu"):
        raise DataError(
            f"{where}: TorchData.labels must be {len(data.train)} integer labels, one per training sample (got {labels.dtype} {labels.shape})"
        )
    if int(labels.min()) < 0 or int(labels.max()) >= k:
        raise DataError(f"{where}: TorchData.labels holds labels outside 0..{k - 1}")
    return dataclasses.replace(data, labels=labels.astype(np.int64))


def _sample(where: str, split: str, data: MapDataset, i: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``data[i]`` as a float32 array and its target, refused in one line when it is not such a pair.

    A target is an integer class index in ``0..classes-1`` (classification), or a float array or number (a
    regression target, kept as float32); :class:`Dataset` then checks the whole split, finiteness included.
    """
    try:
        item = data[i]
    except Exception as exc:
        raise DataError(f"{where}: reading {split}[{i}] failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise DataError(f"{where}: {split}[{i}] is a {type(item).__name__}; a sample is the pair (x, y)")
    try:
        x = np.asarray(item[0], dtype=np.float32)
        y = np.asarray(item[1])
    except Exception as exc:
        raise DataError(f"{where}: {split}[{i}] is not numeric array-like: {type(exc).__name__}: {exc}") from None
    if x.ndim == 0:
        raise DataError(f"{where}: {split}[{i}]'s x is a scalar; a sample's x has at least one dimension (features)")
    if y.dtype.kind == "f":
        return x, y.astype(np.float32)
    if y.ndim != 0 or y.dtype.kind not in "iu" or not 0 <= int(y) < classes:
        raise DataError(f"{where}: {split}[{i}]'s y must be an integer class index in 0..{classes - 1} or a float target, got {item[1]!r}")
    return x, y.astype(np.int64)


def _arrays(
    where: str, split: str, data: MapDataset, indices: Sequence[int] | np.ndarray, shape: tuple[int, ...] | None, classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """The samples ``indices`` of ``data`` as C-contiguous float32 features and targets: only these are read.

    Every sample must have ``shape`` (``None``: the first one's), and every target the first one's kind and shape.
    """
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    for row, i in enumerate(indices):
        xi, yi = _sample(where, split, data, int(i), classes)
        if x is None or y is None:
            x = np.empty((len(indices), *(shape or xi.shape)), dtype=np.float32)
            y = np.empty((len(indices), *yi.shape), dtype=yi.dtype)
        if xi.shape != x.shape[1:]:
            raise DataError(f"{where}: inconsistent shapes: {split}[{int(i)}] has shape {xi.shape}, the training samples {x.shape[1:]}")
        if yi.dtype != y.dtype or yi.shape != y.shape[1:]:
            raise DataError(
                f"{where}: inconsistent targets: {split}[{int(i)}]'s y is {yi.dtype} {yi.shape}, the first sample's {y.dtype} {y.shape[1:]}"
            )
        x[row], y[row] = xi, yi
    assert x is not None and y is not None  # indices is never empty: checked splits and sizes
    return x, y


def _as_dataset(cfg: RunConfig, data: TorchData, train: Sequence[int] | np.ndarray) -> Dataset:
    """The training samples ``train`` and the whole test set of ``data``, read and held as a :class:`Dataset`."""
    where, k = f"{plugins.DATASET.where} = {cfg.data.dataset!r}", int(data.num_outputs)
    x_train, y_train = _arrays(where, "train", data.train, train, None, k)
    shape = x_train.shape[1:]
    x_test, y_test = _arrays(where, "test", data.test, range(len(data.test)), shape, k)
    return Dataset(cfg.data.dataset, x_train, y_train, x_test, y_test, num_classes=k, input_shape=shape)


def probe_dataset(cfg: RunConfig, data: Dataset | TorchData) -> Dataset:
    """What the launcher tries the model, loss and metric on: in-memory data itself, or a lazy dataset's ``train[0]`` alone.

    One sample, not two, for a lazy dataset: the launcher reads ``train[0]`` for the shape anyway, and no other
    sample (a node's part is read by that node only).
    """
    if isinstance(data, Dataset):
        return data
    where, k = f"{plugins.DATASET.where} = {cfg.data.dataset!r}", int(data.num_outputs)
    x, y = _arrays(where, "train", data.train, [0], None, k)
    return Dataset(cfg.data.dataset, x, y, x, y, num_classes=k, input_shape=x.shape[1:])


def source_shape(data: Dataset | TorchData) -> tuple[tuple[int, ...], int, int, int]:
    """``(input_shape, classes, train, test)`` of loaded data; a lazy one reads ``train[0]`` again, nothing else."""
    if isinstance(data, Dataset):
        return data.input_shape, data.num_classes, data.num_train, data.num_test
    shape = np.asarray(data.train[0][0], dtype=np.float32).shape
    return shape, int(data.num_outputs), len(data.train), len(data.test)


def dataset_shape_of(cfg: RunConfig) -> tuple[tuple[int, ...], int, int, int]:
    """``(input_shape, classes, train, test)`` of ``cfg``'s data: from the config for a shipped dataset, else by calling its loader."""
    if is_shipped(cfg.data.dataset):
        return dataset_shape(cfg.data.dataset, **cfg.data.dataset_options())
    return source_shape(load_source(cfg))


def dataset_of(cfg: RunConfig) -> Dataset:
    """All of ``cfg``'s data in memory, a lazy dataset read in full: for one process that holds every node (``gossip simulate``)."""
    found = load_source(cfg)
    if isinstance(found, Dataset):
        return found
    return _as_dataset(cfg, found, range(len(found.train)))


def node_dataset(cfg: RunConfig, nodes: int, node_id: int, run_dir: Path | None) -> tuple[Dataset, np.ndarray]:
    """Node ``node_id``'s data and the indices of its training samples in it, reading no other node's samples.

    Data in memory comes whole (the node keeps its part); a lazy dataset is read for this node's part only
    (from the launcher's ``shards.npz`` when it matches, else split here) and the test set, and the indices
    returned then count within that part.
    """
    found = load_source(cfg, probe=False)  # the launcher probed; reading train[0] here would read another node's sample
    count = found.num_train if isinstance(found, Dataset) else len(found.train)
    shard = load_part(run_dir / "shards.npz", shard_key(cfg, nodes, count), node_id, count) if run_dir else None
    if shard is None:  # no launcher-written split for this config: compute it (the same function the launcher ran)
        shard = split_of(cfg, nodes, found)[node_id]
    if isinstance(found, Dataset):
        return found, shard
    return _as_dataset(cfg, found, shard), np.arange(len(shard), dtype=np.int64)


def split_of(cfg: RunConfig, nodes: int, data: Dataset | TorchData) -> list[np.ndarray]:
    """Every node's training indices of loaded ``data`` under ``cfg`` (a lazy dataset's labels when its loader gave them)."""
    if isinstance(data, Dataset):
        return split_training_set(cfg, nodes, data.y_train)
    return split_training_set(cfg, nodes, None if data.labels is None else np.asarray(data.labels), len(data.train))
