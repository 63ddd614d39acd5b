"""Shared fixtures: free loopback ports, tracked ZeroMQ contexts, and no child process left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Tests that share one service of the machine run on one worker, one after another: the image builds of the
# Docker tests (the SLURM tests are one module, the network-namespace fabrics are named per process).
SHARED_DIRECTORIES = ("tests/docker/",)


def _own_free_ports() -> None:
    """Under pytest-xdist, each worker picks free ports (its own and its launches') from a slice of its own of
    the range in effect: two workers never pick the same port between picking it and binding it."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not worker or not count:
        return
    from gossip.run.ports import FREE_PORTS_ENV, free_port_range

    low, high = free_port_range()
    size = (high - low + 1) // int(count)
    first = low + int(worker.removeprefix("gw")) * size
    os.environ[FREE_PORTS_ENV] = f"{first}-{first + size - 1}"


_own_free_ports()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``--dist loadfile``, with each of SHARED_DIRECTORIES as one unit: a worker takes a module whole (its
    module-scoped runs start once) or such a directory whole. (xdist_group marks would say the same, but they
    do not reach xdist 3.8's scheduler under pytest 9.)"""
    from xdist.scheduler import LoadScopeScheduling

    class Units(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return next((d for d in SHARED_DIRECTORIES if path.startswith(d)), path)

    return Units(config, log) if config.getvalue("dist") == "loadfile" else None


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free TCP port on 127.0.0.1, below the ephemeral range (so no other process is handed it by
    the kernel before our node binds it; see gossip.run.ports.pick_ports) and never the same twice here."""
    from gossip.run.ports import pick_ports

    while True:
        port = pick_ports("127.0.0.1", 1, None, "test")[0]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@pytest.fixture(scope="session", autouse=True)
def _own_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The whole session, and every process it starts, caches in a directory of its own ($XDG_CACHE_HOME):
    tests neither read a cache another run left in the user's home nor write one there. MNIST-1D is then
    generated once per session (gossip.data.datasets) and read from this cache by every later launch."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def zmq_context() -> Iterator[object]:
    """An asyncio ZeroMQ context terminated after the test, sockets closed with linger 0."""
    import zmq.asyncio

    ctx = zmq.asyncio.Context()
    yield ctx
    ctx.destroy(linger=0)


class Processes:
    """Child processes a test started; all are killed at teardown, whatever happened."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
        env.update(kwargs.pop("env", {}) or {})  # type: ignore[arg-type]
        proc = subprocess.Popen(args, env=env, start_new_session=True, **kwargs)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def gossip(self, *args: str, **kwargs: object) -> subprocess.Popen[bytes]:
        """Start the gossip console script (as ``python -m gossip``) with these arguments."""
        return self.start([sys.executable, "-m", "gossip", *args], **kwargs)

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()


@pytest.fixture
def processes() -> Iterator[Processes]:
    procs = Processes()
    try:
        yield procs
    finally:
        procs.cleanup()


def cli_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a test runs the CLI in: this one, one thread per BLAS pool, unbuffered, no display; then ``env``."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", **(env or {})}


def run_gossip(
    *args: str, timeout: float = 600, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the gossip CLI to completion in a subprocess; returns its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "gossip", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=cli_env(env),
        stdin=subprocess.DEVNULL,
    )
