"""examples/attack.py's ``Mimic``, built as a plug-in and called with tensors: what it sends to whom."""

from __future__ import annotations

import pytest
import torch

from gossip.algorithms.attacks import Target
from gossip.ids import NodeId
from gossip.plugins import ATTACK, build
from tests.conftest import REPO


@pytest.fixture
def examples_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "examples"))


def _targets(*ids: int) -> list[Target]:
    return [Target(NodeId(i), {}, frozenset()) for i in ids]


def test_every_target_gets_the_victims_model_unchanged(examples_on_path: None) -> None:
    """``victim=2`` (a ``[byzantine] options`` value): both targets get node 2's model; no input is modified."""
    mimic = build(ATTACK, "attack:Mimic", {"victim": 2})
    honest = {NodeId(1): torch.ones(3), NodeId(2): torch.full((3,), 2.0)}
    sent = mimic.payloads(0, torch.zeros(3), honest, _targets(1, 3))  # type: ignore[attr-defined]
    assert set(sent) == {1, 3} and all(torch.equal(p, torch.full((3,), 2.0)) for p in sent.values())
    assert torch.equal(honest[NodeId(1)], torch.ones(3))


def test_without_its_victim_it_copies_the_lowest_id_and_without_any_its_own(examples_on_path: None) -> None:
    """The victim's model did not arrive: the lowest id's is sent instead; nothing arrived: its own model, not silence."""
    mimic = build(ATTACK, "attack:Mimic", {"victim": 9})
    honest = {NodeId(3): torch.full((2,), 3.0), NodeId(1): torch.ones(2)}
    assert torch.equal(mimic.payloads(0, torch.zeros(2), honest, _targets(3))[NodeId(3)], torch.ones(2))  # type: ignore[attr-defined]
    assert torch.equal(mimic.payloads(0, torch.zeros(2), {}, _targets(3))[NodeId(3)], torch.zeros(2))  # type: ignore[attr-defined]
