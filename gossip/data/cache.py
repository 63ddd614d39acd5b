"""The dataset cache: a :class:`~gossip.data.dataset.Dataset` as one uncompressed .npz, written once and read many times.

The launcher loads the dataset once and writes it for its nodes, which read arrays instead of repeating
the load; MNIST-1D is generated once per machine and kept in the user's cache the same way. The file holds no objects (``allow_pickle=False`` both ways) and is read
only within :data:`~gossip.data.files.MAX_NPZ_BYTES`, checked against the arrays' headers first.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from gossip.data.dataset import Dataset
from gossip.data.files import read_npz
from gossip.errors import DataError

__all__ = ["NPZ_FORMAT_VERSION", "load_npz", "save_npz"]

NPZ_FORMAT_VERSION = 1
_NPZ_KEYS = ("format", "name", "x_train", "y_train", "x_test", "y_test", "num_classes", "input_shape")


def save_npz(ds: Dataset, path: str | Path) -> None:
    """Cache ``ds`` as an uncompressed .npz at exactly ``path`` (written atomically: temp file, then rename)."""
    path = Path(path)
    arrays = {
        "format": np.asarray(NPZ_FORMAT_VERSION, dtype=np.int64),
        "name": np.asarray(ds.name, dtype=np.str_),  # a fixed-width unicode array, not an object
        "x_train": ds.x_train,
        "y_train": ds.y_train,
        "x_test": ds.x_test,
        "y_test": ds.y_test,
        "num_classes": np.asarray(ds.num_classes, dtype=np.int64),
        "input_shape": np.asarray(ds.input_shape, dtype=np.int64),
    }

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            # A file object, not a name: np.savez appends ".npz" to names that lack it. No array here
            # has dtype object (Dataset checks the dtypes), so nothing is pickled.
            np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy stubs type savez's **kwds as its bool flag
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; node processes may run as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_npz(path: str | Path) -> Dataset:
    """Load a dataset cached by :func:`save_npz` (``allow_pickle=False``: the cache holds no objects; at most
    :data:`~gossip.data.files.MAX_NPZ_BYTES`, checked against the arrays' headers before they are read)."""
    path = Path(path)
    fields = read_npz(path, _NPZ_KEYS, "dataset cache")
    missing = [k for k in _NPZ_KEYS if k not in fields]
    if missing:
        raise DataError(f"{path} is not a gossip dataset cache (missing {', '.join(missing)})")
    scalars = {k: fields[k] for k in ("format", "name", "num_classes")}
    if any(v.ndim != 0 for v in scalars.values()) or fields["input_shape"].ndim != 1 or fields["format"].dtype.kind not in "iu":
        raise DataError(f"{path} is not a gossip dataset cache (format, name, num_classes and input_shape have the wrong shapes or types)")
    if int(fields["format"]) != NPZ_FORMAT_VERSION:
        raise DataError(f"{path} is dataset cache format {int(fields['format'])}; this gossip reads {NPZ_FORMAT_VERSION}")
    try:
        num_classes, input_shape = int(fields["num_classes"]), tuple(int(v) for v in fields["input_shape"])
    except (TypeError, ValueError):
        raise DataError(f"{path} is not a gossip dataset cache (num_classes and input_shape must be integers)") from None
    return Dataset(
        name=str(fields["name"]),
        x_train=fields["x_train"],
        y_train=fields["y_train"],
        x_test=fields["x_test"],
        y_test=fields["y_test"],
        num_classes=num_classes,
        input_shape=input_shape,
    )
