"""The mixing matrix of a simulation once nodes were removed: what a launched D-SGD node does with a neighbour that is gone."""

from __future__ import annotations

import numpy as np

from gossip.run.simulate import mixing_without
from gossip.topology.generate import parse_spec


def _ba_matrix() -> np.ndarray:
    topo = parse_spec("ba:m=2", n=12, seed=3)
    return np.asarray(topo.mixing_matrix("metropolis"))


def test_survivors_weights_stay_symmetric_and_doubly_stochastic() -> None:
    """Removing nodes keeps W symmetric with every row summing to 1: gossip among the survivors still averages."""
    gone = np.zeros(12, dtype=bool)
    gone[[0, 5]] = True
    got = mixing_without(_ba_matrix(), gone)
    assert np.allclose(got, got.T) and np.allclose(got.sum(axis=1), 1.0) and (got >= 0).all()


def test_a_survivor_gives_a_removed_neighbours_weight_to_itself() -> None:
    """A survivor keeps its weights on the other survivors and adds the removed neighbours' weights to its self weight,
    as :func:`gossip.algorithms.dsgd.weighted_average` does with a model that did not arrive."""
    W = _ba_matrix()
    gone = np.zeros(12, dtype=bool)
    gone[0] = True
    got = mixing_without(W, gone)
    survivors = np.flatnonzero(~gone)
    off = ~np.eye(12, dtype=bool)
    assert np.array_equal(
        got[np.ix_(survivors, survivors)][off[np.ix_(survivors, survivors)]],
        W[np.ix_(survivors, survivors)][off[np.ix_(survivors, survivors)]],
    )
    for i in survivors:
        assert np.isclose(got[i, i], W[i, i] + W[i, 0])


def test_a_removed_nodes_row_is_the_identity() -> None:
    """A removed node takes nothing and gives nothing: its model stays as it was."""
    gone = np.zeros(12, dtype=bool)
    gone[[2, 7]] = True
    got = mixing_without(_ba_matrix(), gone)
    assert np.array_equal(got[[2, 7]], np.eye(12)[[2, 7]]) and not got[:, [2, 7]][~gone].any()
