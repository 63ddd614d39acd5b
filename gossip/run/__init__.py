"""How does a run get going on this machine? The launcher (prepare, start, supervise, summarise), the fork server, the
single-process simulator, and the deployment renderers.

``launch``, ``simulate`` and ``experiment`` are not re-exported here: they share their modules' names, and a package attribute
cannot be both. Import them from :mod:`gossip` or from their modules (``gossip.run.launch.launch``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gossip.exports import lazy_exports

if TYPE_CHECKING:
    from gossip.run.experiment import ExperimentResult
    from gossip.run.launch import LaunchResult, resume
    from gossip.run.prepare import prepare_run
    from gossip.run.simulate import SimulationResult

__all__ = [
    "ExperimentResult",
    "LaunchResult",
    "SimulationResult",
    "prepare_run",
    "resume",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "gossip.run.experiment": ("ExperimentResult",),
        "gossip.run.launch": ("LaunchResult", "resume"),
        "gossip.run.prepare": ("prepare_run",),
        "gossip.run.simulate": ("SimulationResult",),
    },
)
