"""Does a node process import the run's plug-ins? Asked once, of a fresh interpreter, before anything starts.

Why a fresh interpreter: the launcher imported the plug-in with its own path, but a node is another
process, and its path starts elsewhere. The ``gossip`` console script puts no working directory on the
launcher's path; a node does: a spawned one is ``python -m gossip node``, and the fork server that forks the
others imports the plug-ins at its start as ``python -c``. A module of the same name in the working directory
(an older copy, another project's file) shadows the plug-in in every node, which then exits 2 after the run
directory was written and its neighbours started. One interpreter, started like the nodes (``-c``: the
working directory first) with exactly their environment (:func:`gossip.run.launch.node_env`), looks up
where it would find each plug-in named as ``module:Attribute`` (``importlib.util.find_spec``, which does not
run the module). The same file the launcher imported: nothing more to ask, since the launcher looked the
attribute up in it. Another file, or none: the interpreter imports it and looks the attribute up, and what
fails is the refusal's reason. Only a run whose config names such plug-ins pays, a tenth of a second when the
nodes would find the same files (an import of torch when they would not).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence

from gossip import plugins
from gossip.config import RunConfig
from gossip.errors import ConfigError

__all__ = ["check_node_imports", "plugin_names"]

TIMEOUT_S = 120.0  # a plug-in that imports torch on a loaded machine takes seconds; one that hangs is named

# Run in the node's interpreter: gossip is not imported, nor a plug-in the nodes would find where the launcher did.
_PROBE = """
import importlib, importlib.util, json, os, sys
failed = []
for key, name, launcher_file in json.loads(sys.argv[1]):
    module, _, attribute = name.partition(":")
    try:
        spec = importlib.util.find_spec(module)
    except BaseException:
        spec = None
    origin = getattr(spec, "origin", None)
    if origin and launcher_file and os.path.realpath(origin) == os.path.realpath(launcher_file):
        continue
    found = None
    try:
        target = importlib.import_module(module)
        found = getattr(target, "__file__", None)
        for part in attribute.split("."):
            target = getattr(target, part)
    except BaseException as exc:
        failed.append([key, name, f"{type(exc).__name__}: {exc}", found])
print(json.dumps(failed))
"""


def plugin_names(cfg: RunConfig) -> list[tuple[plugins.PluginKind, str]]:
    """The run's plug-ins written as import paths, with their kind: what the nodes will import."""
    return [(kind, name) for kind, name in cfg.plugins() if plugins.is_import_path(name)]


def check_node_imports(cfg: RunConfig, env: Mapping[str, str]) -> None:
    """Refuse, in one line, a plug-in the launcher imports but a node process would not; nothing when none is named.

    The launcher's own import runs first (its messages say what is wrong with the plug-in itself); then one
    fresh interpreter with ``env`` imports them all.
    """
    named = plugin_names(cfg)
    if not named:
        return
    for kind, name in named:
        plugins.load(kind, name)
    files = [getattr(sys.modules.get(name.partition(":")[0]), "__file__", None) for _, name in named]  # imported by load()
    argv = [sys.executable, "-c", _PROBE, json.dumps([[kind.key, name, file] for (kind, name), file in zip(named, files, strict=True)])]
    try:
        done = subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"importing the plug-ins {', '.join(repr(n) for _, n in named)} in a node's environment took over {TIMEOUT_S:g} s; "
            "check what their modules do at import"
        ) from None
    failed = _failures(done)
    if failed:
        raise ConfigError(_message(named, failed[0]))


def _failures(done: subprocess.CompletedProcess[str]) -> list[Sequence[str | None]]:
    """``[key, name, error, file]`` per plug-in that failed in the node's interpreter."""
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:  # the interpreter itself failed (a broken sitecustomize, say): so would every node
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"a node's Python interpreter fails before it imports the plug-ins: {tail}")
    parsed: list[Sequence[str | None]] = json.loads(lines[-1])
    return parsed


def _message(named: Sequence[tuple[plugins.PluginKind, str]], failure: Sequence[str | None]) -> str:
    key, name, error, found = failure
    kind = next((k for k, n in named if k.key == key and n == name), named[0][0])
    where = f" (it finds {str(name).partition(':')[0]!r} at {found})" if found else ""
    return (
        f"{kind.where} = {name!r}: the launcher imports it but a node process does not: {error}{where}; nodes import from their working directory first: run gossip from a directory without "
        "a module of that name, with the plug-in's package installed or its directory on PYTHONPATH"
    )
