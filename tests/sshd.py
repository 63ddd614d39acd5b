"""A real remote shell on every host of a :class:`tests.netns.Fabric`: one OpenSSH ``sshd`` per namespace.

Each sshd listens on its namespace's own address, port 22 (the namespace's, never the machine's), with a host key
and a client key made for the test in a temporary directory; root logs in with the key only. The client side is a
list of ``-o`` options (key, no host-key prompts) that ``gossip launch --ssh-option`` passes on. Everything is
stopped by :meth:`SshHosts.close` (the fixtures call it even when a test fails). Needs root and openssh-server
(``bash deploy/system-deps.sh``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.netns import Fabric

__all__ = ["SSHD", "SshHosts", "available"]

SSHD = Path("/usr/sbin/sshd")

_CONFIG = """\
ListenAddress {address}
Port 22
HostKey {dir}/host_key
AuthorizedKeysFile {dir}/client_key.pub
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
PidFile none
LogLevel ERROR
"""


class SshHosts:
    """sshd on hosts ``0..count-1`` of ``net``; :attr:`options` are the ssh client options that reach them."""

    def __init__(self, net: Fabric, count: int, directory: Path) -> None:
        self.net = net
        self.count = count
        self.dir = directory
        self.procs: list[subprocess.Popen[bytes]] = []
        self.options = [
            f"IdentityFile={directory / 'client_key'}",
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "LogLevel=ERROR",
        ]

    def __enter__(self) -> SshHosts:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Make the keys, start one sshd per host, and wait until each lets the client key in."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / name)], check=True, timeout=30)
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        for i in range(self.count):
            config = self.dir / f"sshd-{i}.conf"
            config.write_text(_CONFIG.format(address=self.net.address(i), dir=self.dir))
            with open(self.dir / f"sshd-{i}.log", "wb") as log:  # the daemon keeps its own descriptor
                self.procs.append(self.net.popen(i, [str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT))
        for i in range(self.count):
            self._wait_ready(i)

    def ssh(self, i: int, command: str, *, from_host: int) -> subprocess.CompletedProcess[str]:
        """``command`` on host ``i`` over ssh, from inside host ``from_host``."""
        args = ["ssh", "-o", "BatchMode=yes", *(w for o in self.options for w in ("-o", o)), self.net.address(i), command]
        return self.net.run(from_host, *args, check=False, timeout=30)

    def _wait_ready(self, i: int) -> None:
        deadline = time.monotonic() + 20
        while True:
            if self.procs[i].poll() is not None:
                raise RuntimeError(f"sshd on host {i} exited: {(self.dir / f'sshd-{i}.log').read_text()[-500:]}")
            if self.ssh(i, "true", from_host=self.net.hosts - 1).returncode == 0:  # from the last host, where tests launch
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd on host {i} does not let the test key in: {(self.dir / f'sshd-{i}.log').read_text()[-500:]}")
            time.sleep(0.2)

    def close(self) -> None:
        """Stop every sshd (and so every session it still serves) and forget the keys."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


def available() -> str | None:
    """Why sshd cannot run here, or None."""
    if not SSHD.exists():
        return "openssh-server is missing (/usr/sbin/sshd): run `bash deploy/system-deps.sh`"
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "the OpenSSH client (ssh, ssh-keygen) is missing: run `bash deploy/system-deps.sh`"
    return None
