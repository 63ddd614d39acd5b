"""The transport of a fixed-topology node: its ZeroMQ sockets (CURVE keys, connection limits), and the same-host
shared-memory path in front of them unless the config turns it off or CURVE is on."""

from __future__ import annotations

from gossip.config import RunConfig
from gossip.errors import UsageError
from gossip.net.connections import size_limits
from gossip.net.rings import slots_for
from gossip.net.shm import SharedMemoryTransport
from gossip.net.zeromq import ZmqTransport, load_keys
from gossip.node.plan import HEADER_SLACK_BYTES, NodePlan, message_limit, run_id_of

__all__ = ["node_transport"]


def node_transport(cfg: RunConfig, plan: NodePlan) -> tuple[ZmqTransport, ZmqTransport | SharedMemoryTransport]:
    """The node's ZeroMQ transport, and what the node talks through (the same, or the shared-memory path over it)."""
    node_id = plan.node_id
    neighbours = plan.topology.neighbours(node_id)
    peers = {j: cfg.transport.address_of(j) for j in neighbours}
    curve = None
    if cfg.security.curve:
        if not cfg.security.keys_dir:
            raise UsageError("[security] curve = true needs keys_dir (create keys with: gossip keys --nodes N --out DIR)")
        # the global merge talks to every node of the run, so it needs every node's key (the wire still
        # accepts only merge messages from a node that is not a neighbour)
        admitted = [j for j in range(plan.topology.n) if j != node_id] if cfg.merge.enabled else neighbours
        curve = load_keys(cfg.security.keys_dir, node_id, admitted)
    # every node of the run may connect when the merge is on (it is all-to-all), else the neighbours
    connecting = plan.topology.n - 1 if cfg.merge.enabled else len(neighbours)
    max_frame_bytes = message_limit(plan)
    limits = size_limits(
        connecting,
        max_frame_bytes,
        cfg.transport.queue_messages,
        handshake_timeout_s=cfg.security.handshake_timeout_s,
        max_connections=cfg.security.max_connections,
        max_per_address=cfg.security.max_connections_per_address,
    )
    sockets = ZmqTransport(
        node_id,
        cfg.transport.listen_address(node_id),
        peers,
        queue_messages=cfg.transport.queue_messages,
        max_message_bytes=max_frame_bytes,
        curve=curve,
        limits=limits,
    )
    if not cfg.transport.shared_memory or curve is not None:  # a ring handover proves no CURVE key
        return sockets, sockets
    shared = SharedMemoryTransport(
        sockets,
        run_id=run_id_of(cfg),
        me=node_id,
        address=cfg.transport.address_of(node_id),
        peers=peers,
        # a slot holds the largest payload: the model at float32 (or the frame limit [transport] sets)
        slot_bytes=max_frame_bytes if cfg.transport.max_message_bytes else max_frame_bytes - HEADER_SLACK_BYTES,
        slots=slots_for(cfg.transport.max_rounds_ahead),
    )
    return sockets, shared
