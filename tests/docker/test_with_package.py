"""``gossip deploy compose --with-package``: the nodes run the gossip image plus the user's plug-in, built by real
docker-compose from the rendered Dockerfile, and a run whose rule is that plug-in trains to the end."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

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


DIST_PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "labdist"
version = "0.1"

[tool.setuptools]
py-modules = ["labdist"]
"""
DIST_MODULE = """
class Mean:
    def aggregate(self, local, received, weights):
        return (local + sum(received.values())) / (1 + len(received))
"""


def test_the_k8s_build_command_pip_installs_a_distribution_offline_into_the_pods_image(images: dict[str, float], tmp_path: Path) -> None:  # noqa: F811
    """A directory with a pyproject.toml: the ``docker build`` line ``gossip deploy k8s`` writes into the
    kustomization's header, run as written from the manifests' directory, pip-installs it with the image's own
    setuptools and no index, and tags the image the StatefulSet names; in it the node user imports the rule."""
    dist = tmp_path / "labdist"
    dist.mkdir()
    (dist / "pyproject.toml").write_text(DIST_PYPROJECT)
    (dist / "labdist.py").write_text(DIST_MODULE)
    out = tmp_path / "k8s"
    rendered = run_gossip(
        "deploy", "k8s", "-o", str(out), "-t", "ring", "-n", "3", "--image", IMAGE, "--with-package", str(dist),
        "--set", "aggregation.rule=labdist:Mean", timeout=120,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    build = next(line for line in (out / "kustomization.yaml").read_text().splitlines() if "docker build" in line)
    argv = shlex.split(build.lstrip("# "))
    image = argv[argv.index("-t") + 1]
    assert yaml.safe_load((out / "statefulset.yaml").read_text())["spec"]["template"]["spec"]["containers"][0]["image"] == image
    try:
        built = subprocess.run(argv, cwd=out, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        probe = "import labdist, importlib.metadata as m; print(m.version('labdist'), labdist.Mean.__name__)"
        r = _run(["docker", "run", "--rm", "--read-only", "--entrypoint", "python", image, "-c", probe])
        assert r.stdout.split() == ["0.1", "Mean"]
    finally:
        _run(["docker", "rmi", "-f", image], check=False)
