"""The Byzantine role: a node that runs the ordinary loop and wire protocol but sends attack payloads.

:class:`ByzantineNode` overrides two steps of :class:`gossip.node.node.Node` and nothing else:

- :meth:`~ByzantineNode.exchange`: for an omniscient attack it first collects its honest
  neighbours' round-t models (for at most ``wait_fraction × round_timeout_s``), then sends each
  honest neighbour the payload the attack crafts for it — encoded exactly like an honest model,
  with its own id and round, so nothing on the wire marks it. Other attacks send at once, then
  collect like an honest node. Attackers do not send to or wait for each other: they collude
  through the shared config, not through messages.
- :meth:`~ByzantineNode.train`: attacks whose payload does not depend on the attacker's own model
  (ALIE, IPM, dissensus) skip the local steps; label flipping trains on its relabelled shard.

It then mixes what it received with the configured rule like any node (its own model stays close
to the honest crowd, which keeps sign-flip and noise payloads "plausible"). :func:`build_node` is
the one place that decides which class a process runs; it also refuses, before any socket opens,
a run the rule cannot defend (``gossip.algorithms.tolerance``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from gossip.algorithms.attacks import Attack, LabelFlip, Target, build_attack, flip_labels
from gossip.algorithms.tolerance import check_tolerance
from gossip.ids import NodeId
from gossip.learn.trainer import StepResult
from gossip.net.transport import Transport
from gossip.net.wire import Kind, Message, encode
from gossip.node.node import Node
from gossip.node.plan import NodePlan
from gossip.node.records import NodeResult
from gossip.ops.metrics import NodeMetrics
from gossip.results.summary import NodeSummary
from gossip.seeds import attack_seed

__all__ = ["ByzantineNode", "build_node"]


def build_node(plan: NodePlan, transport: Transport, *, metrics: NodeMetrics | None = None) -> Node:
    """The node this process should run: honest, or the attacker ``[byzantine]`` makes it."""
    cfg = plan.cfg
    check_tolerance(cfg, plan.topology)
    if not cfg.byzantine.is_byzantine(plan.node_id):
        return Node(plan, transport, metrics=metrics)
    attack = build_attack(cfg.byzantine, seed=attack_seed(cfg.run.seed, int(plan.node_id)))
    return ByzantineNode(plan, transport, attack, metrics=metrics)


class ByzantineNode(Node):
    """A node playing ``attack`` (see the module)."""

    def __init__(self, plan: NodePlan, transport: Transport, attack: Attack, *, metrics: NodeMetrics | None = None) -> None:
        super().__init__(plan, transport, metrics=metrics)
        self.attack = attack
        cfg = plan.cfg
        colluders = frozenset(NodeId(b) for b in cfg.byzantine.nodes)
        self.honest_neighbours = tuple(j for j in self.neighbours if j not in colluders)
        self.targets = tuple(self._target(j, colluders) for j in self.honest_neighbours)
        if isinstance(attack, LabelFlip):
            self.trainer.y = flip_labels(self.trainer.y, plan.dataset.num_classes)  # type: ignore[assignment]

    def _target(self, j: NodeId, colluders: frozenset[NodeId]) -> Target:
        row = self.plan.topology.mixing_weights(j, self.cfg.topology.weights)
        weights = {NodeId(k): float(w) for k, w in row.items() if k != j}
        return Target(j, weights, frozenset(k for k in weights if k in colluders))

    def train(self) -> StepResult:
        if not self.attack.trains:
            return StepResult(float("nan"), 0.0, ())
        return super().train()

    async def exchange(self, t: int, loss: float) -> tuple[dict[NodeId, Message], dict[str, float]]:
        timeout = self.cfg.transport.round_timeout_s
        t0 = time.perf_counter()
        start = time.monotonic()
        expected = [j for j in self.honest_neighbours if j not in self.inbox.gone]
        got: dict[NodeId, Message] = {}
        if self.attack.omniscient:
            got = await self.inbox.collect(t, expected, start + self.cfg.byzantine.wait_fraction * timeout)
        t1 = time.perf_counter()
        honest = {j: m.payload for j, m in got.items() if m.payload is not None}
        payloads = self.attack.payloads(t, self.flat.vector.clone(), honest, self.targets)
        frames_of: dict[int, list[Any]] = {}  # one encoding per distinct payload tensor
        info = {"loss": loss} if math.isfinite(loss) else None
        for tg in self.targets:
            payload = payloads.get(tg.id)
            if payload is None:
                continue
            if id(payload) not in frames_of:
                frames_of[id(payload)] = encode(
                    Kind.MODEL,
                    src=self.id,
                    round=t,
                    run_id=self.core.run_id,
                    fingerprint=self.flat.layout.fingerprint,
                    payload=payload.contiguous(),
                    dtype=self.cfg.transport.wire_dtype,
                    info=info,
                )
            self.send(tg.id, frames_of[id(payload)])
        t2 = time.perf_counter()
        if not self.attack.omniscient:
            got = await self.inbox.collect(t, expected, start + timeout)
        t3 = time.perf_counter()
        self.metrics.wait.observe((t1 - t0) + (t3 - t2))
        return got, {"encode_s": t2 - t1, "send_s": 0.0, "wait_s": (t1 - t0) + (t3 - t2)}

    def _summary(self, result: NodeResult) -> NodeSummary:
        summary = super()._summary(result)
        assert summary.process is not None  # a node process always has one
        return dataclasses.replace(summary, process=dataclasses.replace(summary.process, attack=self.attack.name))
