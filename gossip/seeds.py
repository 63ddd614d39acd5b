"""Seeds: every random stream of a run, derived by name from the one ``[run] seed``.

A run is reproducible because each node, process or simulation derives the same seed for the same
stream from the shared run seed, without talking. Within a stream every node gets its own seed; the
streams differ by an offset, a tag or a hashed prefix, so a node's batch order and its own attack never
draw the same numbers (the integer offsets do overlap across nodes: node i + 6's batch seed is node i's
attack seed). The values are part of what a run means: changing one changes every number a run with
that seed produces.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "MEMBERSHIP_TAG",
    "PULL_TAG",
    "PUSH_TAG",
    "attack_seed",
    "batch_seed",
    "init_seed",
    "link_seed",
    "membership_seed",
    "pull_seed",
    "push_seed",
]

NODE_STRIDE = 1_000_003  # a prime above the largest node count: run seed s and node i map to distinct integers
PUSH_TAG = 0xA5C  # async gossip's choice of neighbour to push to
PULL_TAG = 0x9E1  # the sparse random schedule's choice of neighbour to pull from
MEMBERSHIP_TAG = 0x3E3  # an open network's protocol: view samples, link candidates, shuffle jitter


def batch_seed(run_seed: int, node: int) -> int:
    """The torch generator of node ``node``'s minibatch order (trainer and simulation alike)."""
    return run_seed * NODE_STRIDE + node + 1


def attack_seed(run_seed: int, node: int) -> int:
    """The generator of a Byzantine node's attack (its noise, its random payloads)."""
    return run_seed * NODE_STRIDE + node + 7


def init_seed(run_seed: int, node: int, *, shared: bool) -> int:
    """The torch seed a node's model is initialised from: one for all (``shared``), else a distinct one per node."""
    if shared:
        return run_seed
    return int.from_bytes(hashlib.blake2b(f"init/{run_seed}/{node}".encode(), digest_size=6).digest(), "big")


def push_seed(run_seed: int, node: int) -> tuple[int, int, int]:
    """numpy's seed sequence for async gossip's push targets of node ``node``."""
    return (run_seed, PUSH_TAG, node)


def membership_seed(run_seed: int, node: int) -> int:
    """The seed of ``random.Random`` for member ``node``'s membership protocol (it takes one integer, not a sequence)."""
    return (run_seed * NODE_STRIDE + node) * 4099 + MEMBERSHIP_TAG


def pull_seed(run_seed: int, round_: int, node: int) -> tuple[int, int, int, int]:
    """numpy's seed sequence for node ``node``'s pull in round ``round_``: one any node can recompute."""
    return (run_seed, PULL_TAG, round_, node)


def link_seed(run_seed: int, src: int, dst: int) -> int:
    """The generator of the emulated link ``src → dst`` (its losses and jitter), independent of every other link."""
    return int.from_bytes(hashlib.blake2b(f"link/{run_seed}/{src}/{dst}".encode(), digest_size=8).digest(), "big")
