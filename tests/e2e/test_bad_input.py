"""Malformed and extreme settings through the real console script: one line `gossip: error: ...`, exit 2, nothing written.

Each case was once a traceback, a hang, memory exhaustion, a crash of every node, or a run accepted that should
not have been (a run directory outside out_dir, a config.toml its own nodes could not parse, a link that held the
run up until it was killed).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import run_gossip

pytestmark = [pytest.mark.e2e]

LAUNCH = ("launch", "-n", "4", "-t", "ring", "-r", "2", "--no-progress", "--no-report")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param((*LAUNCH, "--config", "{fifo}"), "config path {fifo} is a FIFO, not a TOML file", id="fifo-config"),
        pytest.param(
            (*LAUNCH, "--config", "/dev/zero"), "config path /dev/zero is a character device, not a TOML file", id="dev-zero-config"
        ),
        pytest.param(
            ("launch", "-n", "100000000", "--no-report"), "[run] nodes must be an integer in 0..10000, got 100000000", id="nodes-1e8"
        ),
        pytest.param(
            (*LAUNCH, "--set", "model.hidden=[100000000]"),
            "[model] hidden must be a list of at most 32 integers in 1..1000000",
            id="hidden-1e8",
        ),
        pytest.param(
            (*LAUNCH, "--set", "model.hidden=[1000000, 1000000]"), "4 node processes need about", id="hidden-too-large-for-memory"
        ),
        pytest.param((*LAUNCH, "--base-port", "70000"), "argument --base-port: 70000 is not in 0..65535", id="base-port-70000"),
        pytest.param(
            ("launch", "-n", "8", "-r", "2", "--no-report", "--base-port", "65530"),
            "--base-port 65530: 8 nodes and their metrics need ports 65530..65545",
            id="base-port-65530-n8",
        ),
        pytest.param((*LAUNCH, "--seed", str(2**70)), "[run] seed must be an integer in 0..4294967295", id="seed-2**70"),
        pytest.param(
            (*LAUNCH, "--set", "transport.queue_messages=1e20"),
            "[transport] queue_messages must be an integer in 1..10000, got 1e+20",
            id="queue-1e20",
        ),
        pytest.param(
            (*LAUNCH, "--set", f"transport.queue_messages={10**20}"),
            "[transport] queue_messages must be an integer in 1..10000",
            id="queue-10**20",
        ),
        pytest.param(
            ("launch", "-n", "4", "--no-report", "--set", "training.rounds=nan"),
            "[training] rounds must be an integer in 1..10000000, got nan",
            id="rounds-nan",
        ),
        pytest.param(
            (*LAUNCH, "--name", "../../../../elsewhere"), "[run] name must be one directory name under out_dir", id="name-traversal"
        ),
        pytest.param(
            (*LAUNCH, "--name", "x\ny"),
            "[run] name must not contain control characters (newline, tab, ...), got 'x\\ny'",
            id="name-newline",
        ),
        pytest.param((*LAUNCH, "--set", 'data.root="a\\nb"'), "[data] root must not contain control characters", id="root-newline"),
        pytest.param(
            (*LAUNCH, "--alpha", "1e-300", "--partition", "dirichlet"),
            "[data] alpha must be a number in [0.001, 1000], got 1e-300",
            id="alpha-1e-300",
        ),
        pytest.param(
            (*LAUNCH, "--set", "transport.address_template='tcp://my host:{port}'"),
            "[transport] address_template 'tcp://my host:{port}'",
            id="address-with-space",
        ),
        pytest.param(
            (*LAUNCH, "--set", "links.delay_ms=1e300"), "[links] delay_ms must be a number in [0, 60000], got 1e+300", id="delay-1e300"
        ),
        pytest.param(
            (*LAUNCH, "--set", "links.bandwidth_mbit=0.001"),
            "edge (0, 1): a model of at least 60840 bytes takes 487 s to arrive",
            id="bandwidth-too-slow-for-the-timeout",
        ),
        pytest.param(
            (*LAUNCH, "--set", "training.weight_decay=inf"),
            "[training] weight_decay must be a number in [0, 1], got inf",
            id="weight-decay-inf",
        ),
        pytest.param(
            ("node", "--log-level", "LOUD", "--id", "0"),
            "argument --log-level: 'LOUD' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
            id="node-log-level",
        ),
        pytest.param(("node", "--id", "\u00b2"), "--id '\u00b2': expected a node number", id="node-id-superscript"),
        pytest.param(
            ("simulate", "-n", "4", "-r", "2", "--name", "../escaped"),
            "[run] name must be one directory name under out_dir",
            id="simulate-name-traversal",
        ),
        pytest.param(("keys", "-n", "100000000", "--out", "keys"), "argument -n/--nodes: 100000000 is not in 1..10000", id="keys-n-1e8"),
        pytest.param(
            ("topology", "show", "ring", "-n", "100000000"), "argument -n/--nodes: 100000000 is not in 1..10000", id="topology-show-n-1e8"
        ),
        pytest.param(
            ("deploy", "k8s", "-n", "4", "--cpu", "1\nprivileged: true", "--out", "k8s"),
            "argument --cpu: the value must not contain control characters",
            id="deploy-cpu-newline",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    """Run from an empty directory (where runs/ would go) next to a FIFO: the refusal is one `gossip: error:` line
    naming the key or flag, exit 2, no traceback, and neither directory gains a file."""
    work = tmp_path / "work"
    work.mkdir()
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    r = run_gossip(*(a.replace("{fifo}", str(fifo)) for a in args), cwd=work, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gossip: error: "), r.stderr
    assert message.replace("{fifo}", str(fifo)) in lines[0]
    assert list(work.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["fifo.toml", "work"]
