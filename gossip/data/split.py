"""How a run's training set is split across its nodes: one resolve path for the shipped splits and plug-ins.

``[data] partition`` names a shipped split (``iid``, ``dirichlet``, ``shards``: :mod:`gossip.data.partition`)
or a plug-in, by import path (``mylab.splits:blocks``) or entry point name (group ``gossip.partitions``).
Both are :class:`Partition` functions and go through :func:`split_training_set`, which the launcher, each node
and the simulation share, and which checks every split's output as it would a user's:

- exactly one part per node;
- each part a flat sequence of integer sample indices in ``0..num_samples-1``, non-empty unless the split says
  ``allows_empty = True`` (a node with an empty part holds no data: it takes no local steps and only mixes, a
  relay; at least one part must still hold data);
- no index twice within one part.

Parts may overlap across nodes (two nodes may both hold a sample: replicated data is a legitimate design)
and need not cover every sample; the shipped splits do both by construction.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from gossip import plugins
from gossip.data.partition import PARTITION_SCHEMES, partition, partition_key
from gossip.errors import ConfigError, DataError

if TYPE_CHECKING:
    from gossip.config import RunConfig

__all__ = ["SHIPPED_PARTITIONS", "Partition", "call_plugin", "check_parts", "resolve_partition", "shard_key", "split_training_set"]


Parts = Sequence[Sequence[int] | np.ndarray]
"""What a split returns: per node, its sample indices (a list, a tuple, an integer array or tensor)."""


class Partition(Protocol):
    """The contract of ``[data] partition``: every node's sample indices, a pure function of its arguments.

    ``labels`` is the training set's labels (int64, one per sample), or ``None`` for a lazy dataset whose
    loader gave none. A split that needs labels says so with a ``needs_labels = True`` attribute: the run is
    then refused, in one line, on a dataset without them. A split that gives some nodes no data on purpose says so
    with ``allows_empty = True``; without it an empty part is refused as a mistake. Options are ``[data] partition_options``.
    """

    def __call__(self, num_samples: int, labels: np.ndarray | None, nodes: int, seed: int, **options: Any) -> Parts:
        """One sequence of sample indices per node."""
        ...


def _shipped(scheme: str) -> Partition:
    """The shipped scheme ``scheme`` under the plug-in contract (its options are the ``[data]`` keys alpha, ...)."""

    def split(num_samples: int, labels: np.ndarray | None, nodes: int, seed: int, **options: Any) -> Parts:
        # iid ignores labels; with none given it splits positions alike
        return partition(np.zeros(num_samples, dtype=np.int64) if labels is None else labels, nodes, scheme, seed, **options)

    split.__name__ = scheme
    return split


SHIPPED_PARTITIONS: Mapping[str, Partition] = MappingProxyType({s: _shipped(s) for s in PARTITION_SCHEMES})
_NEEDS_LABELS = ("dirichlet", "shards")


def resolve_partition(name: str) -> Partition:
    """The split ``name`` stands for: a shipped one first, else a plug-in (entry point or import path)."""
    shipped = SHIPPED_PARTITIONS.get(name)
    if shipped is not None:
        return shipped
    found: Partition = plugins.load(plugins.PARTITION, name)  # type: ignore[assignment]  # callable; its output is checked
    return found


def _options(cfg: RunConfig) -> dict[str, Any]:
    """The split's keyword arguments: the ``[data]`` keys for a shipped split, ``[data] partition_options`` for a plug-in."""
    d = cfg.data
    if d.partition in SHIPPED_PARTITIONS:
        return {"alpha": d.alpha, "shards_per_node": d.shards_per_node, "min_size": d.min_size or None}
    return plugins.parse_options(plugins.PARTITION.options_where, d.partition_options)


def split_training_set(cfg: RunConfig, n_nodes: int, labels: np.ndarray | None, num_samples: int | None = None) -> list[np.ndarray]:
    """Every node's sample indices under ``cfg``, each sorted int64, checked (launcher, node and simulation split alike).

    ``num_samples`` defaults to ``len(labels)``; a lazy dataset without labels passes it alone.
    """
    name = cfg.data.partition
    count = num_samples if num_samples is not None else len(labels) if labels is not None else 0
    split = resolve_partition(name)
    if labels is None and (name in _NEEDS_LABELS or getattr(split, "needs_labels", False) is True):
        raise DataError(
            f"{plugins.PARTITION.where} = {name!r} splits by label, but dataset {cfg.data.dataset!r} gives no labels: "
            "return TorchData(..., labels=...) from its loader, or use partition = 'iid'"
        )
    where = f"{plugins.PARTITION.where} = {name!r}"
    args = (count, labels, n_nodes, cfg.run.seed)
    if name in SHIPPED_PARTITIONS:  # its own errors already name the scheme and what to change
        parts = split(*args, **_options(cfg))
    else:
        parts = call_plugin(where, split, args, _options(cfg))
    return check_parts(where, parts, n_nodes, count, allows_empty=getattr(split, "allows_empty", False) is True)


def call_plugin(where: str, function: Callable[..., Any], args: tuple[Any, ...], options: Mapping[str, Any]) -> Any:
    """``function(*args, **options)`` with its failures as one line: options its signature refuses, or anything it raises."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: let the call speak
        signature = None
    if signature is not None:
        try:
            signature.bind(*args, **options)
        except TypeError as exc:
            raise ConfigError(f"{where} refused its options {dict(options)}: {exc}") from None
    try:
        return function(*args, **options)
    except (ConfigError, DataError) as exc:
        raise type(exc)(f"{where}: {exc}") from None
    except Exception as exc:  # the user's code: name it, keep it one line
        raise DataError(f"{where} failed: {type(exc).__name__}: {exc}") from None


def check_parts(where: str, parts: object, nodes: int, num_samples: int, *, allows_empty: bool = False) -> list[np.ndarray]:
    """A split's output as sorted int64 arrays, refused in one line unless it is one valid part per node (see the module).

    ``allows_empty``: the split's ``allows_empty`` attribute; an empty part is then a node without data, not a mistake.
    """
    try:
        seq = list(parts)  # type: ignore[call-overload]  # whatever the user returned: checked here
    except TypeError:
        raise DataError(f"{where} returned a {type(parts).__name__}, not one sequence of sample indices per node") from None
    if len(seq) != nodes:
        raise DataError(f"{where} returned {len(seq)} parts for {nodes} nodes; return exactly one sequence of sample indices per node")
    out = []
    for i, part in enumerate(seq):
        try:
            array = np.asarray(part)
        except Exception:
            array = np.asarray(None)  # ragged or not array-like: refused just below
        if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
            raise DataError(
                f"{where}: part {i} is not a flat sequence of integer sample indices (got {array.dtype} of shape {array.shape})"
            )
        if array.size == 0:
            if allows_empty:
                out.append(np.empty(0, dtype=np.int64))
                continue
            raise DataError(f"{where}: part {i} is empty; every node needs at least one sample (or mark the split allows_empty = True)")
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= num_samples:
            raise DataError(f"{where}: part {i} holds index {low if low < 0 else high}, outside the training set's 0..{num_samples - 1}")
        ordered = np.sort(array.astype(np.int64))
        twice = ordered[1:][ordered[1:] == ordered[:-1]]
        if twice.size:
            raise DataError(f"{where}: part {i} holds index {int(twice[0])} twice; a node's part lists each sample once")
        out.append(ordered)
    if not any(len(part) for part in out):
        raise DataError(f"{where}: every part is empty; at least one node needs data")
    return out


def shard_key(cfg: RunConfig, n_nodes: int, num_train: int) -> str:
    """What the data split of a run depends on (see :func:`gossip.data.partition_key`); a plug-in's key holds its options."""
    d = cfg.data
    if d.partition in SHIPPED_PARTITIONS:
        return partition_key(num_train, n_nodes, d.partition, cfg.run.seed, **_options(cfg))
    return json.dumps([num_train, n_nodes, d.partition, cfg.run.seed, list(d.partition_options)])
