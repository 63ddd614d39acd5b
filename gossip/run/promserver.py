"""A Prometheus server process beside a local run: start it on a run's config, wait until ready, stop it.

``gossip launch --prometheus`` uses it; so can a test or a notebook. The server is the real
``prometheus`` binary (Debian/Ubuntu: ``apt-get install prometheus``), never a stand-in. Its TSDB
lives in the run directory, so the run's metrics history stays with the run and can be opened again
later by starting ``prometheus`` on the same ``--storage.tsdb.path``.

Process hygiene as for nodes: its own session (a terminal's Ctrl-C reaches only the launcher), and
``PR_SET_PDEATHSIG`` so even a ``kill -9`` of the launcher leaves no Prometheus behind.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from gossip.errors import TransportError
from gossip.ops.prometheus import run_prometheus_dir
from gossip.run.processes import die_with_parent

__all__ = ["HOW_TO_GET", "PrometheusServer", "beside_run", "find_prometheus"]

HOW_TO_GET = (
    "prometheus is not on PATH; install it (Debian/Ubuntu: sudo apt-get install prometheus, "
    "or bash deploy/system-deps.sh) or get it from https://prometheus.io/download/"
)
READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 15.0


def find_prometheus() -> str | None:
    """The ``prometheus`` binary on PATH, or None."""
    return shutil.which("prometheus")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PrometheusServer:
    """One ``prometheus`` process on ``host:port`` (0 = a free port) serving ``config`` from ``data_dir``."""

    def __init__(self, binary: str, config: Path, data_dir: Path, log: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.binary = binary
        self.config = Path(config)
        self.data_dir = Path(data_dir)
        self.log = Path(log)
        self.host = host
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start the process and return once it answers ``/-/ready``; raises TransportError if it does not."""
        if self.port == 0:
            self.port = _free_port(self.host)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.binary,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={self.host}:{self.port}",
        ]
        with open(self.log, "ab") as log:  # the child keeps its own descriptor
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent
            )
        try:
            self._wait_ready(self._proc, ready_timeout_s)
        except BaseException:  # not ready, or Ctrl-C while waiting: never leave the process behind
            self.stop()
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise TransportError(f"prometheus exited with code {proc.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise TransportError(f"prometheus did not become ready within {timeout_s:g} s; see {self.log}")

    def stop(self) -> None:
        """SIGTERM (Prometheus then flushes its WAL), SIGKILL after a grace period; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def beside_run(run_dir: Path, *, metrics_enabled: bool, port: int = 0, out: IO[str] | Any = None) -> Iterator[PrometheusServer | None]:
    """A Prometheus on ``RUN_DIR/prometheus/prometheus.yml`` for the duration of the block, if it can be had.

    Never fails the run: without the binary, without metrics, or if the server does not start, it
    prints one line saying why (and how to fix it) and yields None.
    """
    directory = run_prometheus_dir(run_dir)
    if not metrics_enabled:
        print("gossip: not starting Prometheus: the nodes serve no metrics ([metrics] enabled = false)", file=out)
        yield None
        return
    binary = find_prometheus()
    if binary is None:
        print(f"gossip: not starting Prometheus: {HOW_TO_GET}", file=out)
        yield None
        return
    server = PrometheusServer(binary, directory / "prometheus.yml", directory / "data", directory / "prometheus.log", port=port)
    try:
        server.start()
    except TransportError as exc:
        print(f"gossip: not starting Prometheus: {exc}", file=out)
        yield None
        return
    print(
        f"gossip: prometheus on {server.url} (e.g. {server.url}/graph?g0.expr=gossip_test_accuracy&g0.range_input=5m)", file=out, flush=True
    )
    try:
        yield server
    finally:
        server.stop()
        print(f"gossip: prometheus stopped; the run's metrics history is in {directory / 'data'}", file=out)
