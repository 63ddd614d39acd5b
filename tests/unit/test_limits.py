"""Per-sender token buckets."""

from __future__ import annotations

from gossip.net.ratelimit import RateLimiter


def test_burst_then_refuse_then_refill() -> None:
    """A sender gets `burst` messages at once, is refused after, and regains tokens at `rate`/s."""
    rl = RateLimiter(rate_per_s=10, burst=5, node_count=4)
    assert all(rl.allow(1, now=0.0) for _ in range(5))
    assert not rl.allow(1, now=0.0)
    assert rl.allow(1, now=0.1)  # one token back after 0.1 s at 10/s
    assert not rl.allow(1, now=0.1)


def test_senders_have_separate_budgets() -> None:
    """One flooding neighbour does not spend another's budget."""
    rl = RateLimiter(rate_per_s=1, burst=2, node_count=4)
    assert rl.allow(1, now=0) and rl.allow(1, now=0) and not rl.allow(1, now=0)
    assert rl.allow(2, now=0)


def test_strangers_share_one_bucket() -> None:
    """Senders that are not nodes of the run (unknown or out of range) share one bucket: bounded state."""
    rl = RateLimiter(rate_per_s=1, burst=2, node_count=4)
    assert rl.allow(None, now=0) and rl.allow(99, now=0)
    assert not rl.allow(-5, now=0)
    assert len(rl._tokens) == 1


def test_zero_rate_means_unlimited() -> None:
    rl = RateLimiter(rate_per_s=0, burst=1, node_count=2)
    assert all(rl.allow(0, now=0) for _ in range(10_000))
