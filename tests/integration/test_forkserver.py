"""``gossip.run.forkserver``: real forks of the warm server, seen through the launcher's Popen-like handle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gossip.run.forkserver import start_node_process
from tests.conftest import free_port


def _waiting_node() -> list[str]:
    """`gossip node` arguments for node 0 of a 3-node ring whose peers never come: it waits a minute."""
    ports = [free_port() for _ in range(3)]
    addresses = ", ".join(f'"tcp://127.0.0.1:{p}"' for p in ports)
    return [
        "node",
        "--id",
        "0",
        "--set",
        "run.nodes=3",
        "--set",
        "topology.spec=ring",
        "--set",
        f"transport.addresses=[{addresses}]",
        "--set",
        "metrics.enabled=false",
        "--set",
        "transport.startup_timeout_s=60",
    ]


def test_a_forked_node_that_refuses_its_arguments_exits_2_with_the_reason_in_its_log(tmp_path: Path) -> None:
    """A usage error in a fork is what it is in `gossip node`: one line in the node's log, exit code 2 (the code
    the launcher does not restart)."""
    log = tmp_path / "node.log"
    node = start_node_process(
        ["node", "--id", "0", "--config", str(tmp_path / "missing.toml")], log=log, env=dict(os.environ), title=["gossip", "node"]
    )
    assert node.wait(timeout=60) == 2
    assert node.poll() == 2
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gossip: error:") and "missing.toml" in lines[0]


def test_a_forked_node_killed_by_a_signal_reports_minus_the_signal(tmp_path: Path) -> None:
    """As Popen: a running node makes ``wait`` time out and ``poll`` say None; killed, its code is minus SIGKILL;
    signalling it once it is gone is no error."""
    node = start_node_process(_waiting_node(), log=tmp_path / "node.log", env=dict(os.environ), title=["gossip", "node"])
    with pytest.raises(subprocess.TimeoutExpired):
        node.wait(timeout=0.5)
    assert node.poll() is None
    node.kill()
    assert node.wait(timeout=30) == -signal.SIGKILL
    node.send_signal(signal.SIGTERM)  # gone: nothing to signal, no error


def test_a_forked_node_reads_the_environment_it_was_started_with(tmp_path: Path) -> None:
    """The server keeps the environment of its start; each node gets the one the launcher passes. A node
    without --id reads GOSSIP_NODE_ID: the value in its refusal proves which environment it read."""
    for value in ("seven", "eight"):  # two nodes of the same server, two environments
        log = tmp_path / f"{value}.log"
        node = start_node_process(["node"], log=log, env=dict(os.environ, GOSSIP_NODE_ID=value), title=["gossip", "node"])
        assert node.wait(timeout=60) == 2
        assert f"--id '{value}': expected a node number" in log.read_text()


def test_a_stopped_server_is_gone_and_the_next_node_starts_a_new_one(tmp_path: Path) -> None:
    """A launch owns its server: once stopped, its process has exited, and the next start brings up a fresh one."""
    from multiprocessing import forkserver

    from gossip.run.forkserver import stop

    def refused(log: Path) -> int:
        return start_node_process(["node", "--id", "x"], log=log, env=dict(os.environ), title=["gossip", "node"]).wait(timeout=60)

    assert refused(tmp_path / "a.log") == 2
    first = forkserver._forkserver._forkserver_pid
    assert first is not None
    stop()
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)
    assert refused(tmp_path / "b.log") == 2
    assert forkserver._forkserver._forkserver_pid not in (None, first)
    stop()


def test_a_forked_node_does_not_run_the_launching_script_again(tmp_path: Path) -> None:
    """multiprocessing would run the parent's main script again in every child; a script that launches at top level
    (no ``__main__`` guard) would then launch again inside each node. The script runs once, the node refuses its
    arguments as usual."""
    script = tmp_path / "launch_at_top_level.py"
    marker = tmp_path / "ran"
    script.write_text(
        "import os, sys\n"
        "from pathlib import Path\n"
        "from gossip.run.forkserver import start_node_process, stop\n"
        f"with open({str(marker)!r}, 'a') as f:\n"
        "    f.write('ran\\n')\n"
        f"node = start_node_process(['node', '--id', 'x'], log=Path({str(tmp_path / 'node.log')!r}), env=dict(os.environ), title=['gossip', 'node'])\n"
        "code = node.wait(timeout=60)\n"
        "stop()\n"
        "sys.exit(0 if code == 2 else 1)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert marker.read_text() == "ran\n"
    assert "expected a node number" in (tmp_path / "node.log").read_text()


def test_without_setproctitle_a_forked_node_runs_under_the_servers_title(tmp_path: Path) -> None:
    """``setproctitle`` is what names a forked node ``gossip node`` in ``ps``; when it cannot be imported the node
    still runs (under the fork server's command line) and still refuses bad arguments the usual way."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "setproctitle.py").write_text("raise ImportError('setproctitle is not installed here')\n")
    script = tmp_path / "start_without_setproctitle.py"
    script.write_text(
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from gossip.run.forkserver import start_node_process, stop\n"
        "from tests.integration.test_forkserver import _waiting_node\n"
        f"out = Path({str(tmp_path)!r})\n"
        "refused = start_node_process(['node', '--id', 'x'], log=out / 'refused.log', env=dict(os.environ), title=['gossip', 'node'])\n"
        "code = refused.wait(timeout=60)\n"
        "waiting = start_node_process(_waiting_node(), log=out / 'waiting.log', env=dict(os.environ), title=['gossip', 'node', '--id', '0'])\n"
        "time.sleep(2)\n"
        "alive = waiting.poll() is None\n"
        "title = Path(f'/proc/{waiting.pid}/cmdline').read_bytes().replace(b'\\0', b' ').decode()\n"
        "waiting.kill()\n"
        "waiting.wait(timeout=30)\n"
        "stop()\n"
        "print(code, alive, title)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake), str(Path(__file__).resolve().parents[2])]))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    code, alive, title = done.stdout.split(" ", 2)
    assert (code, alive) == ("2", "True")
    assert "forkserver" in title and "gossip node" not in title
    assert "expected a node number" in (tmp_path / "refused.log").read_text()
    assert "Traceback" not in (tmp_path / "waiting.log").read_text()
