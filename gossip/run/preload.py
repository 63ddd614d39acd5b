"""Imported by the fork server, last: the run's plug-in modules, so every forked node shares them already imported.

Which modules: those :data:`PLUGIN_MODULES` names in the server's environment (set by
:func:`gossip.run.forkserver.warm_up` for the moment the server starts). A module that fails here is skipped
without a word: the launcher's own check (``prepare_run``) names it in one line, and each node builds the
plug-in again at start-up, so nothing runs with a plug-in that did not import.
"""

from __future__ import annotations

import importlib
import os

__all__ = ["PLUGIN_MODULES"]

PLUGIN_MODULES = "_GOSSIP_PLUGIN_MODULES"  # not GOSSIP_*: those are config overrides


def _preload() -> None:
    for name in filter(None, os.environ.get(PLUGIN_MODULES, "").split(",")):
        try:
            importlib.import_module(name)
        except BaseException:
            pass


_preload()
