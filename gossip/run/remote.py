"""The remote end of ``gossip launch --hosts``: run one ``gossip node`` on this host for as long as the launcher's ssh lasts.

``python -m gossip.run.remote PIDFILE NODE_ARGS...`` starts ``python -m gossip node NODE_ARGS...``, writes the node's
pid to PIDFILE (on the shared run directory: the launcher sends its stop signals there, ``ssh HOST kill PID``)
and exits with the node's exit code, which ssh hands back to the launcher.

Why a wrapper and not ``exec``: a remote process gets no signal when the ssh connection goes. If the launcher is
killed outright (SIGKILL, an OOM kill, a lost login node), its ssh clients die with it (parent-death signal) and
the connections close; the wrapper's standard input is its end of that connection, so end of file there means the
launcher is gone, and the wrapper stops its node as the launcher would have: SIGTERM (the node writes its
checkpoint and summary), SIGKILL after the grace period. No node outlives its launcher on any host, and
``gossip launch --resume`` finds every checkpoint. Standard library only: it starts before the node imports torch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

from gossip.run.processes import die_with_parent

__all__ = ["GRACE_S", "main"]

GRACE_S = 15.0  # as the launcher's own stop: SIGTERM, then SIGKILL after this long


def _stop_at_eof(node: subprocess.Popen[bytes]) -> None:
    """Block until standard input ends (the launcher's ssh is gone), then stop the node."""
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    if node.poll() is None:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(GRACE_S)
        except subprocess.TimeoutExpired:
            node.kill()


def main(argv: Sequence[str]) -> int:
    """Run the node; its exit code, or 128 + the signal that killed it (as a shell reports it)."""
    if len(argv) < 2:
        print("usage: python -m gossip.run.remote PIDFILE NODE_ARGS...", file=sys.stderr)
        return 2
    pid_file, node_args = argv[0], list(argv[1:])
    node = subprocess.Popen([sys.executable, "-m", "gossip", "node", *node_args], stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    with open(f"{pid_file}.tmp", "w") as out:
        out.write(f"{node.pid}\n")
    os.replace(f"{pid_file}.tmp", pid_file)  # the launcher never reads half a pid
    threading.Thread(target=_stop_at_eof, args=(node,), daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # a signal meant for the wrapper reaches the node
        signal.signal(sig, lambda signum, _frame: node.send_signal(signum))
    code = node.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
