"""The launcher and the fork server never initialise CUDA: a fork of a process that did cannot use CUDA.

Every ``torch.cuda`` call of gossip lives in gossip/learn/device.py (run by a node, in its own process, after it
started); the launcher's one question about GPUs is :func:`gossip.run.gpus.gpu_inventory`, which asks in a
subprocess and only when the config wants a GPU. With ``device = "cpu"`` it is never asked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import gossip.run.gpus
from gossip.config import load_config
from gossip.run.gpus import Gpu
from gossip.run.prepare import prepare_run
from tests.conftest import REPO

GOSSIP = REPO / "gossip"


def _cuda_calls(path: Path) -> list[int]:
    """Lines of ``path`` whose code (not strings) reads ``torch.cuda`` or calls ``.cuda()``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr == "cuda":
            lines.append(node.lineno)
    return lines


def test_torch_cuda_is_read_in_one_module_only() -> None:
    """No module but gossip/learn/device.py touches torch.cuda in code (the inventory's script is a string)."""
    users = {str(p.relative_to(GOSSIP)) for p in GOSSIP.rglob("*.py") if _cuda_calls(p)}
    assert users == {"learn/device.py"}


def test_the_launcher_never_calls_the_device_functions_that_touch_cuda() -> None:
    """gossip/run and gossip/cli never call resolve_device or gpu_memory (the node's own, after it started)."""
    for path in [*(GOSSIP / "run").rglob("*.py"), *(GOSSIP / "cli").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "resolve_device" not in text and "gpu_memory" not in text, path


def _forbid_cuda(monkeypatch: pytest.MonkeyPatch, asked: list[str]) -> None:
    def inventory() -> list[Gpu]:
        asked.append("inventory")
        return []

    def cuda(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the launcher touched torch.cuda")

    monkeypatch.setattr(gossip.run.gpus, "gpu_inventory", inventory)
    for name in ("is_available", "device_count", "init", "get_device_properties"):
        monkeypatch.setattr(torch.cuda, name, cuda)


def test_a_cpu_launch_never_asks_about_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Preparing a device = cpu launch (every check, the run directory written) asks no inventory and no torch.cuda."""
    asked: list[str] = []
    _forbid_cuda(monkeypatch, asked)
    cfg = load_config(env={}, overrides={"run.nodes": 3, "training.rounds": 2, "metrics.enabled": False})
    resolved, run_dir, _ = prepare_run(cfg, run_dir=tmp_path / "run")
    assert asked == [] and resolved.training.device == "cpu" and (run_dir / "config.toml").is_file()


def test_an_auto_launch_asks_the_inventory_once_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """device = auto asks the inventory (a subprocess in real life) once, never torch.cuda itself; no GPU: cpu."""
    asked: list[str] = []
    _forbid_cuda(monkeypatch, asked)
    cfg = load_config(env={}, overrides={"run.nodes": 3, "training.rounds": 2, "metrics.enabled": False, "training.device": "auto"})
    resolved, _, _ = prepare_run(cfg, run_dir=tmp_path / "run")
    assert asked == ["inventory"] and resolved.training.device == "cpu"


def test_the_inventory_runs_in_a_subprocess_and_says_none_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real inventory, in a subprocess that sees no GPU (CUDA_VISIBLE_DEVICES empty, so the same on any machine):
    none, and this process still has not initialised CUDA."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    gossip.run.gpus.gpu_inventory.cache_clear()
    assert gossip.run.gpus.gpu_inventory() == ()
    assert not torch.cuda.is_initialized()
