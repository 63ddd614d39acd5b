"""Run many ``gossip`` command lines in one interpreter: the refusal families' harness.

A family of refusals (each way a plug-in or a flag can be wrong: one line, exit 2, nothing written) is many
command lines that each end before any node starts. Run as ``python -m gossip`` each would import torch again
(seconds apiece on a small machine) to print one line. Here one fresh interpreter, started as the console
script would be (the environment, the working directory, no standard input), calls the console script's own
entry point, :func:`gossip.cli.main`, once per command line, each with its own captured standard streams; an
argparse refusal (``SystemExit``) counts as its exit code. The cases share the interpreter's imports, so a
family keeps one module file per name (a plug-in module imported once stays imported).

``python -m tests.cli_cases`` reads a JSON list of argument lists on stdin and prints a JSON list of
``[exit code, stdout, stderr]``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CliResult", "Refusal", "assert_refused", "run_cli_cases", "run_refusals"]


@dataclass(frozen=True)
class CliResult:
    """What one command line gave: the shape of :class:`subprocess.CompletedProcess` the tests read."""

    returncode: int
    stdout: str
    stderr: str


def run_cli_cases(
    cases: Sequence[Sequence[str]], *, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 600
) -> list[CliResult]:
    """``gossip ARGS`` for each of ``cases``, in order, in one fresh interpreter; one result per case."""
    from tests.conftest import cli_env  # here, not at the top: the cases' interpreter imports this module too

    full_env = cli_env(env)
    repo = str(Path(__file__).resolve().parent.parent)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (full_env.get("PYTHONPATH", ""), repo) if p)  # tests.cli_cases itself
    done = subprocess.run(
        [sys.executable, "-m", "tests.cli_cases"],
        input=json.dumps([list(c) for c in cases]),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=full_env,
    )
    if done.returncode != 0:
        raise AssertionError(f"the cases' interpreter failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return [CliResult(*result) for result in json.loads(done.stdout)]


@dataclass(frozen=True)
class Refusal:
    """One case of a refusal family: what the command line gave, and the run directory it named."""

    result: CliResult
    run_dir: Path


def run_refusals(base: Path, cases: Mapping[str, Sequence[str]], *, env: Mapping[str, str] | None = None) -> dict[str, Refusal]:
    """Each case's command line with ``--run-dir BASE/run-<case>`` added, all in one interpreter (see the module)."""
    run_dirs = {case: base / f"run-{case}" for case in cases}
    results = run_cli_cases([[*argv, "--run-dir", str(run_dirs[case])] for case, argv in cases.items()], env=env)
    return {case: Refusal(result, run_dirs[case]) for case, result in zip(cases, results, strict=True)}


def assert_refused(refusal: Refusal, message: str, *, whole: bool = False) -> None:
    """The user-mistake contract: exit code 2, one line ``gossip: error: MESSAGE...`` on stderr (``whole``: nothing
    after MESSAGE), no run directory."""
    err = refusal.result.stderr
    assert refusal.result.returncode == 2, err
    assert err.startswith(f"gossip: error: {message}"), err
    assert len(err.strip().splitlines()) == 1, err
    if whole:
        assert err.strip() == f"gossip: error: {message}", err
    assert not refusal.run_dir.exists()


def _main() -> int:
    if sys.path and sys.path[0] == os.getcwd():  # ``-m`` put the working directory first; the console script does not
        sys.path.pop(0)
    from gossip.cli import main

    results = []
    for argv in json.loads(sys.stdin.read()):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's own refusals
                code = exc.code if isinstance(exc.code, int) else 2
        results.append([code, out.getvalue(), err.getvalue()])
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
