"""A payload frame as a tensor: zero-copy views over the frame, finiteness checks, int8 and half widening.

:mod:`gossip.net.wire` decides what a payload must be; this module reads it without copying what it need
not copy and refuses what is not finite, before any of it reaches a model.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from gossip.errors import RejectReason, WireError
from gossip.net.codec import dequantise_int8

__all__ = ["NUMPY_CHECK_BELOW", "all_finite", "byte_view", "finite_float32", "int8_payload", "tensor_view", "widened"]

NUMPY_CHECK_BELOW = 1 << 16  # float32 payloads smaller than this are checked for finiteness by numpy


def int8_payload(body: memoryview, numel: int) -> torch.Tensor:
    """Dequantise an int8 payload after checking its scales: finite and >= 0 (the product is checked by the caller)."""
    scales, payload = dequantise_int8(body, numel)
    if not all_finite(scales):
        raise WireError(RejectReason.NON_FINITE, "int8 scale")
    if bool((scales < 0).any()):
        raise WireError(RejectReason.BAD_SCALE)
    return payload


def all_finite(x: torch.Tensor) -> bool:
    """True when no element is NaN or ±inf: one vectorised read pass, no allocation.

    A NaN anywhere makes the sum NaN and an infinity makes it infinite (or NaN), so a finite sum
    proves every element finite; summing is the cheapest read pass torch has (bench/wire.py times it
    against ``aminmax`` and ``isfinite(x).all()``, which writes an n-byte mask first). Only a non-finite sum, which finite but huge values can also give, takes the
    exact second pass: ``aminmax`` propagates NaN to both results and an infinity to one of them.
    """
    if x.numel() == 0:
        return True
    if math.isfinite(x.sum().item()):
        return True
    lo, hi = torch.aminmax(x)
    return math.isfinite(lo.item()) and math.isfinite(hi.item())  # two Python floats: no tensor ops on 0-d results


def finite_float32(body: memoryview) -> torch.Tensor:
    """The float32 payload as a zero-copy tensor, once every element is known to be finite.

    Below ``NUMPY_CHECK_BELOW`` elements numpy checks: a model that small costs more in torch's dispatch
    than in the pass, and a receiver meets it cold (numpy's sum would be as fast but warns on inf − inf).
    Above, torch's vectorised sum reads memory faster than numpy's float32 sum, and writes no mask
    (``bench/wire.py`` times both).
    """
    array = np.frombuffer(body, dtype="<f4")
    payload = _from_numpy(array, body.readonly)
    if not (bool(np.isfinite(array).all()) if array.size < NUMPY_CHECK_BELOW else all_finite(payload)):
        raise WireError(RejectReason.NON_FINITE)
    return payload


def byte_view(frame: Any) -> memoryview:
    """A byte view of a frame: bytes, memoryview or a pyzmq Frame (zero copy; a Frame is a buffer itself)."""
    view = memoryview(frame)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def widened(body: memoryview, dtype: str) -> torch.Tensor:
    """A float16 or bfloat16 payload as a fresh float32 tensor (float32 ones take ``finite_float32``)."""
    if dtype == "float16":
        return tensor_view(body, "<f2").to(torch.float32)
    return tensor_view(body, "<i2").view(torch.bfloat16).to(torch.float32)


def tensor_view(body: memoryview, dtype: str, count: int = -1, offset: int = 0) -> torch.Tensor:
    """A zero-copy tensor over ``body``, which nobody writes.

    ZeroMQ frames are writable buffers. Bytes (the in-memory transport, tests) are not, and torch
    warns that it cannot enforce read-only: silenced only then, because ``warnings.catch_warnings``
    costs more than the rest of a small model's decode (bench/transport.py).
    """
    return _from_numpy(np.frombuffer(body, dtype=dtype, count=count, offset=offset), body.readonly)


def _from_numpy(array: np.ndarray, readonly: bool) -> torch.Tensor:
    """``torch.from_numpy``, with torch's warning about read-only memory silenced only for read-only buffers."""
    if not readonly:
        return torch.from_numpy(array)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)
