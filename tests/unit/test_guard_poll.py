"""The connection guard's wait between scans (gossip.net.connections): it sleeps, it does not spin."""

from __future__ import annotations

from gossip.net.connections import poll_timeout_ms


def test_a_scan_due_within_a_millisecond_waits_one_millisecond_rather_than_polling_without_a_wait() -> None:
    """0.3 ms before a scan the guard waits 1 ms: a 0 ms poll there would repeat until the scan, a busy loop."""
    assert poll_timeout_ms(10.0003, 10.0) == 1


def test_the_wait_is_the_time_to_the_next_scan_in_whole_milliseconds() -> None:
    """19.2 ms before a scan: a 20 ms wait; at or past it: none (the scan runs now)."""
    assert poll_timeout_ms(0.0192, 0.0) == 20
    assert poll_timeout_ms(5.0, 5.0) == 0
    assert poll_timeout_ms(5.0, 5.1) == 0
