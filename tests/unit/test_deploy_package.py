"""``gossip deploy compose|k8s --with-package PATH``: what each kind of PATH becomes in the rendered Dockerfile, where
compose builds it from, the image the nodes run, and the one-line refusals of a PATH that cannot be added."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import yaml

from gossip import cli
from tests.conftest import REPO

GEOMEDIAN = REPO / "examples" / "geomedian.py"
RUN = ["-t", "ring", "-n", "4", "-r", "5"]


def _deploy(engine: str, out: Path, package: Path | str, *extra: str) -> None:
    assert cli.main(["deploy", engine, "-o", str(out), *RUN, "--with-package", str(package), *extra]) == 0


def test_a_module_file_is_copied_beside_the_dockerfile_that_adds_it_and_imports_the_configs_plug_in(tmp_path: Path) -> None:
    """A single module: its copy and the Dockerfile are the build context; the image puts it on PYTHONPATH, compiles
    it, and the build imports the module the config's rule names, as the node user."""
    out = tmp_path / "c"
    _deploy("compose", out, GEOMEDIAN, "--set", "aggregation.rule=geomedian:GeoMedian")
    package = out / "deploy" / "compose" / "package"
    assert (package / "geomedian.py").read_text() == GEOMEDIAN.read_text()
    dockerfile = (package / "Dockerfile").read_text().splitlines()
    body = [line for line in dockerfile if not line.startswith("#")]
    assert body == [
        "ARG GOSSIP_IMAGE=gossip:latest",
        "FROM ${GOSSIP_IMAGE}",
        "USER root",
        "RUN mkdir -p /opt/gossip/plugins",
        "COPY geomedian.py /opt/gossip/plugins/geomedian.py",
        "RUN python -m compileall -q /opt/gossip/plugins",
        "ENV PYTHONPATH=/opt/gossip/plugins",
        "USER 10001:10001",
        'RUN python -c "import geomedian"',
    ]
    node = yaml.safe_load((out / "docker-compose.yml").read_text())["services"]["node-0"]
    assert node["image"] == "${GOSSIP_PACKAGE_IMAGE:-gossip-geomedian:latest}"
    assert node["build"] == {
        "context": "./deploy/compose/package",
        "dockerfile": "Dockerfile",
        "args": {"GOSSIP_IMAGE": "${GOSSIP_IMAGE:-gossip:latest}"},
    }


def test_a_directory_is_its_own_build_context_and_the_dockerfile_is_found_from_it(tmp_path: Path) -> None:
    """A package directory (``__init__.py``) is the build context, copied under its name; compose's relative
    ``dockerfile`` leads from that context to the rendered Dockerfile, as compose resolves it."""
    lab = tmp_path / "mylab"
    lab.mkdir()
    (lab / "__init__.py").write_text("")
    out = tmp_path / "c"
    _deploy("compose", out, lab)
    node = yaml.safe_load((out / "docker-compose.yml").read_text())["services"]["node-0"]
    context = (out / node["build"]["context"]).resolve()
    assert context == lab
    assert (context / node["build"]["dockerfile"]).resolve() == (out / "deploy" / "compose" / "package" / "Dockerfile").resolve()
    assert "COPY . /opt/gossip/plugins/mylab/" in (out / "deploy" / "compose" / "package" / "Dockerfile").read_text()
    assert node["image"] == "${GOSSIP_PACKAGE_IMAGE:-gossip-mylab:latest}"


@pytest.mark.parametrize("marker", ["pyproject.toml", "setup.py"])
def test_a_directory_with_a_build_file_is_pip_installed_offline_without_its_dependencies(tmp_path: Path, marker: str) -> None:
    """A distribution is installed by pip from the build context: no index, no dependencies, the image's setuptools."""
    dist = tmp_path / "lab-rules"
    dist.mkdir()
    (dist / marker).write_text("")
    out = tmp_path / "c"
    _deploy("compose", out, dist)
    text = (out / "deploy" / "compose" / "package" / "Dockerfile").read_text()
    assert "COPY . /tmp/package/" in text
    assert "RUN /opt/gossip/bin/pip install -q --no-deps --no-index --no-build-isolation /tmp/package && rm -rf /tmp/package" in text


def test_k8s_pods_run_the_package_image_and_the_manifests_say_how_to_build_it(tmp_path: Path) -> None:
    """The StatefulSet names the package image (``--image``'s repository plus the package, same tag); the
    kustomization's header and the Dockerfile hold the ``docker build`` command, whose paths work from the manifests' directory."""
    out = tmp_path / "k"
    _deploy("k8s", out, GEOMEDIAN, "--image", "registry.local:5000/gossip:1.2", "--set", "aggregation.rule=geomedian:GeoMedian")
    pod = yaml.safe_load((out / "statefulset.yaml").read_text())["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.local:5000/gossip-geomedian:1.2"
    build = next(line for line in (out / "kustomization.yaml").read_text().splitlines() if "docker build" in line)
    argv = shlex.split(build.lstrip("# "))
    assert argv == [
        "docker", "build", "-f", "package/Dockerfile", "--build-arg", "GOSSIP_IMAGE=registry.local:5000/gossip:1.2",
        "-t", "registry.local:5000/gossip-geomedian:1.2", "package",
    ]  # fmt: skip
    assert (out / argv[3]).is_file() and (out / argv[-1] / "geomedian.py").is_file()
    assert build in (out / "package" / "Dockerfile").read_text()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.py", "no such file or directory"),
        (lambda tmp: _fifo(tmp / "pipe"), "not a directory or a module file"),
        (lambda tmp: _file(tmp / "rules.txt"), "a single file must be a Python module named like one (e.g. rules.py)"),
        (lambda tmp: _file(tmp / "my-rules.py"), "a single file must be a Python module named like one (e.g. rules.py)"),
    ],
    ids=["missing", "not-a-file-or-directory", "not-a-module", "not-importable-name"],
)
def test_a_path_that_cannot_be_added_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, message: str
) -> None:
    """``--with-package`` to something missing, to neither a file nor a directory, or to a file no node could
    import: ``gossip: error: --with-package PATH: ...``, exit 2, no output directory."""
    assert callable(make)
    path = make(tmp_path)
    for engine in ("compose", "k8s"):
        out = tmp_path / engine
        assert cli.main(["deploy", engine, "-o", str(out), *RUN, "--with-package", str(path)]) == 2
        assert capsys.readouterr().err.strip() == f"gossip: error: --with-package {path}: {message}"
        assert not out.exists()


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _file(path: Path) -> Path:
    path.write_text("x = 1\n")
    return path
