"""The sections about where a run's nodes live: addresses, metrics endpoints, security limits, emulated links, faults.

``[transport]``, ``[metrics]`` and ``[security]`` may differ from node to node (a container binds
``0.0.0.0``, a laptop loopback), so the run id leaves them out; ``[links]`` and ``[faults]`` describe
the network a run meets and are the same for every node.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from gossip.config.choices import WireDtype
from gossip.config.fields import DAY_S, MAX_NODES, check, check_choice, check_fields, integer, integers, range_of, real, show
from gossip.errors import ConfigError

__all__ = ["FaultsConfig", "LinksConfig", "MetricsConfig", "SecurityConfig", "TransportConfig", "check_link_value"]


@dataclass(frozen=True)
class TransportConfig:
    """Where nodes listen and how long they wait for each other.

    A node's address is ``addresses[id]`` when the list is given (``gossip launch`` writes one),
    else ``address_template`` with ``{id}`` and ``{port}`` (= ``base_port + id``) filled in — so a
    compose or Kubernetes deployment names peers by DNS (``tcp://gossip-{id}.gossip:7000``) and a
    laptop by port. ``listen`` overrides what the node binds (``tcp://0.0.0.0:7000`` in a container).
    Every address is checked: ``tcp://HOST:PORT`` (a port in 1..65535 once filled in, a host without
    spaces) or ``ipc://PATH`` (at most 107 bytes); a template fills in only ``{id}`` and ``{port}``. The
    list and node 0's address when the config loads, any other node's when it is asked for (a node
    asks for its own and its neighbours' before it binds). ``gossip launch`` picks its own addresses
    (the template gives the host), so only ``gossip node`` uses the template's ports. The template
    ``ipc://`` alone lets ``gossip launch --ipc`` pick the names.
    """

    address_template: str = "tcp://127.0.0.1:{port}"
    base_port: int = integer(7000, 1, 65535)  # node i gets base_port + i, which must be a port too
    addresses: tuple[str, ...] = ()
    listen: str = ""  # empty = bind the node's own address
    round_timeout_s: float = real(30.0, 0, DAY_S, lo_open=True)  # wait this long for neighbours' models, then mix what arrived
    startup_timeout_s: float = real(120.0, 0, DAY_S, lo_open=True)  # deadline for every neighbour to say hello
    max_rounds_ahead: int = integer(2, 1, 1000)  # buffer neighbours' models this many rounds ahead of ours
    queue_messages: int = integer(4, 1, 10_000)  # ZeroMQ high-water mark per peer, in messages (bounds memory)
    max_message_bytes: int = integer(0, 0, 2**40)  # 0 = model size + header slack; larger frames never reach Python
    wire_dtype: WireDtype = "float32"  # int8: block-wise symmetric quantisation (gossip.net.codec); models stay float32
    # sync rounds hand ZeroMQ the live model: zero-copy from 1 MiB (mixed only once ZeroMQ let go), below
    # copied by the socket inside send; false: always send a snapshot copy (async and link emulation always do)
    zero_copy: bool = True
    # models to neighbours on the same host go through shared memory (gossip.net.shm), found without any
    # setting; false: always through ZeroMQ. Never used with [security] curve, whose peers prove a key
    shared_memory: bool = True

    def __post_init__(self) -> None:
        check_fields(self, "transport")
        check_choice("transport", "wire_dtype", self.wire_dtype, WireDtype)
        for address in self.addresses:
            _check_endpoint("[transport] addresses", address, address)
        if self.address_template != "ipc://":
            self.address_of(0)
        if self.listen:
            self.listen_address(0)

    def address_of(self, node_id: int) -> str:
        """The address peers use to reach ``node_id``."""
        if self.addresses:
            if node_id >= len(self.addresses):
                raise ConfigError(f"[transport] addresses has {len(self.addresses)} entries, no address for node {node_id}")
            return self.addresses[node_id]
        return self._fill("address_template", self.address_template, node_id)

    def listen_address(self, node_id: int) -> str:
        """The address ``node_id`` binds."""
        if self.listen:
            return self._fill("listen", self.listen, node_id, bind=True)
        return self.address_of(node_id)

    def _fill(self, key: str, template: str, node_id: int, *, bind: bool = False) -> str:
        """``template`` with ``{id}`` and ``{port}`` (= base_port + id) filled in, checked as an address."""
        where = f"[transport] {key}"
        try:
            parts = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ConfigError(f"{where} {show(template)}: {exc}") from None
        for _text, name, spec, conversion in parts:
            # no attribute or index look-ups ({id.real}), no conversions, no widths that could build a huge string
            check(
                name is None or (name in ("id", "port") and not conversion and _FORMAT_SPEC.fullmatch(spec or "") is not None),
                f"{where} {show(template)}: only {{id}} and {{port}} can be filled in (e.g. tcp://gossip-{{id}}:7000)",
            )
        address = template.format(id=node_id, port=self.base_port + node_id)
        _check_endpoint(where, address, template, node_id=node_id, bind=bind)
        return address


_FORMAT_SPEC = re.compile(r"0?\d{0,2}d?")  # e.g. {id:03d}: zero-padded, at most 99 wide
_IPC_PATH_BYTES = 107  # sockaddr_un's sun_path holds 108 bytes with the terminating NUL


def _check_endpoint(where: str, address: str, source: str, *, node_id: int | None = None, bind: bool = False) -> None:
    """Refuse an address ZeroMQ cannot bind or connect: ``tcp://HOST:PORT`` or ``ipc://PATH``.

    A bind address may use port ``*`` or 0 (any free port); a peer's address needs a real one.
    """
    scheme, sep, rest = address.partition("://")
    filled = f" (node {node_id}: {show(address)})" if node_id is not None and address != source else ""
    problem = ""
    if not sep or scheme not in ("tcp", "ipc"):
        problem = "must start with tcp:// or ipc://"
    elif scheme == "ipc":
        if not rest:
            problem = "names no socket path"
        elif len(rest.encode("utf-8", "surrogatepass")) > _IPC_PATH_BYTES:
            problem = f"has a socket path longer than {_IPC_PATH_BYTES} bytes"
    else:
        host, colon, port = rest.rpartition(":")
        lowest = 0 if bind else 1
        if not colon or not host:
            problem = "needs HOST:PORT after tcp://"
        elif any(c.isspace() for c in host):
            problem = "has a space in its host"
        elif not (bind and port == "*") and not (port.isascii() and port.isdigit() and len(port) <= 5 and lowest <= int(port) <= 65535):
            problem = f"port {show(port)} is not in {lowest}..65535"
    if problem:
        raise ConfigError(f"{where} {show(source)}{filled}: {problem}")


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus endpoint of each node (``/metrics`` and ``/healthz``)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    # node i serves on base_port + i (which must be a port too) unless ports or port is given; 0 = any free port
    base_port: int = integer(9100, 0, 65535)
    ports: tuple[int, ...] = integers(0, 65535, MAX_NODES)
    # > 0: every node serves on this one port. For one node per host (containers, pods, network
    # namespaces), where each node has its own address and Prometheus scrapes name:port.
    port: int = integer(0, 0, 65535)

    def __post_init__(self) -> None:
        check_fields(self, "metrics")
        check(
            bool(self.host) and not any(c.isspace() for c in self.host),
            f"[metrics] host must be a host name or address, got {show(self.host)}",
        )

    def port_of(self, node_id: int) -> int:
        """The metrics port of ``node_id``."""
        if self.port:
            return self.port
        if self.ports:
            if node_id >= len(self.ports):
                raise ConfigError(f"[metrics] ports has {len(self.ports)} entries, no port for node {node_id}")
            return self.ports[node_id]
        if not self.base_port:
            return 0
        check(
            self.base_port + node_id <= 65535,
            f"[metrics] base_port {self.base_port} + node {node_id} = {self.base_port + node_id} is past port 65535",
        )
        return self.base_port + node_id


@dataclass(frozen=True)
class SecurityConfig:
    """Transport security and the limits that keep a hostile peer from exhausting a node.

    Without CURVE the network is trusted: a sender is whoever its routing id says (see
    docs/concepts/threat-model.md). With CURVE every link is encrypted and a node admits only its neighbours' keys.
    """

    curve: bool = False
    keys_dir: str = ""  # node-<i>.key and node-<i>.key_secret; gossip launch makes them when empty
    max_messages_per_s: float = real(1000.0, 0, 1e9)  # per sender, token bucket; 0 = no limit
    burst_messages: int = integer(100, 1, 1_000_000)
    # inbound connections a node holds at once (gossip.net.connections); 0 = sized from the peers and `ulimit -n`
    max_connections: int = integer(0, 0, 1_000_000)
    max_connections_per_address: int = integer(0, 0, 1_000_000)  # 0 = the number of nodes that may connect, plus 8
    # a connection that has not finished its ZeroMQ (and CURVE) handshake by then is closed
    handshake_timeout_s: float = real(10.0, 0, 3600, lo_open=True)

    def __post_init__(self) -> None:
        check_fields(self, "security")


@dataclass(frozen=True)
class LinksConfig:
    """Link emulation by the sending node (``gossip/net/linkemu.py``): delay, jitter, loss and bandwidth per edge.

    Each edge's own GraphML attributes (``delay_ms``, ``jitter_ms``, ``loss``, ``bandwidth_mbit``; see
    topologies/README.md) apply when ``enabled``; the values here apply to every edge that does not carry
    that attribute. All zero and no attributes = no emulation (the default: a plain graph costs nothing).
    It needs no root and works anywhere; kernel-level faults (tests/e2e/test_netfaults.py) are the check.
    """

    # The same ranges hold for each edge's attributes, so that no link can hold a run up for long: a
    # delay of at most a minute, and a rate of at least 1 kbit/s (the launcher also refuses a link on
    # which no model could arrive within round_timeout_s).
    enabled: bool = True  # apply the topology file's link attributes
    delay_ms: float = real(0.0, 0, 60_000)  # one-way delay added to every message
    jitter_ms: float = real(0.0, 0, 60_000)  # uniform in [-jitter, +jitter] around the delay (never below 0)
    loss: float = real(0.0, 0, 1)  # probability that a message is dropped (seeded by run seed, sender, receiver)
    # link rate: a message occupies the link for size / rate; 0 = unlimited, else 0.001 (1 kbit/s) .. 1000000
    bandwidth_mbit: float = real(0.0, 0, 1e6)

    def __post_init__(self) -> None:
        check_fields(self, "links")
        check_link_value("bandwidth_mbit", self.bandwidth_mbit, "[links] bandwidth_mbit")


@dataclass(frozen=True)
class FaultsConfig:
    """Deliberate faults for tests and research: make some nodes stragglers. Never set in production runs."""

    slow_nodes: tuple[int, ...] = integers(0, MAX_NODES - 1, MAX_NODES)  # these nodes are stragglers
    step_delay_s: float = real(0.0, 0, 3600)  # extra seconds each local SGD step of a slow node takes (an await: it still receives)

    def __post_init__(self) -> None:
        check_fields(self, "faults")


_MIN_BANDWIDTH_MBIT = 0.001


def check_link_value(key: str, value: object, where: str) -> float:
    """A link setting (``[links]`` or an edge's attribute) as a float, or ConfigError naming ``where``.

    One rule for both, so that a topology file cannot set what ``[links]`` refuses: delay and jitter in
    0..60000 ms, loss a probability, bandwidth 0 (unlimited) or 0.001..1000000 Mbit/s.
    """
    number = range_of(LinksConfig, key).checked(value, where)
    check(
        key != "bandwidth_mbit" or number == 0 or number >= _MIN_BANDWIDTH_MBIT,
        f"{where} must be 0 (unlimited) or at least {_MIN_BANDWIDTH_MBIT} Mbit/s, got {show(value)}",
    )
    return float(number)
