"""Reusable send buffers: the snapshot of the model a node sends each round, without a fresh allocation.

Why: a model leaves zero-copy (ZeroMQ reads the memory after ``send`` returns), so training must not
write to what is in flight and each round sends a *snapshot*. A fresh ``clone()`` per round costs a
page fault per 4 KiB page on first touch, which at large sizes costs several times a copy into memory
already mapped (``bench/wire.py`` compares the two). The pool copies into a buffer that is no longer in
flight instead.

When a buffer is free again is ZeroMQ's business, so the pool asks ZeroMQ: the payload frame is
handed over as a tracked ``zmq.Frame``, and a buffer returns to the pool once its tracker says libzmq
released every copy of the message (every peer's). Until then it stays busy and the next round takes
another buffer, or allocates one: correctness never depends on timing. An in-memory transport copies
frames on send, so its buffers come back at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import torch
import zmq

__all__ = ["SnapshotPool", "track_live", "until_released"]


class SnapshotPool:
    """At most ``capacity`` float32 send buffers of one size, reused once ZeroMQ is done with them."""

    def __init__(self, capacity: int = 4, min_bytes: int = 32 << 20, *, pinned: bool = False) -> None:
        self.capacity = capacity
        # host buffers in page-locked memory: a GPU node's model comes down into them with one DMA copy,
        # and ZeroMQ sends them from there without another (pin_memory needs CUDA: GPU nodes only)
        self.pinned = pinned
        # Below 32 MiB a plain clone is as cheap: glibc raises its mmap threshold to the size of a freed
        # block (up to 32 MiB), so a clone of that size comes from heap memory already mapped, while a
        # tracked frame has a fixed cost. Above it every clone is a fresh mmap (bench/wire.py compares them).
        self.min_bytes = min_bytes
        self._free: list[torch.Tensor] = []
        self._busy: list[tuple[torch.Tensor, Any]] = []  # (buffer, zmq.MessageTracker)
        self.allocations = 0  # buffers ever allocated: stays at 1-2 in a steady run

    def snapshot(self, source: torch.Tensor) -> torch.Tensor:
        """A copy of ``source`` in a host buffer nobody else reads (a reused one when possible).

        ``source`` may live on a GPU: the copy is then its one device-to-host transfer, finished when this returns.
        """
        if source.numel() * source.element_size() < self.min_bytes:
            return source.clone()
        self._reclaim()
        buffer = self._free.pop() if self._free else None
        if buffer is None or buffer.shape != source.shape:
            buffer = torch.empty(source.shape, dtype=source.dtype, pin_memory=self.pinned)
            self.allocations += 1
        return buffer.copy_(source)

    def track(self, buffer: torch.Tensor, frames: list[Any]) -> list[Any]:
        """``frames`` with the last (payload) frame as a tracked zero-copy ``zmq.Frame``; ``buffer`` is busy until it is released."""
        if buffer.numel() * buffer.element_size() < self.min_bytes:
            return frames  # a clone nobody else holds: garbage once ZeroMQ lets go
        if len(frames) < 2:
            self._free.append(buffer)
            return frames
        frame = zmq.Frame(frames[-1], copy=False, track=True)
        self._busy.append((buffer, frame.tracker))
        return [*frames[:-1], frame]

    def _reclaim(self) -> None:
        still: list[tuple[torch.Tensor, Any]] = []
        for buffer, tracker in self._busy:
            if not tracker.done:
                still.append((buffer, tracker))
            elif len(self._free) < self.capacity:
                self._free.append(buffer)
        self._busy = still

    @property
    def in_flight(self) -> int:
        """Buffers ZeroMQ may still be reading."""
        return sum(1 for _b, t in self._busy if not t.done)


def track_live(frames: list[Any]) -> tuple[list[Any], zmq.MessageTracker]:
    """``frames`` with the payload as a tracked zero-copy frame of the *live* vector, and its tracker.

    Sync D-SGD can skip the snapshot: between sending its model and mixing, a node only waits, so the
    vector stays unchanged while ZeroMQ reads it, provided the node does not write it before the
    tracker says ZeroMQ let go (:func:`until_released`). The caller must drop ``frames`` after
    sending: the frame object itself holds a reference until it is garbage.
    """
    frame = zmq.Frame(frames[-1], copy=False, track=True)
    return [*frames[:-1], frame], frame.tracker


async def until_released(tracker: zmq.MessageTracker, deadline: float, drop_queued: Callable[[], None]) -> bool:
    """Wait (without blocking the event loop) until ZeroMQ released every copy of a tracked message.

    Usually done already: a peer's I/O thread reads our model while we wait for its own. A peer that
    stops reading (stopped process, full TCP window) keeps it past ``deadline`` (monotonic); then
    ``drop_queued`` discards what is still queued to peers — that peer loses this round's model, as
    with a lost message — and libzmq lets go. Returns False only if even that did not release it
    within 5 s (the caller writes the vector anyway; only that stalled peer could see a torn model,
    and it still validates finiteness).
    """
    pause = 0.0002
    while not tracker.done:
        if time.monotonic() >= deadline:
            drop_queued()
            try:
                tracker.wait(5.0)
            except zmq.NotDone:
                return False
            return True
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.005)
    return True
