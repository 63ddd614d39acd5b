"""The shipped docker-compose.yml, for real: build the image, bring the project up, train to the end, check from outside.

No registry can be reached here, so the images are built locally and cached by Docker between runs:
the base from a Debian rootfs (deploy/docker/debian-base.sh: debootstrap + docker import, kept once it
exists), the gossip image from deploy/docker/Dockerfile with the local CPU torch wheel as its wheelhouse
and the host's CA bundle as its extra CA, and Prometheus from Debian's package
(deploy/compose/docker-compose.test.yml swaps it in; Grafana stays out through its profile).
Docker missing is a failure that says how to install it, never a skip.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from gossip.learn.flat import model_hash
from tests.conftest import REPO, free_port

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.e2e]

BASE_IMAGE = "gossip-base:bookworm"
IMAGE = "gossip:test"
PROMETHEUS_IMAGE = "gossip-prometheus:debian"
TORCH_WHEEL = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
INSTALL_HINT = "run `bash deploy/system-deps.sh` (installs docker.io, docker-compose and debootstrap, and starts dockerd)"


def _run(
    args: list[str], *, timeout: float = 900, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _require_docker() -> None:
    for tool in ("docker", "docker-compose", "debootstrap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: {INSTALL_HINT}")
    if subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode != 0:
        pytest.fail(f"no Docker engine answers `docker info`: {INSTALL_HINT}")


def _find_torch_wheel() -> Path:
    """The CPU torch wheel pip uses on this machine (its find-links), so the image build never downloads torch."""
    dirs = [os.environ.get("PIP_FIND_LINKS", "")]
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60).stdout
    dirs += re.findall(r"find-links='([^']+)'", listed)
    dirs.append("/opt/wheels")
    for d in dirs:
        for part in d.split():
            path = Path(part.removeprefix("file://")) / TORCH_WHEEL
            if path.is_file():
                return path
    pytest.fail(f"{TORCH_WHEEL} not found in pip's find-links ({', '.join(d for d in dirs if d)}): the image needs a local CPU torch wheel")


def _build_context(tmp: Path) -> Path:
    """A copy of what the Dockerfile reads, plus the wheelhouse and the host's CA bundle: the checkout stays clean."""
    ctx = tmp / "context"
    ctx.mkdir()
    for name in ("pyproject.toml", "README.md", ".dockerignore"):
        shutil.copy2(REPO / name, ctx / name)
    shutil.copytree(REPO / "gossip", ctx / "gossip", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "deploy" / "docker", ctx / "deploy" / "docker", ignore=shutil.ignore_patterns("*.whl", "*.crt"))
    wheel = _find_torch_wheel()
    try:
        os.link(wheel, ctx / "deploy" / "docker" / "wheels" / wheel.name)
    except OSError:
        shutil.copy2(wheel, ctx / "deploy" / "docker" / "wheels" / wheel.name)
    shutil.copy2(HOST_CA_BUNDLE, ctx / "deploy" / "docker" / "ca-certificates" / "host.crt")
    return ctx


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """Build (or find cached) the base, gossip and Prometheus images; returns seconds spent on each."""
    _require_docker()
    seconds: dict[str, float] = {}
    t = time.monotonic()
    _run(["bash", str(REPO / "deploy" / "docker" / "debian-base.sh"), BASE_IMAGE], timeout=900)
    seconds["base"] = time.monotonic() - t
    ctx = _build_context(tmp_path_factory.mktemp("docker"))
    t = time.monotonic()
    _run(
        [
            "docker",
            "build",
            "-q",
            "-f",
            str(ctx / "deploy" / "docker" / "Dockerfile"),
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
            "-t",
            IMAGE,
            str(ctx),
        ]
    )
    seconds["gossip"] = time.monotonic() - t
    t = time.monotonic()
    compose_dir = REPO / "deploy" / "compose"
    _run(
        [
            "docker",
            "build",
            "-q",
            "-f",
            str(compose_dir / "prometheus-debian.Dockerfile"),
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
            "-t",
            PROMETHEUS_IMAGE,
            str(compose_dir),
        ]
    )
    seconds["prometheus"] = time.monotonic() - t
    print(f"image builds: {', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())}")
    return seconds


class Project:
    """One compose project of the shipped file plus the test override, under a unique name."""

    def __init__(self, name: str, prometheus_port: int) -> None:
        self.name = name
        self.prometheus_port = prometheus_port
        self.env = dict(
            os.environ,
            GOSSIP_IMAGE=IMAGE,
            GOSSIP_BASE_IMAGE=BASE_IMAGE,
            GOSSIP_PROMETHEUS_IMAGE=PROMETHEUS_IMAGE,
            GOSSIP_PROMETHEUS_PORT=str(prometheus_port),
        )
        self.base = [
            "docker-compose",
            "--project-directory",
            str(REPO),
            "-p",
            name,
            "-f",
            str(REPO / "docker-compose.yml"),
            "-f",
            str(REPO / "deploy" / "compose" / "docker-compose.test.yml"),
        ]

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([*self.base, *args], timeout=timeout, env=self.env, check=check)

    def container(self, service: str) -> str:
        cid = self("ps", "-q", service).stdout.strip()
        assert cid, f"no container for {service}"
        return cid

    def services_created(self) -> list[str]:
        """Services of this project that have a container, whatever its state."""
        out = _run(
            [
                "docker",
                "ps",
                "-a",
                "--filter",
                f"label=com.docker.compose.project={self.name}",
                "--format",
                '{{.Label "com.docker.compose.service"}}',
            ]
        ).stdout
        return out.split()

    def prometheus(self, query: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.prometheus_port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]["result"]


def _inspect(cid: str) -> dict[str, Any]:
    return json.loads(_run(["docker", "inspect", cid]).stdout)[0]


def _files_of(cid: str, path: str) -> dict[str, bytes]:
    """Regular files under ``path`` in a (stopped) container, with its volumes: ``docker cp`` as a tar stream."""
    data = subprocess.run(["docker", "cp", f"{cid}:{path}", "-"], capture_output=True, timeout=120, check=True).stdout
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                out[Path(member.name).name] = extracted.read()
    return out


@pytest.fixture
def project() -> Iterator[Project]:
    p = Project(f"gossiptest{os.getpid()}", free_port())
    try:
        yield p
    finally:
        p("down", "-v", "--remove-orphans", "--timeout", "10", check=False, timeout=300)


# The global 300 s timeout covers fixtures too: a cold build (base rootfs + torch + dependencies, about
# 3 min on an idle 2-core machine) on a busy CI machine needs more. A warm run takes about a minute.
@pytest.mark.timeout(1800)
def test_compose_example_trains_to_the_end_and_prometheus_scrapes_every_node(images: dict[str, float], project: Project) -> None:
    """The shipped 4-node ring: every node exits 0 after the last round with its summary, model and checkpoint
    on the results volume; it ran as the non-root user on a read-only root with a passing HEALTHCHECK; it
    logged key=value round lines from its first round to its last (one a second between them); every node ends with the same merged model; and Prometheus scraped every node up to its final round."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    nodes = sorted((s for s in compose["services"] if s.startswith("node-")), key=lambda s: int(s.split("-")[1]))
    config = (REPO / "deploy" / "compose" / "gossip" / "config.toml").read_text()
    rounds = int(re.search(r"^rounds = (\d+)$", config, re.M).group(1))  # type: ignore[union-attr]
    assert "grafana" in compose["services"] and compose["services"]["grafana"]["profiles"] == ["grafana"]

    started = time.monotonic()
    project("up", "-d", "--no-build")
    assert sorted(project.services_created()) == sorted([*nodes, "prometheus"]), "Grafana must stay out without its profile"
    cids = {s: project.container(s) for s in nodes}
    deadline = time.monotonic() + 300
    states: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        states = {s: _inspect(cid)["State"] for s, cid in cids.items()}
        if all(st["Status"] == "exited" for st in states.values()):
            break
        time.sleep(2)
    logs = project("logs", "--no-color", "--tail", "15", *nodes, check=False).stdout
    assert all(st["Status"] == "exited" for st in states.values()), f"nodes still running after 300 s:\n{logs}"
    assert {s: st["ExitCode"] for s, st in states.items()} == dict.fromkeys(nodes, 0), logs
    print(f"compose run: {time.monotonic() - started:.0f} s from up to the last node's exit")

    hashes: dict[str, str] = {}
    for i, service in enumerate(nodes):
        info = _inspect(cids[service])
        assert info["Config"]["User"] == "10001:10001" and info["HostConfig"]["ReadonlyRootfs"] is True
        health = info["State"].get("Health") or {}
        assert any(check["ExitCode"] == 0 for check in health.get("Log", [])), f"{service}: no passing healthcheck: {health}"
        log = project("logs", "--no-color", service).stdout
        logged = [int(r) for r in re.findall(rf"gossip\.node node={i} round=(\d+) ", log)]
        assert logged and logged[0] == 0 and logged[-1] == rounds - 1 and logged == sorted(set(logged)), log[-2000:]

        files = _files_of(cids[service], "/var/lib/gossip/run/nodes")
        summary = json.loads(files[f"node-{i}.json"])
        assert summary["status"] == "finished" and summary["rounds_completed"] == rounds
        vector = np.load(io.BytesIO(files[f"node-{i}.npy"]), allow_pickle=False)
        assert model_hash(torch.from_numpy(vector)) == summary["model_hash"]
        records = [json.loads(line) for line in files[f"node-{i}.jsonl"].decode().splitlines()]
        assert len(records) == rounds and all(r["missing"] == [] for r in records)
        assert f"node-{i}.ckpt.npz" in files
        hashes[service] = summary["model_hash"]
        assert summary["merge"]["members"] == list(range(len(nodes))), summary.get("merge")

    # the shipped example ends with the single global merge: every node holds the same model
    assert len(set(hashes.values())) == 1, hashes

    up = {r["metric"]["instance"]: float(r["value"][1]) for r in project.prometheus('max_over_time(up{job="gossip"}[1h])')}
    assert up == {f"node-{i}:9100": 1.0 for i in range(len(nodes))}
    final = {
        r["metric"]["node"]: float(r["value"][1]) for r in project.prometheus("max by (node) (max_over_time(gossip_rounds_total[1h]))")
    }
    assert final == {str(i): float(rounds) for i in range(len(nodes))}


def test_the_image_carries_mnist1d_so_a_node_reads_it_instead_of_making_it(images: dict[str, float]) -> None:
    """MNIST-1D is generated when the image is built, into $XDG_CACHE_HOME (/opt/gossip/cache): a node on a
    read-only root, as the non-root user, loads it from there without importing mnist1d at all."""
    probe = (
        "import sys; from gossip.data.datasets import load_dataset, mnist1d_cache_path; d = load_dataset('mnist1d'); "
        "print(mnist1d_cache_path(), 'mnist1d' in sys.modules, d.x_train.shape[0])"
    )
    r = _run(["docker", "run", "--rm", "--read-only", "--entrypoint", "python", IMAGE, "-c", probe], timeout=120)
    path, imported, samples = r.stdout.split()
    assert path.startswith("/opt/gossip/cache/gossip/mnist1d-") and path.endswith(".npz"), r.stdout
    assert (imported, samples) == ("False", "4000"), r.stdout
