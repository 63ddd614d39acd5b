"""Which rounds get a line in a node's log: a feed a person reads, beside the JSONL that has every round.

A node writes every round's record to its JSONL. Its log (``docker compose logs``, ``kubectl logs``, the
launcher's ``node-<i>.log``) gets the first round, then at most one round every ``interval_s`` seconds,
and at once any round where something a person watches for happened: the set of neighbours whose model
is missing changed (one went missing, or came back) or the node resumed from a checkpoint. (A rejected
message is logged where it is rejected, once per reason; the lines carry the running count.) The last round is always logged, when the node stops (held back until then if it was not
due), so the log ends where the run ended.

Why not a line per round: rounds of a small model take milliseconds, so a line per round is hundreds of
lines a second per node — a flood in any log collector — and a logging call, cold between rounds, is a
noticeable share of a small model's round (``bench/round_time.py`` measures it).
``interval_s = 0`` logs every round.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["RoundLines"]


class RoundLines:
    """Decides, record by record, whether a round's line goes to the log now."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_s
        self._clock = clock
        self._last_logged: float | None = None
        self._missing: Any = []  # the previous record's, logged or not
        self._held: Mapping[str, Any] | None = None

    def due(self, record: Mapping[str, Any]) -> bool:
        """True if ``record``'s line should be logged now; otherwise it is held as the latest unlogged one."""
        missing = record.get("missing", [])
        changed = missing != self._missing or "resumed" in record
        self._missing = missing
        now = self._clock()
        if self._last_logged is None or changed or now - self._last_logged >= self._interval:
            self._last_logged = now
            self._held = None
            return True
        self._held = record
        return False

    def take_held(self) -> Mapping[str, Any] | None:
        """The last record that was not logged (the run's last round, when the node stops), once."""
        held, self._held = self._held, None
        return held
