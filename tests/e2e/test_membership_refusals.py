"""What an open network refuses before anything starts: one line, exit 2, nothing written.

Every case runs through the console script's entry point, all in one interpreter (tests/cli_cases.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_cases import Refusal, assert_refused, run_cli_cases, run_refusals

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

OPEN = ["--set", "membership.enabled=true", "--set", "training.mode=async"]
LAUNCH = ["launch", "-n", "4", "-t", "ring", "-r", "5", "--dataset", "digits", "--model", "logreg", "--no-progress", "--no-report"]
NODE = ["node", "--id", "1", "--set", "data.dataset=digits", "--set", "model.name=logreg", "--set", "run.nodes=4"]
CASES = {
    "sync-rounds": (
        [*LAUNCH, "--set", "membership.enabled=true"],
        "[membership] an open network has no fixed member list for a round barrier to wait on; set training.mode = 'async'",
    ),
    "global-merge": ([*LAUNCH, *OPEN, "--set", "merge.enabled=true"], "[membership] the single global merge needs a fixed member list"),
    "restart": (
        [*LAUNCH, *OPEN, "--restart", "2"],
        "--restart and an open network ([membership] enabled) exclude each other: members dial tcp:// addresses, and one that "
        "dies rejoins as a new member (gossip node --join), not from a checkpoint",
    ),
    "ipc": ([*LAUNCH, *OPEN, "--ipc"], "--ipc and an open network ([membership] enabled) exclude each other"),
    "join-in-a-fixed-run": (
        [*NODE, "--join", "tcp://127.0.0.1:7000"],
        "--join needs an open network: set membership.enabled = true (and training.mode = 'async')",
    ),
    "join-not-an-address": (
        [*NODE, *OPEN, "--join", "x@tcp://127.0.0.1:7000"],
        "--join 'x@tcp://127.0.0.1:7000': expected tcp://HOST:PORT",
    ),
    "join-outside-allow": (
        [*NODE, *OPEN, "--join", "tcp://192.168.1.1:7000"],
        "node 1: --join 'tcp://192.168.1.1:7000' is not one [membership] allow and ports admit: address outside the allowed networks",
    ),
    "resume": ([*NODE, *OPEN, "--resume"], "--resume: a member of an open network does not resume; it joins again as a new member"),
}


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Refusal]:
    return run_refusals(tmp_path_factory.mktemp("open-refusals"), {case: argv for case, (argv, _) in CASES.items()})


@pytest.mark.parametrize("case", list(CASES))
def test_an_open_network_refuses_what_it_cannot_run(refused: dict[str, Refusal], case: str) -> None:
    """Each flag or setting an open network cannot honour is one line naming it, exit 2, no run directory."""
    assert_refused(refused[case], CASES[case][1])


def test_deploy_refuses_an_open_network(tmp_path: Path) -> None:
    """Compose, Kubernetes and SLURM files start a fixed topology: with [membership] enabled, deploy says so and writes nothing."""
    out = tmp_path / "out"
    (result,) = run_cli_cases([["deploy", "compose", "-n", "4", "-t", "ring", *OPEN, "--out", str(out)]])
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "gossip: error: gossip deploy compose starts a fixed topology; an open network ([membership] enabled) is started "
        "member by member with gossip node --join (see docs/concepts/open-membership.md)"
    )
    assert not out.exists()
