"""A run's per-round records as one typed object: every node's JSONL read back, and numeric fields as arrays.

Why one reader for every kind of run: ``gossip launch`` and ``gossip simulate`` leave the same files
(``nodes/node-<i>.jsonl``, one JSON object per round), so a script that compares them reads both through
:class:`RunRecords` and gets arrays of the same shape, ``(nodes, rounds)``, with NaN where a node recorded
nothing (a round not evaluated, a node that died early or never started).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gossip.results.rundir import NodeFiles, read_jsonl

__all__ = ["RoundRecord", "RunRecords"]


def _number(value: Any) -> float | None:
    """A record's value as a float when it is a finite number (not a bool), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


@dataclass(frozen=True)
class RoundRecord:
    """One node's record of one round: the fields every run writes, typed, and the whole line in ``fields``."""

    node: int
    round: int
    loss: float | None  # mean training loss of the round's local steps
    accuracy: float | None  # test accuracy; None in rounds that were not evaluated
    test_loss: float | None
    consensus_distance: float | None
    bytes_sent: int
    bytes_received: int
    fields: Mapping[str, Any]  # the JSONL object as written, for the keys a kind of run adds

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RoundRecord:
        return cls(
            node=int(d["node"]),
            round=int(d["round"]),
            loss=_number(d.get("loss")),
            accuracy=_number(d.get("accuracy")),
            test_loss=_number(d.get("test_loss")),
            consensus_distance=_number(d.get("consensus_distance")),
            bytes_sent=int(d.get("bytes_sent", 0)),
            bytes_received=int(d.get("bytes_received", 0)),
            fields=d,
        )


class RunRecords:
    """Every node's round records of one run, indexed by node id ``0 … nodes-1`` and round ``0 … rounds-1``."""

    def __init__(self, by_node: Mapping[int, tuple[RoundRecord, ...]], nodes: int, rounds: int) -> None:
        self._by_node = {i: tuple(by_node.get(i, ())) for i in range(nodes)}
        self.nodes = nodes
        self.rounds = max(rounds, 1 + max((r.round for recs in self._by_node.values() for r in recs), default=-1))

    @classmethod
    def read(cls, run_dir: str | Path, nodes: int, rounds: int) -> RunRecords:
        """The records in ``run_dir`` of a run of ``nodes`` nodes and ``rounds`` rounds (the config's numbers:
        the arrays keep that shape when a node recorded fewer rounds or none)."""
        return cls(
            {i: tuple(RoundRecord.from_dict(d) for d in read_jsonl(NodeFiles(run_dir, i).records)) for i in range(nodes)}, nodes, rounds
        )

    def of(self, node: int) -> tuple[RoundRecord, ...]:
        """Node ``node``'s records, in the order it wrote them."""
        return self._by_node[node]

    def __iter__(self) -> Iterator[RoundRecord]:
        for recs in self._by_node.values():
            yield from recs

    def __len__(self) -> int:
        return sum(len(recs) for recs in self._by_node.values())

    def keys(self) -> tuple[str, ...]:
        """The record fields that hold a number in some record: what :meth:`array` takes."""
        seen: dict[str, None] = {}
        for r in self:
            for key, value in r.fields.items():
                if key not in ("node", "round") and _number(value) is not None:
                    seen.setdefault(key)
        return tuple(seen)

    def array(self, key: str) -> np.ndarray:
        """``(nodes, rounds)`` float array of field ``key``; NaN where a node recorded no finite number for a round.

        KeyError (naming the fields there are) for a field no record holds a number in.
        """
        if key not in self.keys():
            raise KeyError(f"no record holds a number in {key!r}; numeric fields: {', '.join(self.keys()) or 'none'}")
        out = np.full((self.nodes, self.rounds), np.nan)
        for r in self:
            value = _number(r.fields.get(key))
            if value is not None:
                out[r.node, r.round] = value
        return out

    def last(self, key: str) -> np.ndarray:
        """``(nodes,)``: each node's last finite value of ``key`` (its final accuracy, say); NaN for a node with none."""
        out = np.full(self.nodes, np.nan)
        for node, row in enumerate(self.array(key)):
            finite = row[~np.isnan(row)]
            if finite.size:
                out[node] = finite[-1]
        return out

    def frame(self) -> Any:
        """A ``pandas.DataFrame``, one row per record: ``node``, ``round`` and every numeric field (NaN where absent).

        pandas is not a dependency of gossip: install it to use this (:meth:`array` needs only numpy).
        """
        try:
            import pandas as pd  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise ImportError(
                "RunRecords.frame() needs pandas, which gossip does not install: pip install pandas (or use .array(key))"
            ) from None
        keys = self.keys()
        rows = [{"node": r.node, "round": r.round, **{k: _number(r.fields.get(k)) for k in keys}} for r in self]
        return pd.DataFrame(rows, columns=["node", "round", *keys]).astype({k: float for k in keys})
