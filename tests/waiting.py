"""Waiting on a condition that real processes make true, with a deadline that turns a hang into a failure."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_until(
    done: Callable[[], bool], *, timeout_s: float, what: str, still: Callable[[], None] | None = None, every_s: float = 0.05
) -> None:
    """Poll ``done()`` until it holds; ``still()`` (if given) asserts, on each poll, that waiting still makes sense.

    The deadline is a hang guard sized generously, not a claim about speed (speed is measured in bench/):
    when it passes, the test fails with ``what``.
    """
    deadline = time.monotonic() + timeout_s
    while not done():
        if still is not None:
            still()
        if time.monotonic() > deadline:
            pytest.fail(f"{what} (waited {timeout_s:g} s)")
        time.sleep(every_s)
