"""What does a run leave behind? The run directory's files, its typed summaries, and the report made from them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gossip.exports import lazy_exports

if TYPE_CHECKING:
    from gossip.results.records import RoundRecord, RunRecords
    from gossip.results.report import RunData, load_run, write_report
    from gossip.results.rundir import NodeFiles
    from gossip.results.summary import NodeSummary, RunSummary

__all__ = [
    "NodeFiles",
    "NodeSummary",
    "RoundRecord",
    "RunData",
    "RunRecords",
    "RunSummary",
    "load_run",
    "write_report",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "gossip.results.summary": ("NodeSummary", "RunSummary"),
        "gossip.results.report": ("RunData", "load_run", "write_report"),
        "gossip.results.rundir": ("NodeFiles",),
        "gossip.results.records": ("RoundRecord", "RunRecords"),
    },
)
