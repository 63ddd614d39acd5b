"""How a model travels: the wire format, its codecs, the transports, connection limits and link emulation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gossip.exports import lazy_exports

if TYPE_CHECKING:
    from gossip.net.transport import InMemoryNetwork, InMemoryTransport, Received, Transport
    from gossip.net.wire import Kind, Message, decode, encode
    from gossip.net.zeromq import ZmqTransport, generate_keys, load_keys

__all__ = [
    "InMemoryNetwork",
    "InMemoryTransport",
    "Kind",
    "Message",
    "Received",
    "Transport",
    "ZmqTransport",
    "decode",
    "encode",
    "generate_keys",
    "load_keys",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "gossip.net.transport": ("InMemoryNetwork", "InMemoryTransport", "Received", "Transport"),
        "gossip.net.zeromq": ("ZmqTransport", "generate_keys", "load_keys"),
        "gossip.net.wire": ("Kind", "Message", "decode", "encode"),
    },
)
