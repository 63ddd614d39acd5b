"""Runs that cannot fit in memory are refused before anything starts (gossip.run.capacity)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossip.errors import ConfigError
from gossip.run.capacity import (
    FORK_SERVER_BYTES,
    FORKED_NODE_BYTES,
    NODE_BASE_BYTES,
    available_bytes,
    check_launch_fits,
    check_simulation_fits,
    launch_bytes,
    simulation_bytes,
)

GIB = 1 << 30


def test_a_launch_that_needs_more_than_is_available_is_refused_in_one_line_with_the_figures_and_the_way_out() -> None:
    """1000 spawned node processes of a 20k-parameter model need ~157 GiB: with 16 GiB free that is one line naming both and the alternatives."""
    with pytest.raises(ConfigError) as refused:
        check_launch_fits(1000, 20_000, 2, spawn=True, available=16 * GIB)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("1000 node processes need about 156.8 GiB of memory (161 MiB each)")
    assert "16.0 GiB available" in message and "fewer nodes" in message and "gossip deploy" in message


def test_forked_nodes_are_counted_with_their_own_pages_and_one_fork_server() -> None:
    """Forked from one server (the default), 1000 nodes of that model need 32.0 GiB (33 MiB each and 240 MiB for
    the server): refused with 16 GiB free, with those figures; 400 of them fit, where 400 spawned would not."""
    with pytest.raises(ConfigError) as refused:
        check_launch_fits(1000, 20_000, 2, available=16 * GIB)
    assert str(refused.value).startswith(
        "1000 node processes need about 32.0 GiB of memory (33 MiB each, and 240 MiB for their fork server)"
    )
    check_launch_fits(400, 20_000, 2, available=16 * GIB)
    with pytest.raises(ConfigError):
        check_launch_fits(400, 20_000, 2, spawn=True, available=16 * GIB)
    assert launch_bytes(1, 0, 2) == FORKED_NODE_BYTES + FORK_SERVER_BYTES
    assert launch_bytes(8, 1_000_000, 4) - launch_bytes(7, 1_000_000, 4) == FORKED_NODE_BYTES + 4 * 1_000_000 * 9


def test_a_launch_that_fits_passes_and_an_unknown_amount_of_memory_is_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """64 processes of the default model fit in 16 GiB; where the kernel does not say (no MemAvailable), nothing is refused."""
    check_launch_fits(64, 20_000, 2, available=16 * GIB)
    monkeypatch.setattr("gossip.run.capacity.available_bytes", lambda: None)
    check_launch_fits(10**6, 20_000, 2)
    check_simulation_fits(10**6, 10**6)


def test_what_a_node_needs_grows_with_its_model_and_its_neighbours() -> None:
    """A node holds its base, five copies of its model and one per neighbour: a 1M model on a ring adds 28 MB per node."""
    assert launch_bytes(1, 0, 2, spawn=True) == NODE_BASE_BYTES
    assert launch_bytes(1, 1_000_000, 2, spawn=True) - launch_bytes(1, 0, 2, spawn=True) == 4 * 1_000_000 * 7
    assert (
        launch_bytes(8, 1_000_000, 4, spawn=True)
        == 8 * launch_bytes(1, 1_000_000, 4, spawn=True)
        > 8 * launch_bytes(1, 1_000_000, 2, spawn=True)
    )


def test_a_simulation_counts_the_dense_mixing_matrix() -> None:
    """N models several times over plus the N×N matrix (float64 while built, float32 in use): 100 000 nodes
    need 120 GB for the matrix alone, and are refused on a machine with 24 GiB."""
    assert simulation_bytes(100_000, 0) == 12 * 100_000**2
    with pytest.raises(ConfigError, match="simulating 100000 nodes"):
        check_simulation_fits(100_000, 10_000, available=24 * GIB)
    check_simulation_fits(64, 1_000_000, available=24 * GIB)


def test_available_memory_is_read_from_meminfo(tmp_path: Path) -> None:
    """MemAvailable in kB becomes bytes; a file without it (or no file) gives None, never an error."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683636 kB\nMemFree:        17343164 kB\nMemAvailable:   23700000 kB\n")
    assert available_bytes(meminfo) == 23_700_000 * 1024
    meminfo.write_text("MemTotal:       24683636 kB\n")
    assert available_bytes(meminfo) is None
    assert available_bytes(tmp_path / "missing") is None
