"""Plug-ins: a rule, an attack, a model, a loss, a metric, a dataset or a partition named by import path (``mylab.rules:GeoMedian``) or by entry point.

A config key that takes a shipped name (``[aggregation] rule``, ``[byzantine] attack``, ``[model] name``,
``[training] loss``, ``[training] metric``, ``[data] dataset``, ``[data] partition``) also takes

- ``module.path:Attribute``: the attribute is imported from the module (a class, or any callable that returns
  the plug-in), and called with the section's ``options`` as keyword arguments;
- a name a package registers under the kind's entry point group (``gossip.aggregators``, ``gossip.attacks``,
  ``gossip.models``, ``gossip.losses``, ``gossip.metrics``, ``gossip.datasets``, ``gossip.partitions``), which
  points at the same kind of callable.

A dataset loader and a partition are called by :mod:`gossip.data` itself with their options (see
:mod:`gossip.data.source`); :func:`load` finds them the same way.

Every failure is one :class:`~gossip.errors.ConfigError` line naming the key, the plug-in and what to do: an
import path that does not import, no such attribute, not callable, options its constructor refuses, an object
without the contract's methods. ``gossip launch`` resolves and builds each plug-in before it writes anything,
and every ``gossip node`` builds it again at start-up, so the check and the use run the same code.

Where a plug-in's module is found: on the Python path of the process that imports it, as for any import. A
console script does not put the current directory on it, so a module beside the config needs
``PYTHONPATH=.`` (or an installed package). ``gossip launch`` gives its nodes its own path (the fork server
inherits it, spawned nodes get it as ``PYTHONPATH``), after their working directory, which comes first on a node's
path: ``gossip launch`` asks a fresh interpreter with a node's environment where it finds the plug-ins before it
writes anything (:mod:`gossip.run.nodeimports`), so a module of the same name there is refused, not imported by every node.

Plug-ins are code the user runs with the user's rights. They come only from the user's own config (file,
environment, flags), never from a message: nothing a peer sends names code to import.
"""

from __future__ import annotations

import difflib
import importlib
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gossip.errors import ConfigError

__all__ = [
    "AGGREGATOR",
    "ATTACK",
    "DATASET",
    "LOSS",
    "METRIC",
    "MODEL",
    "PARTITION",
    "PluginKind",
    "build",
    "check_name",
    "is_import_path",
    "load",
    "modules",
    "parse_options",
]


@dataclass(frozen=True)
class PluginKind:
    """One kind of plug-in: the config key that names it, its entry point group, and the methods its contract requires."""

    key: str  # "aggregation.rule"
    group: str  # entry point group, e.g. "gossip.aggregators"
    methods: tuple[str, ...]  # what an instance must have (the Protocol's methods)
    contract: str  # where the Protocol is documented, for messages
    options_key: str = "options"  # the section's key that holds the plug-in's keyword arguments

    @property
    def where(self) -> str:
        """``[aggregation] rule``: the key as the config's messages write it."""
        section, _, name = self.key.partition(".")
        return f"[{section}] {name}"

    @property
    def options_where(self) -> str:
        """``[aggregation] options``: where the plug-in's keyword arguments are written."""
        return f"[{self.key.partition('.')[0]}] {self.options_key}"


AGGREGATOR = PluginKind("aggregation.rule", "gossip.aggregators", ("aggregate",), "gossip.algorithms.Aggregator")
ATTACK = PluginKind("byzantine.attack", "gossip.attacks", ("payloads",), "gossip.algorithms.attacks.Attack")
# What a node learns with: built by gossip.learn.models / gossip.learn.objectives, which check their own contracts.
MODEL = PluginKind("model.name", "gossip.models", (), "gossip.learn.models.ModelFactory")
LOSS = PluginKind("training.loss", "gossip.losses", ("__call__",), "gossip.learn.objectives.LossFactory", "loss_options")
METRIC = PluginKind("training.metric", "gossip.metrics", ("__call__",), "gossip.learn.objectives.MetricFactory", "metric_options")
# Data plug-ins are functions the data layer calls itself (a loader, a split), not factories of objects with methods.
DATASET = PluginKind("data.dataset", "gossip.datasets", (), "gossip.data.DatasetLoader")
PARTITION = PluginKind("data.partition", "gossip.partitions", (), "gossip.data.Partition", "partition_options")

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_IMPORT_PATH = re.compile(rf"{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*")
_OPTION_KEY = re.compile(_IDENT)


def is_import_path(name: str) -> bool:
    """Whether ``name`` is written as ``module:Attribute`` (a plug-in), not as a registered name."""
    return ":" in name


def modules(names: Iterable[str]) -> tuple[str, ...]:
    """The modules of the names written as import paths (``mylab.rules:GeoMedian`` → ``mylab.rules``), once each."""
    return tuple(dict.fromkeys(n.partition(":")[0] for n in names if is_import_path(n)))


def check_name(kind: PluginKind, name: str, shipped: Iterable[str]) -> None:
    """Refuse ``name`` unless it is shipped, a well-formed import path, or a registered entry point; imports nothing.

    Config loading runs this: an import path's module is imported later, by :func:`load` (the launcher's
    check and the node's build), so loading a config never runs a user's code.
    """
    known = tuple(shipped)
    if name in known:
        return
    if is_import_path(name):
        if not _IMPORT_PATH.fullmatch(name):
            raise ConfigError(f"{kind.where} = {name!r} is not an import path; write it as 'package.module:Attribute'")
        return
    if _entry_point(kind, name) is not None:
        return
    close = difflib.get_close_matches(name, known, n=1)
    raise ConfigError(
        f"{kind.where} = {name!r} is not one of {', '.join(map(repr, known))} "
        f"(or a plug-in as 'module:Attribute', or a name registered under entry point group {kind.group!r})"
        + (f"; did you mean {close[0]!r}?" if close else "")
    )


def load(kind: PluginKind, name: str) -> Callable[..., object]:
    """The callable ``name`` (an import path or an entry point name) stands for; one line naming what failed."""
    if is_import_path(name):
        module_name, _, attribute = name.partition(":")
        try:
            target: object = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"{kind.where} = {name!r}: no module named {exc.name!r} on the Python path; "
                "install the plug-in's package or add its directory to PYTHONPATH (e.g. PYTHONPATH=. gossip launch ...)"
            ) from None
        except Exception as exc:  # the user's module raised while importing: name it, keep it one line
            raise ConfigError(f"{kind.where} = {name!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
        for part in attribute.split("."):
            if not hasattr(target, part):
                raise ConfigError(f"{kind.where} = {name!r}: {module_name!r} has no attribute {attribute!r}")
            target = getattr(target, part)
    else:
        entry = _entry_point(kind, name)
        if entry is None:
            raise ConfigError(f"{kind.where} = {name!r}: no entry point of that name in group {kind.group!r}")
        try:
            target = entry.load()
        except Exception as exc:
            raise ConfigError(f"{kind.where} = {name!r}: entry point {entry.value!r} failed to load: {type(exc).__name__}: {exc}") from None
    if not callable(target):
        raise ConfigError(
            f"{kind.where} = {name!r} is not a class or function that builds a plug-in (its type is {type(target).__name__!r})"
        )
    return target


def build(kind: PluginKind, name: str, options: Mapping[str, Any]) -> object:
    """Load ``name``, call it with ``options`` as keyword arguments, and check the result has the contract's methods."""
    factory = load(kind, name)
    try:
        plugin = factory(**options)
    except TypeError as exc:  # most often options the constructor does not take, or misses
        raise ConfigError(f"{kind.where} = {name!r} refused its options {dict(options)}: {exc}") from None
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{kind.where} = {name!r}: building it failed: {type(exc).__name__}: {exc}") from None
    missing = [m for m in kind.methods if not callable(getattr(plugin, m, None))]
    if missing:
        raise ConfigError(f"{kind.where} = {name!r} built a {type(plugin).__name__} without {', '.join(missing)}(); see {kind.contract}")
    return plugin


def parse_options(where: str, items: Sequence[str]) -> dict[str, Any]:
    """``["iterations=50", "eps=1e-6"]`` → ``{"iterations": 50, "eps": 1e-06}``: each value read as a TOML value when it is one, else a string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not _OPTION_KEY.fullmatch(key):
            raise ConfigError(f"{where}: {item!r} is not 'name=value' with name a Python identifier")
        if key in out:
            raise ConfigError(f"{where}: option {key!r} given twice")
        out[key] = _value(text.strip())
    return out


def _value(text: str) -> Any:
    try:
        parsed = tomllib.loads(f"v = {text}")
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        return text
    return parsed["v"] if list(parsed) == ["v"] else text


def _entry_point(kind: PluginKind, name: str) -> Any:
    """The entry point ``name`` of the kind's group, or None; imported only here, for names that are not shipped."""
    from importlib.metadata import entry_points

    found = entry_points(group=kind.group, name=name)
    return next(iter(found), None)
