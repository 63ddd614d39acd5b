"""Writes CIFAR-10 python batches for the tests: the one place in the repository that makes a pickle."""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gossip.data.files import CIFAR_SAMPLE_BYTES
from gossip.errors import DataError

__all__ = ["write_cifar_batch"]


def write_cifar_batch(
    path: str | Path, data: np.ndarray, labels: Sequence[int] | np.ndarray, *, batch_label: str = "fixture batch"
) -> None:
    """Write a batch in the official CIFAR-10 python format; for making test fixtures only.

    ``data`` is uint8 ``(N, 3072)`` (channel-major rows, as in the real files).
    """
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_SAMPLE_BYTES:
        raise DataError(f"CIFAR-10 data must be uint8 of shape (N, {CIFAR_SAMPLE_BYTES}), got {data.dtype} {data.shape}")
    label_list = [int(v) for v in labels]
    if len(label_list) != len(data):
        raise DataError(f"{len(data)} images but {len(label_list)} labels")
    batch = {
        b"batch_label": batch_label.encode(),
        b"labels": label_list,
        b"data": data,
        b"filenames": [f"fixture_{i}.png".encode() for i in range(len(data))],
    }
    # the official batches ARE protocol-2 pickles: the tests need byte-faithful fixtures to exercise the
    # package's restricted reader (gossip.data.files.read_cifar_batch), which never calls pickle.load
    payload = pickle.dumps(batch, protocol=2)
    path = Path(path)
    path.write_bytes(gzip.compress(payload, mtime=0) if path.suffix == ".gz" else payload)
