"""gossip.run.nodeimports: the check that a node's interpreter imports the run's plug-ins, asked only when there are some."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gossip.config import load_config
from gossip.errors import ConfigError
from gossip.run.nodeimports import check_node_imports


def test_a_run_of_shipped_rules_starts_no_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shipped rule and attack: nothing to import, so no subprocess is started (the check costs such a run nothing)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a subprocess was started")

    monkeypatch.setattr(subprocess, "run", refuse)
    cfg = load_config(env={}, overrides={"byzantine.nodes": "[1]", "byzantine.attack": "sign-flip", "aggregation.rule": "median"})
    check_node_imports(cfg, dict(os.environ))


def test_a_plug_in_missing_from_the_nodes_path_is_named_with_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher imports the rule from its own ``sys.path``; the node environment given lacks that directory: one
    ConfigError line naming the plug-in and the node's ModuleNotFoundError."""
    (tmp_path / "labonly.py").write_text("class Rule:\n    def aggregate(self, local, received, weights):\n        return local\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = load_config(env={}, overrides={"aggregation.rule": "labonly:Rule"})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with pytest.raises(ConfigError, match=r"^\[aggregation\] rule = 'labonly:Rule': the launcher imports it but a node process does not: "
                       r"ModuleNotFoundError: No module named 'labonly'; "):  # fmt: skip
        check_node_imports(cfg, env)
    check_node_imports(cfg, dict(env, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path])))  # on the node's path: passes
