"""``gossip simulate``'s flags of a simulated open network: churn and the initial size (:mod:`gossip.run.simulate_open`)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_churn_arguments", "churn_of"]


def add_churn_arguments(p: argparse.ArgumentParser) -> None:
    """``--churn``, ``--churn-every``, ``--members``: meaningful with ``[membership] enabled`` only (refused otherwise)."""
    p.add_argument(
        "--churn",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="open network ([membership] enabled): the fraction of members replaced every --churn-every rounds, half leaving, "
        "half crashing, each by a newcomer that knows one live member (default 0: none)",
    )
    p.add_argument("--churn-every", type=int, default=100, metavar="ROUNDS", help="the churn period in rounds (default 100)")
    p.add_argument("--members", type=int, metavar="N", help="open network: the initial number of members (default: the run's nodes)")


def churn_of(args: argparse.Namespace) -> Any:
    """The flags as a :class:`~gossip.run.simulate_open.ChurnPlan` (imported here: it brings torch)."""
    from gossip.run.simulate_open import ChurnPlan

    return ChurnPlan(args.churn, args.churn_every, args.members)
