"""The divergence check a node runs every round (gossip.node.records.all_finite): exact, and cheap in the common case."""

from __future__ import annotations

import pytest
import torch

from gossip.node.records import all_finite


@pytest.mark.parametrize(
    ("values", "finite"),
    [
        ([0.0, -1.5, 3.0], True),
        ([3e38, 3e38, -1.0], True),  # finite values whose float32 sum overflows: the exact check says finite
        ([1.0, float("nan"), 2.0], False),
        ([1.0, float("inf"), 2.0], False),
        ([float("inf"), float("-inf")], False),  # their sum is NaN; both are infinite all the same
    ],
    ids=["plain", "sum-overflows", "nan", "inf", "opposite-infinities"],
)
def test_all_finite_is_exact(values: list[float], finite: bool) -> None:
    """A model is finite exactly when every value is, whatever its sum does in float32."""
    assert all_finite(torch.tensor(values, dtype=torch.float32)) is finite
