"""Port picking for a local run: node and metrics ports never coincide."""

from __future__ import annotations

import dataclasses

import pytest

from gossip.errors import UsageError
from gossip.run import ports


def test_picked_ports_avoid_the_ones_already_picked_for_the_run(monkeypatch) -> None:
    """Ports picked but not yet bound still test free: metrics ports must skip the node ports picked just before."""
    monkeypatch.setenv(ports.FREE_PORTS_ENV, "1024-1099")
    node_ports = ports.pick_ports("127.0.0.1", 30, None, "node")
    metrics_ports = ports.pick_ports("127.0.0.1", 30, None, "metrics", avoid=set(node_ports))
    assert not set(node_ports) & set(metrics_ports)
    assert len(set(metrics_ports)) == 30


def test_free_ports_come_from_the_range_the_environment_names(monkeypatch) -> None:
    """$GOSSIP_FREE_PORTS=LOW-HIGH: every port picked lies in it (concurrent launchers given disjoint ranges never
    pick the same port)."""
    monkeypatch.setenv(ports.FREE_PORTS_ENV, "21000-21049")
    assert all(21000 <= p <= 21049 for p in ports.pick_ports("127.0.0.1", 40, None, "node"))


def test_without_the_variable_free_ports_lie_below_the_ephemeral_range(monkeypatch) -> None:
    """The default: the 12,000 ports under the kernel's range, where no port is handed out unasked."""
    monkeypatch.delenv(ports.FREE_PORTS_ENV, raising=False)
    low, _high = ports.ephemeral_range()
    assert ports.free_port_range() == (max(1024, low - 12_000), low - 1)


@pytest.mark.parametrize("value", ["20000", "20000-", "a-b", "30000-20000", "80-90", "60000-70000", "1-2-3"])
def test_a_malformed_free_port_range_is_a_usage_error_naming_the_variable(monkeypatch, value: str) -> None:
    monkeypatch.setenv(ports.FREE_PORTS_ENV, value)
    with pytest.raises(UsageError, match=r"^GOSSIP_FREE_PORTS="):
        ports.free_port_range()


def test_the_variable_is_not_read_as_a_config_key(monkeypatch) -> None:
    """GOSSIP_<SECTION>_<KEY> variables are config; this one belongs to the launcher and is not refused as one."""
    from gossip.config import load_config

    load_config(env={ports.FREE_PORTS_ENV: "21000-21049"})


def test_resume_of_an_ipc_run_waits_for_no_port() -> None:
    """An ipc run's node addresses have no port: waiting for the run's ports to be free passes over them."""
    from gossip.config import load_config

    cfg = load_config(env={}, overrides={"run.nodes": 3, "transport.address_template": "ipc://", "metrics.enabled": False})
    cfg = dataclasses.replace(cfg, transport=dataclasses.replace(cfg.transport, addresses=ports.ipc_addresses(3)))
    ports.wait_ports_free(cfg, 3, timeout_s=0.1)
