"""``gossip deploy compose --with-package``: the nodes run the gossip image plus the user's plug-in, built by real
docker-compose from the rendered Dockerfile, and a run whose rule is that plug-in trains to the end."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, run_gossip
from tests.docker.test_compose import IMAGE, _files_of, _inspect, _run, images  # noqa: F401 (images: the fixture, reused)

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.e2e]

ROUNDS = 5
NODES = [f"node-{i}" for i in range(4)]


# The fixture's image builds are cached after the first docker test; cold, they take minutes (see test_compose).
@pytest.mark.timeout(1800)
def test_a_compose_run_whose_rule_is_a_user_module_trains_in_the_image_that_adds_it(images: dict[str, float], tmp_path: Path) -> None:  # noqa: F811
    """examples/geomedian.py as ``--with-package``: docker-compose builds the nodes' image from the rendered
    Dockerfile on top of the gossip image (the build itself imports ``geomedian`` as the node user); the gossip
    image alone cannot import it, the built one can; and 4 nodes whose [aggregation] rule is
    ``geomedian:GeoMedian`` run every round and exit 0 with a finished summary each."""
    out = tmp_path / "project"
    rendered = run_gossip(
        "deploy", "compose", "-o", str(out), "-t", "ring", "-n", "4", "-r", str(ROUNDS), "--hold", "0",
        "--with-package", str(REPO / "examples" / "geomedian.py"), "--set", "aggregation.rule=geomedian:GeoMedian",
        timeout=120,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    assert (out / "deploy" / "compose" / "package" / "geomedian.py").read_text() == (REPO / "examples" / "geomedian.py").read_text()

    name = f"gossippkg{os.getpid()}"
    package_image = f"gossip-geomedian:test{os.getpid()}"
    env = dict(os.environ, GOSSIP_IMAGE=IMAGE, GOSSIP_PACKAGE_IMAGE=package_image)
    compose = ["docker-compose", "-p", name, "-f", str(out / "docker-compose.yml")]
    try:
        _run([*compose, "build", "node-0"], env=env, timeout=600)
        probe = ["python", "-c", "import geomedian; print(geomedian.GeoMedian(iterations=3).iterations)"]
        assert _run(["docker", "run", "--rm", "--entrypoint", probe[0], IMAGE, *probe[1:]], check=False).returncode != 0
        assert _run(["docker", "run", "--rm", "--read-only", "--entrypoint", probe[0], package_image, *probe[1:]]).stdout.strip() == "3"

        _run([*compose, "up", "-d", "--no-build", *NODES], env=env, timeout=300)
        cids = {s: _run([*compose, "ps", "-q", s], env=env).stdout.strip() for s in NODES}
        states: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            states = {s: _inspect(cid)["State"] for s, cid in cids.items()}
            if all(st["Status"] == "exited" for st in states.values()):
                break
            time.sleep(2)
        logs = _run([*compose, "logs", "--no-color", "--tail", "10", *NODES], env=env, check=False).stdout
        assert {s: (st["Status"], st["ExitCode"]) for s, st in states.items()} == dict.fromkeys(NODES, ("exited", 0)), logs
        for i, service in enumerate(NODES):
            assert _inspect(cids[service])["Config"]["Image"] == package_image
            summary = json.loads(_files_of(cids[service], "/var/lib/gossip/run/nodes")[f"node-{i}.json"])
            assert (summary["status"], summary["rounds_completed"]) == ("finished", ROUNDS), summary
    finally:
        _run([*compose, "down", "-v", "--timeout", "10"], env=env, check=False, timeout=300)
        _run(["docker", "rmi", "-f", package_image], check=False)
