"""Split a training set across nodes: IID, per-class Dirichlet, or label shards; deterministic in the seed.

Every scheme assigns each sample to exactly one node (the parts are disjoint and their union is every
index), and ``partition(labels, n, scheme, seed, **params)`` is a pure function: the launcher and each
node process compute the same split independently from the shared seed. (Reproducible across machines
as long as numpy's ``Generator`` streams are the same, i.e. the same numpy version, as in one venv.)

Each part is returned **sorted ascending** (int64). Batching order is the trainer's business: it
shuffles with its own seeded generator, and sorted parts make splits easy to compare and log.

Schemes
-------
``iid``
    A seeded permutation cut into ``n`` parts whose sizes differ by at most one.
``dirichlet``
    Per class, proportions ``q ~ Dir(alpha * 1_n)`` over nodes (Yurochkin et al. 2019; Wang et al.
    2020, "FedMA"), as decentralizepy's ``DirichletDataPartitioner`` does it: a node that already holds
    ``N / n`` samples gets no more (the "balance" trick), and the whole draw is repeated until every node
    has at least ``min_size`` samples. Unlike decentralizepy the retries are capped
    (:data:`MAX_DIRICHLET_DRAWS`), so an impossible request fails instead of spinning. Smaller
    ``alpha`` means more skew; sizes vary between nodes.
``shards``
    McMahan et al. 2017 ("Communication-efficient learning of deep networks from decentralized data"):
    shuffle, sort by label (stable), cut into ``n * shards_per_node`` contiguous shards of near-equal
    size, and deal each node ``shards_per_node`` random shards. When every class size is a multiple of
    the shard size, a node sees at most ``shards_per_node`` classes; in general a shard can straddle a
    class boundary, so at most ``2 * shards_per_node`` while shards are no larger than the smallest class.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gossip.data.files import read_npz
from gossip.errors import DataError

__all__ = ["MAX_DIRICHLET_DRAWS", "PARTITION_SCHEMES", "label_histogram", "load_part", "partition", "partition_key", "save_parts"]

PARTITION_SCHEMES: tuple[str, ...] = ("iid", "dirichlet", "shards")
MAX_DIRICHLET_DRAWS = 1000


def partition(
    labels: np.ndarray,
    n_nodes: int,
    scheme: str,
    seed: int,
    *,
    alpha: float = 0.5,
    shards_per_node: int = 2,
    min_size: int | None = None,
) -> list[np.ndarray]:
    """Split the sample indices ``0..len(labels)-1`` into ``n_nodes`` disjoint, sorted int64 arrays.

    Parameters
    ----------
    labels
        1-D array of non-negative integer class labels, one per training sample.
    alpha
        Dirichlet concentration (``dirichlet`` only); must be > 0 whatever the scheme.
    shards_per_node
        Shards dealt to each node (``shards`` only).
    min_size
        Smallest part any node may get. Default: the number of distinct labels for ``dirichlet``
        (decentralizepy's rule), 1 otherwise. A split that cannot meet it raises.

    Raises
    ------
    DataError
        Unknown scheme, invalid parameters, or a split that cannot give every node ``min_size`` samples.
    """
    _check_choices(scheme, seed, alpha)
    labels = _check_labels(_class_labels(labels, scheme))
    n = _positive_int("n_nodes", n_nodes)
    spn = _positive_int("shards_per_node", shards_per_node)
    total = len(labels)
    if n > total:
        raise DataError(f"cannot split {total} samples across {n} nodes: every node needs at least one")
    if min_size is None:
        need = len(np.unique(labels)) if scheme == "dirichlet" else 1
    else:
        need = _positive_int("min_size", min_size)
    if n * need > total:
        raise DataError(f"cannot give each of {n} nodes at least {need} samples: there are only {total}")

    rng = np.random.default_rng(int(seed))
    if scheme == "iid":
        parts = np.array_split(rng.permutation(total), n)
    elif scheme == "dirichlet":
        parts = _dirichlet(labels, n, float(alpha), need, rng)
    else:
        if n * spn > total:
            raise DataError(f"cannot cut {total} samples into {n} nodes x {spn} shards = {n * spn} non-empty shards")
        parts = _shards(labels, n, spn, rng)

    result = [np.sort(p).astype(np.int64, copy=False) for p in parts]
    smallest = min(range(n), key=lambda i: len(result[i]))
    if len(result[smallest]) < need:
        raise DataError(f"{scheme} split gives node {smallest} only {len(result[smallest])} samples, fewer than min_size={need}")
    return result


def _class_labels(labels: np.ndarray, scheme: str) -> np.ndarray:
    """``labels`` as they are, or for float regression targets one dummy class: only ``iid`` splits those (it needs the count only)."""
    if np.asarray(labels).dtype.kind != "f":
        return labels
    if scheme != "iid":
        raise DataError(
            f"partition {scheme!r} splits by class label, but this dataset's targets are floats (regression); use partition 'iid'"
        )
    return np.zeros(len(labels), dtype=np.int64)


def _check_choices(scheme: str, seed: int, alpha: float) -> None:
    """Refuse an unknown scheme (with a did-you-mean), a seed that is not a non-negative integer, or a non-positive alpha."""
    if scheme not in PARTITION_SCHEMES:
        close = difflib.get_close_matches(str(scheme), PARTITION_SCHEMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"unknown partition scheme {scheme!r}{hint}; known: {', '.join(PARTITION_SCHEMES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"partition seed must be a non-negative integer, got {seed!r}")
    is_number = isinstance(alpha, (int, float, np.integer, np.floating)) and not isinstance(alpha, bool)
    if not is_number or not np.isfinite(alpha) or alpha <= 0:
        raise DataError(f"dirichlet alpha must be a positive number, got {alpha!r}")


# --- a split computed once -------------------------------------------------------------------------------
# The launcher splits the data and writes every part; a node reads its own instead of recomputing the
# split, which would import numpy.random (~3 MiB in every node process) for a result the launcher has.


def partition_key(
    num_samples: int, n_nodes: int, scheme: str, seed: int, *, alpha: float, shards_per_node: int, min_size: int | None
) -> str:
    """Everything a split depends on besides the labels themselves, as one string: a cached split is used only when it matches."""
    return json.dumps([num_samples, n_nodes, scheme, seed, float(alpha), shards_per_node, min_size])


def save_parts(parts: Sequence[np.ndarray], key: str, path: str | Path) -> None:
    """Write a split (uncompressed .npz, no pickle) next to the data it splits, tagged with its :func:`partition_key`."""
    arrays = {"key": np.asarray(key, dtype=np.str_), **{f"part_{i}": np.asarray(p, dtype=np.int64) for i, p in enumerate(parts)}}
    with open(path, "wb") as handle:  # a file object: np.savez would append ".npz" to a name
        np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy stubs type savez's **kwds as its bool flag


def load_part(path: str | Path, key: str, i: int, num_samples: int) -> np.ndarray | None:
    """Part ``i`` of a split :func:`save_parts` wrote with the same key; None when there is none (then compute it)."""
    try:
        arrays = read_npz(path, ("key", f"part_{i}"), "split cache")
    except DataError:  # missing, torn, foreign or too large: the node computes its part
        return None
    part = arrays.get(f"part_{i}")
    if part is None or "key" not in arrays or str(arrays["key"]) != key:
        return None
    if part.dtype != np.int64 or part.ndim != 1 or (len(part) and not (0 <= int(part.min()) and int(part.max()) < num_samples)):
        return None
    return part


def _dirichlet(labels: np.ndarray, n: int, alpha: float, need: int, rng: np.random.Generator) -> list[np.ndarray]:
    """decentralizepy's per-class Dirichlet split with the balance trick, retried until ``need`` is met."""
    total = len(labels)
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    best = 0
    for _ in range(MAX_DIRICHLET_DRAWS):
        sizes = np.zeros(n, dtype=np.int64)
        chunks: list[list[np.ndarray]] = [[] for _ in range(n)]
        for members in by_class:
            members = rng.permutation(members)
            open_ = sizes < total / n  # the balance trick: full nodes take no more
            q = rng.dirichlet(np.full(n, alpha)) * open_
            if not q.sum() > 0:  # every open node drew an underflowed 0 (tiny alpha): share evenly
                q = open_.astype(np.float64)
            q /= q.sum()
            cuts = (np.cumsum(q) * len(members)).astype(np.int64)[:-1]
            for j, piece in enumerate(np.split(members, cuts)):
                chunks[j].append(piece)
                sizes[j] += len(piece)
        if int(sizes.min()) >= need:
            return [np.concatenate(c) for c in chunks]
        best = max(best, int(sizes.min()))
    raise DataError(
        f"dirichlet split (alpha={alpha}) left some node with fewer than min_size={need} samples after "
        f"{MAX_DIRICHLET_DRAWS} draws (the best draw's smallest part: {best}); raise alpha, lower min_size or use fewer nodes"
    )


def _shards(labels: np.ndarray, n: int, per_node: int, rng: np.random.Generator) -> list[np.ndarray]:
    """McMahan et al.'s label shards: label-sorted order cut into ``n * per_node`` pieces, dealt at random."""
    shuffled = rng.permutation(len(labels))
    # Shuffling first makes each shard a random draw within its classes, not the source's order.
    order = shuffled[np.argsort(labels[shuffled], kind="stable")]
    shards = np.array_split(order, n * per_node)
    deal = rng.permutation(n * per_node).reshape(n, per_node)
    return [np.concatenate([shards[s] for s in row]) for row in deal]


def label_histogram(labels: np.ndarray, parts: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Count each class in each part: an int64 array of shape ``(len(parts), num_classes)``."""
    labels = _check_labels(labels)
    k = _positive_int("num_classes", num_classes)
    if int(labels.max()) >= k:
        raise DataError(f"label {int(labels.max())} does not fit num_classes={k}")
    hist = np.zeros((len(parts), k), dtype=np.int64)
    for i, part in enumerate(parts):
        hist[i] = np.bincount(labels[np.asarray(part, dtype=np.int64)], minlength=k)
    return hist


def _check_labels(labels: np.ndarray) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer) or len(array) == 0:
        raise DataError(f"labels must be a non-empty 1-D integer array, got {array.dtype} {array.shape}")
    if int(array.min()) < 0:
        raise DataError(f"labels must be non-negative, found {int(array.min())}")
    return array


def _positive_int(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"{what} must be a positive integer, got {value!r}")
    return int(value)
