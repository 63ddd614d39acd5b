"""Every random stream of a run has one named derivation from the run seed, and the streams never share a seed."""

from __future__ import annotations

import hashlib
import itertools

from gossip.seeds import attack_seed, batch_seed, init_seed, link_seed, pull_seed, push_seed


def test_the_derivations_are_the_ones_runs_are_reproduced_from() -> None:
    """Pinned values: a change here changes every number a seeded run produces (batches, attacks, init, links)."""
    assert batch_seed(0, 0) == 1 and batch_seed(7, 3) == 7_000_025
    assert attack_seed(0, 0) == 7 and attack_seed(7, 3) == 7_000_031
    assert init_seed(7, 3, shared=True) == 7
    assert init_seed(7, 3, shared=False) == int.from_bytes(hashlib.blake2b(b"init/7/3", digest_size=6).digest(), "big")
    assert link_seed(7, 1, 2) == int.from_bytes(hashlib.blake2b(b"link/7/1/2", digest_size=8).digest(), "big")
    assert push_seed(7, 3) == (7, 0xA5C, 3)
    assert pull_seed(7, 4, 3) == (7, 0x9E1, 4, 3)


def test_within_a_stream_no_two_nodes_or_runs_share_a_seed() -> None:
    """Across 3 run seeds and 200 nodes each stream (batches, attacks, independent init, links) hands out distinct seeds,
    and a node's batch and attack seeds differ."""
    pairs = list(itertools.product(range(3), range(200)))
    for derive in (batch_seed, attack_seed, lambda r, n: init_seed(r, n, shared=False), lambda r, n: link_seed(r, n, n + 1)):
        seeds = [derive(run, node) for run, node in pairs]
        assert len(set(seeds)) == len(seeds)
    assert all(batch_seed(run, node) != attack_seed(run, node) for run, node in pairs)
