"""Bad topology and dataset files through the real console script: one line, exit 2, nothing written.

A representative set per layer (the unit tests in tests/unit/test_topology_input.py and
test_dataset_input.py cover each defect): each used to end in a traceback, a MemoryError or a run that
scored 0.0000. The command runs in an empty working directory, so "nothing written" is checked as "the
directory holds only the fixture afterwards" (a launch would have created runs/ there).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from gossip.data.datasets import MNIST_FILES
from gossip.data.files import write_idx
from tests.conftest import run_gossip

pytestmark = [pytest.mark.e2e]


def fixture(tmp_path: Path, kind: str) -> Path:
    """Write the bad input ``kind`` under tmp_path/input and return its path."""
    where = tmp_path / "input"
    where.mkdir()
    if kind == "torus-huge":  # a spec, no file
        path = where
    elif kind == "deep-json":
        path = where / "deep.json"
        path.write_text('{"gossip_topology": 1, "n": 2, "edges": ' + "[" * 100_000 + "]" * 100_000 + "}")
    elif kind == "30-digit-n":
        path = where / "big.json"
        path.write_text('{"gossip_topology": 1, "n": 123456789012345678901234567890, "edges": [[0, 1]]}')
    elif kind == "deep-edge-data":
        path = where / "deep.edgelist"
        path.write_text("0 1 {'a': " + "-" * 5000 + "1}\n1 2\n")
    elif kind == "entity-graphml":
        path = where / "lol.graphml"
        path.write_text(
            '<?xml version="1.0"?><!DOCTYPE g [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            '<graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph edgedefault="undirected"><node id="&b;"/></graph></graphml>'
        )
    elif kind == "fifo":
        path = where / "pipe.json"
        os.mkfifo(path)
    elif kind in ("mnist-no-test", "mnist-gzip-bomb"):
        rng = np.random.default_rng(0)
        arrays = (
            rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, 20).astype(np.uint8),
            np.zeros((0 if kind == "mnist-no-test" else 5, 28, 28), dtype=np.uint8),
            np.zeros(0 if kind == "mnist-no-test" else 5, dtype=np.uint8),
        )
        for name, array in zip(MNIST_FILES, arrays, strict=True):
            write_idx(where / name, array)
        if kind == "mnist-gzip-bomb":  # the header says 20 images; the stream goes on for 512 MiB (about 0.5 MB gzipped)
            (where / MNIST_FILES[0]).unlink()
            deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            parts = [deflate.compress(bytes([0, 0, 8, 3]) + np.asarray((20, 28, 28), dtype=">u4").tobytes())]
            parts += [deflate.compress(bytes(1 << 20)) for _ in range(512)]
            (where / (MNIST_FILES[0] + ".gz")).write_bytes(b"".join([*parts, deflate.flush()]))
        path = where
    else:
        raise AssertionError(kind)
    return path


def assert_one_line_exit_2_nothing_written(r: object, tmp_path: Path, expected: str) -> None:
    stderr = r.stderr  # type: ignore[attr-defined]
    assert r.returncode == 2, stderr  # type: ignore[attr-defined]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gossip: error: ") and expected in lines[0], stderr
    assert len(lines[0]) < 400 and "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("deep-json", "nested 100001 deep, deeper than 32"),
        ("30-digit-n", '"n" is a 30-digit number; gossip runs at most 10,000 nodes'),
        ("deep-edge-data", "line 1: edge data"),
        ("entity-graphml", "declares an XML entity"),
        ("fifo", "is not a regular file"),
        ("torus-huge", "rows must be in 1..10,000, got 100,000"),
    ],
)
def test_topology_show_refuses_a_bad_topology_file_in_one_line(tmp_path: Path, kind: str, expected: str) -> None:
    """`gossip topology show FILE`: a JSON nested 100 000 deep (was RecursionError), a 30-digit "n" (was
    MemoryError), a 5000-sign edge-data literal (was RecursionError), an entity bomb, a FIFO (would block);
    and the spec torus:100000x100000 (built a 10^10-node grid)."""
    path = fixture(tmp_path, kind)
    spec = "torus:100000x100000" if kind == "torus-huge" else str(path)

    r = run_gossip("topology", "show", spec, "-o", str(tmp_path / "t.png"), cwd=tmp_path, timeout=100)

    assert_one_line_exit_2_nothing_written(r, tmp_path, expected)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("-t", "{input}/deep.json"), "nested 100001 deep"),
        (("-n", "3", "-t", "ring", "--dataset", "mnist", "--data-root", "{input}"), "t10k-images-idx3-ubyte holds no images"),
        (("-n", "3", "-t", "ring", "--dataset", "mnist", "--data-root", "{input}"), "has more bytes than its header declares"),
    ],
    ids=["deep-json", "mnist-no-test", "mnist-gzip-bomb"],
)
def test_launch_refuses_bad_input_files_before_writing_a_run(
    tmp_path: Path, request: pytest.FixtureRequest, args: tuple[str, ...], expected: str
) -> None:
    """`gossip launch` with a bad topology file or dataset: one line, exit 2, no run directory. An MNIST
    directory without test images used to train and report accuracy 0.0000; a gzip that inflates past
    its header used to be inflated whole (4.4 GB peak for a 2 GiB stream)."""
    fixture(tmp_path, request.node.callspec.id)
    argv = [a.replace("{input}", str(tmp_path / "input")) for a in args]

    r = run_gossip("launch", *argv, "-r", "1", "--model", "logreg", "--no-progress", cwd=tmp_path, timeout=240)

    assert_one_line_exit_2_nothing_written(r, tmp_path, expected)
