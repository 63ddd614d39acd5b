"""``--with-package PATH``: the nodes' image is the gossip image plus the user's plug-in code, built from one rendered Dockerfile.

A plug-in rule or attack (``[aggregation] rule = "geomedian:GeoMedian"``) is imported by every node, and a
container sees only its image. So the deployment renders, beside its usual files, a Dockerfile ``FROM
${GOSSIP_IMAGE}`` that adds PATH, and the nodes run that image. What PATH may be, and how it is added:

================================================  ==========================================================
PATH                                              in the image
================================================  ==========================================================
a module file (``geomedian.py``)                  copied to ``/opt/gossip/plugins/`` (on ``PYTHONPATH``);
                                                  the rendered files carry a copy of it as the build context
a directory with ``pyproject.toml``/``setup.py``  ``pip install --no-deps --no-index --no-build-isolation``:
                                                  its dependencies must already be in the gossip image, and
                                                  it builds with the image's setuptools, offline
a package directory (has ``__init__.py``)         copied to ``/opt/gossip/plugins/<name>/``
any other directory                               its contents copied to ``/opt/gossip/plugins/``: the modules
                                                  in it import as they do with ``PYTHONPATH=PATH``
================================================  ==========================================================

A directory is its own build context (its ``.dockerignore`` applies); the Dockerfile lives with the rendered
files, outside it (``docker build -f``, compose's ``dockerfile``). The build imports every plug-in module the
config names, as the node user, so an image that lacks one fails to build rather than every node failing
to start. The image keeps the gossip image's user, read-only layout and entrypoint.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gossip.errors import UsageError

__all__ = ["PLUGINS_DIR", "UserPackage", "package_dockerfile", "package_image", "user_package"]

PLUGINS_DIR = "/opt/gossip/plugins"  # on the image's PYTHONPATH
PackageKind = Literal["module", "distribution", "package", "directory"]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class UserPackage:
    """PATH as given, resolved, and how it goes into the image."""

    path: Path  # absolute
    given: str  # as the user wrote it: what the rendered files' notes quote (they must not depend on this machine's layout)
    kind: PackageKind
    name: str  # the module, package or directory name: part of the image's name

    @property
    def module_text(self) -> str:
        """A module file's text, copied beside the Dockerfile (the build context of a single file)."""
        return self.path.read_text(encoding="utf-8")

    def context(self, dockerfile_dir: Path) -> Path:
        """The build context: the directory itself, or for a module file the rendered directory holding its copy."""
        return dockerfile_dir if self.kind == "module" else self.path

    def dockerfile_from_context(self, dockerfile_dir: Path) -> str:
        """The Dockerfile's path relative to the build context, as ``docker build -f`` and compose's ``dockerfile`` take it."""
        return Path(os.path.relpath(dockerfile_dir.resolve() / "Dockerfile", self.context(dockerfile_dir).resolve())).as_posix()


def user_package(text: str) -> UserPackage:
    """``--with-package PATH`` checked: an existing module file or directory, or one line saying what is wrong."""
    path = Path(text).expanduser()
    if not path.exists():
        raise UsageError(f"--with-package {text}: no such file or directory")
    path = path.resolve()
    if path.is_file():
        if path.suffix != ".py" or not _IDENT.fullmatch(path.stem):
            raise UsageError(f"--with-package {text}: a single file must be a Python module named like one (e.g. rules.py)")
        try:
            path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--with-package {text}: cannot read it as UTF-8 text: {exc}") from None
        return UserPackage(path, text, "module", path.stem)
    if not path.is_dir():
        raise UsageError(f"--with-package {text}: not a directory or a module file")
    if (path / "pyproject.toml").is_file() or (path / "setup.py").is_file():
        return UserPackage(path, text, "distribution", path.name)
    if (path / "__init__.py").is_file():
        if not _IDENT.fullmatch(path.name):
            raise UsageError(f"--with-package {text}: a package directory must be named like a Python package")
        return UserPackage(path, text, "package", path.name)
    return UserPackage(path, text, "directory", path.name)


def package_image(image: str, package: UserPackage) -> str:
    """The nodes' image name: the gossip image's repository with the package's name added, same tag (``gossip-geomedian:latest``)."""
    repository, tag = image, "latest"
    slash = image.rfind("/")
    if ":" in image[slash + 1 :]:
        repository, _, tag = image.rpartition(":")
    suffix = re.sub(r"[^a-z0-9]+", "-", package.name.lower()).strip("-") or "package"
    return f"{repository}-{suffix}:{tag}"


def package_dockerfile(package: UserPackage, gossip_image: str, plugin_modules: tuple[str, ...], header: str) -> str:
    """The Dockerfile that adds ``package`` to the gossip image and imports the config's plug-in modules once, as the node user."""
    if package.kind == "module":
        add = [f"COPY {package.path.name} {PLUGINS_DIR}/{package.path.name}"]
    elif package.kind == "package":
        add = [f"COPY . {PLUGINS_DIR}/{package.name}/"]
    elif package.kind == "directory":
        add = [f"COPY . {PLUGINS_DIR}/"]
    else:
        add = [
            "COPY . /tmp/package/",
            "RUN /opt/gossip/bin/pip install -q --no-deps --no-index --no-build-isolation /tmp/package && rm -rf /tmp/package",
        ]
    lines = [
        *(f"# {line}".rstrip() for line in header.splitlines()),
        f"ARG GOSSIP_IMAGE={gossip_image}",
        "FROM ${GOSSIP_IMAGE}",
        "USER root",
        f"RUN mkdir -p {PLUGINS_DIR}",
        *add,
        f"RUN python -m compileall -q {PLUGINS_DIR}",
        f"ENV PYTHONPATH={PLUGINS_DIR}",
        "USER 10001:10001",
    ]
    if plugin_modules:  # what every node will import: a build that cannot is refused here
        lines.append(f"RUN python -c {_quoted('; '.join(f'import {m}' for m in plugin_modules))}")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
