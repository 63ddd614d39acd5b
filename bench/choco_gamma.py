"""CHOCO-gossip's consensus step γ against the share sent: how far apart the models stay, without training.

    .venv/bin/python bench/choco_gamma.py [--nodes 8] [--rounds 200] [--dim 2000]

One process, no network: N :class:`~gossip.node.choco.ChocoGossip` objects on a ring (Metropolis weights
1/3) exchange their messages directly, starting from independent Gaussian vectors. Prints the final
spread max|x_i − mean| relative to the initial one for γ = c · topk_fraction (resync_every 50):
below 1 the nodes agree, above 1 the copies' errors grow. This chose the default γ = 4f.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gossip.config import CompressionConfig
from gossip.ids import NodeId
from gossip.net.wire import Message
from gossip.node.choco import ChocoGossip


def spread_after(nodes: int, rounds: int, dim: int, fraction: float, gamma: float) -> float:
    """Final spread / initial spread of a CHOCO consensus run on a ring."""
    torch.manual_seed(0)
    cfg = CompressionConfig(method="topk", topk_fraction=fraction, choco_gamma=gamma)
    x = [torch.randn(dim) for _ in range(nodes)]
    ring = [(NodeId((i - 1) % nodes), NodeId((i + 1) % nodes)) for i in range(nodes)]
    choco = [ChocoGossip(x[i], ring[i], cfg) for i in range(nodes)]
    start = torch.stack(x)
    for t in range(rounds):
        out = [c.outgoing(x[i]) for i, c in enumerate(choco)]
        for i, c in enumerate(choco):
            got = {j: Message(out[j].kind, j, t, out[j].values, indices=out[j].indices) for j in ring[i]}
            c.mix(x[i], got, {j: 1 / 3 for j in ring[i]})
    end = torch.stack(x)
    return float((end - end.mean(0)).abs().max() / (start - start.mean(0)).abs().max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--dim", type=int, default=2000)
    args = p.parse_args()
    factors = (2, 3, 4, 6)
    print(f"{args.nodes}-node ring, {args.dim} values, {args.rounds} rounds: final / initial spread\n")
    print("| topk_fraction f | " + " | ".join(f"γ = {c}f" for c in factors) + " |")
    print("|---|" + "---|" * len(factors))
    for f in (0.01, 0.02, 0.05, 0.1, 0.2):
        cells = [f"{spread_after(args.nodes, args.rounds, args.dim, f, min(1.0, c * f)):.2g}" for c in factors]
        print(f"| {f:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
