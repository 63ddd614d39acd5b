"""``gossip launch``'s flags for how nodes of one machine talk: ipc sockets, and shared memory off."""

from __future__ import annotations

import argparse

__all__ = ["add_local_transport_arguments"]


def add_local_transport_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ipc",
        action="store_true",
        help="nodes talk over Unix-domain sockets (ZeroMQ ipc://) instead of loopback TCP: less CPU per model moved on "
        "one machine; TCP (the default) is what a real network does",
    )
    p.add_argument(
        "--no-shared-memory",
        action="store_true",
        help="models between nodes of this machine go through the sockets too (transport.shared_memory = false); by "
        "default each model to a neighbour on the same host is copied once into shared memory and the socket carries a reference",
    )
