"""The ``gossip`` console script: parse arguments, load config, hand over. No logic of its own.

Every user mistake (bad flag, bad config, unknown topology or dataset, port in use) ends as one line
``gossip: error: ...`` on stderr and exit code 2 — never a traceback. A socket or file error while a
node runs is one line too, but exit 1: a runtime failure, which a restart may cure. Anything else is a
bug and keeps its traceback. The exit codes are :class:`gossip.errors.ExitCode`'s table.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence

from gossip.cli.commands import cmd_node, render_deploy
from gossip.cli.parser import build_parser
from gossip.errors import ExitCode, GossipError, error_text
from gossip.node.daemon import exit_without_teardown

__all__ = ["build_parser", "main", "render_deploy"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gossip`` console script; returns the exit code.

    A node process (``gossip node`` as the process's own command, ``argv`` not given) ends without the
    interpreter's teardown: see :func:`gossip.node.daemon.exit_without_teardown`. Any other command run as
    the process's own keeps the teardown (its atexit handlers run) but moves every object out of the
    garbage collector's reach first: the collections at exit walk everything torch built, about half a
    second for nothing, since the process is going.
    """
    whole_process = argv is None
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    code = _run(args)
    if whole_process and args.handler is cmd_node:
        exit_without_teardown(code)
    if whole_process:
        gc.freeze()
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args))
    except GossipError as exc:
        print(f"gossip: error: {error_text(exc)}", file=sys.stderr)
        return ExitCode.USAGE
    except OSError as exc:
        if exc.filename is None:
            raise
        # a path the user named (an output directory under /proc, a file where a directory goes, no
        # permission, a full disk): theirs or their machine's to fix, one line like every other mistake
        print(f"gossip: error: {error_text(exc)}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        print("gossip: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
