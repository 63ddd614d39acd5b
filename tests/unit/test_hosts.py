"""The hosts file of ``gossip launch --hosts``, the block-wise placement and the port rule (gossip.run.hosts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossip.config import load_config
from gossip.errors import ConfigError
from gossip.run.hosts import Host, host_layout, place, read_hosts, ssh_options
from tests.conftest import run_gossip


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.txt"
    path.write_text(text)
    return path


def test_a_hosts_file_names_targets_slots_and_comments(tmp_path: Path) -> None:
    """One host a line, ``user@`` kept for ssh and dropped from the address, ``slots=``/``nodes=`` caps, ``#`` comments."""
    hosts = read_hosts(_file(tmp_path, "# cluster\nalice@gpu-01\n\n10.0.0.7   slots=2  # two GPUs\nnode-3 nodes=1\n"))
    assert hosts == [Host("alice@gpu-01"), Host("10.0.0.7", 2), Host("node-3", 1)]
    assert [h.address for h in hosts] == ["gpu-01", "10.0.0.7", "node-3"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "names no host"),
        ("# only a comment\n\n", "names no host"),
        ("gpu-01\n-oProxyCommand=evil\n", "line 2"),
        ("gpu-01 slots=0\n", "line 1"),
        ("gpu-01 cores=4\n", "line 1"),
        ("gpu-01 slots=2 extra\n", "line 1"),
        ("gpu-01\nbob@gpu-01\n", "host gpu-01 is listed twice"),
    ],
)
def test_a_malformed_hosts_file_is_refused_naming_the_line(tmp_path: Path, text: str, message: str) -> None:
    """Empty files, option-like hosts (ssh would read them as options), bad slots and duplicates are refused."""
    with pytest.raises(ConfigError, match=message):
        read_hosts(_file(tmp_path, text))


def test_a_missing_or_binary_hosts_file_is_refused(tmp_path: Path) -> None:
    """No file, a directory, or bytes that are not UTF-8: one ConfigError each."""
    with pytest.raises(ConfigError, match="not found"):
        read_hosts(tmp_path / "nope.txt")
    with pytest.raises(ConfigError):
        read_hosts(tmp_path)
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_hosts(tmp_path / "bin")


def test_placement_is_block_wise_with_even_shares() -> None:
    """8 nodes on 3 hosts: 3, 3, 2, numbered host by host (the documented example, with a slots cap)."""
    where = place([Host("a"), Host("b"), Host("c", 2)], 8)
    assert where == ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1))


def test_placement_fills_the_uncapped_hosts_once_slots_run_out() -> None:
    """A host capped at one node gets one; the others share the rest."""
    assert [k for k, _ in place([Host("a", 1), Host("b"), Host("c")], 7)] == [0, 1, 1, 1, 2, 2, 2]


def test_placement_refuses_more_hosts_than_nodes_and_too_few_slots() -> None:
    """Every host runs one node at least; capped hosts must hold every node."""
    with pytest.raises(ConfigError, match="3 hosts for 2 nodes"):
        place([Host("a"), Host("b"), Host("c")], 2)
    with pytest.raises(ConfigError, match="3 slots for 4 nodes"):
        place([Host("a", 1), Host("b", 2)], 4)


def test_addresses_follow_the_port_rule() -> None:
    """Node i at tcp://HOST:base + its index on its host; /metrics at metrics base + the same index."""
    cfg = load_config(env={})
    addresses, metrics = host_layout([Host("root@h0"), Host("h1")], 7100)(cfg, 3)
    assert addresses == ("tcp://h0:7100", "tcp://h0:7101", "tcp://h1:7100")
    assert metrics.ports == (9100, 9101, 9100)


def test_ports_past_65535_are_refused() -> None:
    """A base port whose hosts would need ports past 65535 is refused before anything is written."""
    with pytest.raises(ConfigError, match="past port 65535"):
        host_layout([Host("h0")], 65535)(load_config(env={}), 2)


def test_ssh_options_become_dash_o_pairs_and_junk_is_refused() -> None:
    """``KEY=VALUE`` each; a value with a newline or a bare word is refused."""
    assert ssh_options(["IdentityFile=/k", "Port=2222"]) == ("-o", "IdentityFile=/k", "-o", "Port=2222")
    for bad in ("IdentityFile", "=x", "A=b\nc", "-F=x"):
        with pytest.raises(ConfigError, match="--ssh-option"):
            ssh_options([bad])


def test_the_cli_refuses_a_bad_hosts_file_in_one_line(tmp_path: Path) -> None:
    """``gossip launch --hosts`` with an empty file: one line, exit 2, no run directory."""
    result = run_gossip("launch", "--hosts", str(_file(tmp_path, "\n")), "-n", "4", "--run-dir", str(tmp_path / "run"), timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"gossip: error: hosts file {tmp_path / 'hosts.txt'} names no host (one '[user@]host [slots=K]' a line)"
    ]
    assert not (tmp_path / "run").exists()


def test_the_cli_refuses_hosts_with_prometheus(tmp_path: Path) -> None:
    """``--hosts`` and ``--prometheus`` exclude each other (a local Prometheus cannot scrape remote loopbacks)."""
    result = run_gossip("launch", "--hosts", str(_file(tmp_path, "h0\n")), "--prometheus", "--run-dir", str(tmp_path / "run"), timeout=120)
    assert result.returncode == 2 and "exclude each other" in result.stderr
    assert not (tmp_path / "run").exists()
