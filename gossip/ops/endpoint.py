"""The node's HTTP endpoint: ``/metrics``, ``/healthz`` and ``/readyz`` on one port, one thread, bounded resources.

``/healthz`` says the process is alive (200), ``/readyz`` says every neighbour said hello (200, 503
before): Docker health checks and Kubernetes probes read them.
"""

from __future__ import annotations

import collections
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client.exposition import make_wsgi_app

from gossip.errors import TransportError

if TYPE_CHECKING:
    from gossip.ops.metrics import NodeMetrics

__all__ = ["MetricsServer"]


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on one port, served by one thread with bounded resources.

    Why not prometheus_client's server: it starts a thread per connection and never times a request
    out, so clients that send half a request pile up threads and descriptors until the node dies (1,004
    half-sent requests: 1,002 threads). Here one thread runs a selector loop over non-blocking sockets:
    at most ``MAX_CONNECTIONS`` open at once (a new one displaces an unfinished request, see
    :func:`_victim`), a request must arrive whole within ``READ_TIMEOUT_S`` and fit in
    ``MAX_REQUEST_BYTES``, and the response must be taken within ``WRITE_TIMEOUT_S``. Each response
    closes its connection. A scrape takes milliseconds, so a flood of slow clients delays it by one
    turn of the loop, not by their timeouts.
    """

    MAX_CONNECTIONS = 16
    READ_TIMEOUT_S = 5.0
    WRITE_TIMEOUT_S = 10.0
    MAX_REQUEST_BYTES = 8192

    def __init__(self, metrics: NodeMetrics, host: str, port: int, ready: Callable[[], bool]) -> None:
        self._metrics_app = make_wsgi_app(metrics.registry)
        self._ready = ready
        self._host = host
        self._port = port
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._waker: tuple[socket.socket, socket.socket] | None = None

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1]) if self._listener is not None else self._port

    def start(self) -> None:
        """Bind and serve; raises TransportError when the port is taken."""
        try:
            family, kind, proto, _name, address = socket.getaddrinfo(
                self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            listener = socket.socket(family, kind, proto)
            try:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(address)
                listener.listen(64)
            except OSError:
                listener.close()
                raise
        except OSError as exc:
            raise TransportError(f"metrics: cannot listen on {self._host}:{self._port}: {exc.strerror or exc}") from None
        listener.setblocking(False)
        self._listener = listener
        self._waker = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        assert self._waker is not None
        self._waker[1].send(b"x")
        self._thread.join(timeout=5)
        self._thread = None
        for sock in (self._listener, *self._waker):
            if sock is not None:
                sock.close()
        self._listener = None
        self._waker = None

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ok = self._ready()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ready\n" if ok else b"waiting for neighbours\n"]
        return self._metrics_app(environ, start_response)

    # -- the serving thread ---------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._listener is not None and self._waker is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ, None)
            selector.register(self._waker[0], selectors.EVENT_READ, None)
            open_: dict[socket.socket, _HttpConnection] = {}  # in the order they were accepted
            try:
                while not self._stopping.is_set():
                    now = time.monotonic()
                    timeout = min((c.deadline for c in open_.values()), default=now + 1.0) - now
                    ready = [key.fileobj for key, _mask in selector.select(max(0.0, timeout))]
                    # the open connections first: a request that arrived is served before new
                    # connections can push its connection out
                    for sock in ready:
                        conn = open_.get(sock)  # type: ignore[call-overload]
                        if conn is not None:
                            self._advance(selector, open_, conn)
                    if self._listener in ready:
                        self._accept(selector, open_)
                    now = time.monotonic()
                    for conn in [c for c in open_.values() if c.deadline <= now]:
                        self._close(selector, open_, conn)
            finally:
                for conn in list(open_.values()):
                    self._close(selector, open_, conn)

    def _advance(self, selector: selectors.BaseSelector, open_: dict[socket.socket, _HttpConnection], conn: _HttpConnection) -> None:
        """Read or write what ``conn``'s socket allows; close it when done, watch for writing once answered."""
        reading = conn.response is None
        if not self._step(conn):
            self._close(selector, open_, conn)
        elif reading and conn.response is not None:
            selector.modify(conn.sock, selectors.EVENT_WRITE, None)

    def _accept(self, selector: selectors.BaseSelector, open_: dict[socket.socket, _HttpConnection]) -> None:
        assert self._listener is not None
        for _ in range(self.MAX_CONNECTIONS):  # a bounded batch, then the loop serves the open ones
            try:
                sock, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of descriptors, or the client gave up already: try again next turn
                return
            if len(open_) >= self.MAX_CONNECTIONS:
                self._close(selector, open_, _victim(open_))
            sock.setblocking(False)
            conn = _HttpConnection(sock, str(peer[0]) if isinstance(peer, tuple) else "", time.monotonic() + self.READ_TIMEOUT_S)
            open_[sock] = conn
            selector.register(sock, selectors.EVENT_READ, None)
            self._advance(selector, open_, conn)  # a client usually sends its request with the connection

    def _step(self, conn: _HttpConnection) -> bool:
        """Read or write what the socket allows; False when the connection is done (or broken)."""
        try:
            if conn.response is None:
                chunk = conn.sock.recv(4096)
                if not chunk:
                    return False
                conn.request += chunk
                if len(conn.request) > self.MAX_REQUEST_BYTES:
                    conn.respond(_plain_response("431 Request Header Fields Too Large", b"request too large\n"), self.WRITE_TIMEOUT_S)
                elif b"\r\n\r\n" in conn.request:
                    conn.respond(self._response(bytes(conn.request)), self.WRITE_TIMEOUT_S)
                else:
                    return True
            assert conn.response is not None
            sent = conn.sock.send(conn.response)
            conn.response = conn.response[sent:]
            return bool(conn.response)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False

    def _response(self, request: bytes) -> bytes:
        """The whole HTTP response to one request (status line, headers, body)."""
        head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _plain_response("400 Bad Request", b"bad request\n")
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return _plain_response("405 Method Not Allowed", b"GET only\n")
        path, _sep, query = target.partition("?")
        environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                environ["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
        started: list[Any] = []
        body = b"".join(self._app(environ, lambda status, headers: started.extend((status, headers))))
        status, headers = started
        return _head(status, [*headers, ("Content-Length", str(len(body)))]) + (b"" if method == "HEAD" else body)

    def _close(self, selector: selectors.BaseSelector, open_: dict[socket.socket, _HttpConnection], conn: _HttpConnection) -> None:
        open_.pop(conn.sock, None)
        try:
            selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()


class _HttpConnection:
    """One client of the metrics endpoint: what it sent so far, what is left to send it, its deadline."""

    def __init__(self, sock: socket.socket, address: str, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.deadline = deadline
        self.request = bytearray()
        self.response: bytes | None = None

    def respond(self, response: bytes, timeout_s: float) -> None:
        self.response = response
        self.deadline = time.monotonic() + timeout_s


def _victim(open_: dict[socket.socket, _HttpConnection]) -> _HttpConnection:
    """The connection to close for a new one: the oldest still sending its request, from the address that
    holds the most (a client elsewhere, a Prometheus, keeps its place in a flood from one address)."""
    reading = [c for c in open_.values() if c.response is None] or list(open_.values())
    held = collections.Counter(c.address for c in reading)
    busiest = max(held.values())
    return next(c for c in reading if held[c.address] == busiest)


def _head(status: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers), "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _plain_response(status: str, body: bytes) -> bytes:
    return _head(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]) + body
