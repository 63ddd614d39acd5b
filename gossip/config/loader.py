"""Loading a run's config: the defaults, then a TOML file, then ``GOSSIP_<SECTION>_<KEY>`` variables, then flags.

Every input is bounded before it is parsed (a regular file of at most ``MAX_CONFIG_BYTES``, a value of
at most as much), and everything ``tomllib`` can raise on hostile text becomes one ConfigError line.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from gossip.config.fields import MAX_CONFIG_BYTES, name_text, show
from gossip.config.overlay import apply_layers, parse_scalar
from gossip.config.run_config import RunConfig
from gossip.errors import ConfigError

__all__ = ["configure", "load_config"]


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Build a :class:`RunConfig` from a TOML file, ``GOSSIP_*`` environment variables and overrides.

    ``overrides`` maps dotted keys (``"training.lr"``) to values; strings are parsed like TOML
    values, so ``"0.1"``, ``"true"`` and ``"[1, 2]"`` work from the command line.
    """
    layers: dict[str, dict[str, Any]] = {}
    if path is not None:
        _merge(layers, _read_toml(Path(path)))
    _merge(layers, _from_env(os.environ if env is None else env))
    if overrides:
        _merge(layers, _from_dotted(overrides, source="--set"))
    return apply_layers(RunConfig(), layers, source=name_text(str(path)) if path else "config")


def configure(cfg: RunConfig, settings: Mapping[str, Any]) -> RunConfig:
    """``cfg`` with dotted settings laid over it, as ``--set`` lays them: ``configure(cfg, {"training.lr": 0.1})``.

    For scripts and notebooks that vary a loaded config: the keys are the CLI's (``section.key``), strings are
    parsed like ``--set`` values (``"0.1"``, ``"[4]"``), and a wrong key or value is one :class:`ConfigError`
    that names it. The environment is not read again: what ``cfg`` holds is the base.
    """
    return apply_layers(cfg, _from_dotted(settings, source="configure"), source="configure")


def _read_toml(path: Path) -> dict[str, dict[str, Any]]:
    data = _parse_toml(_read_capped(path), name_text(str(path)))
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{name_text(str(path))}: top-level key {show(section)} must be a [section]")
    return data


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _read_capped(path: Path) -> str:
    """The text of a regular file of at most ``MAX_CONFIG_BYTES``; anything else is refused before it is read.

    Opened non-blocking, so that a FIFO with no writer does not hang the open, then checked on the open
    descriptor: /dev/zero or a pipe would otherwise be read until memory runs out.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {name_text(str(path))}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {name_text(str(path))}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((what for test, what in _FILE_KINDS if test(info.st_mode)), "not a regular file")
            raise ConfigError(f"config path {name_text(str(path))} is {kind}, not a TOML file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {name_text(str(path))} is larger than {MAX_CONFIG_BYTES // 1024} KiB; a run config is a few kB")
        data = b""
        while len(data) <= MAX_CONFIG_BYTES:  # a read may return less than asked (/proc, network file systems)
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {name_text(str(path))} is larger than {MAX_CONFIG_BYTES // 1024} KiB; a run config is a few kB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{name_text(str(path))}: not a UTF-8 text file") from None


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    """``tomllib.loads``, with everything it can raise on hostile text turned into one ConfigError line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses per level of nested arrays and inline tables
        raise ConfigError(f"{source}: invalid TOML: values nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4300 digits (sys.get_int_max_str_digits)
        raise ConfigError(f"{source}: invalid TOML: {show(str(exc), 100)}") from None


def _section_names() -> list[str]:
    return [f.name for f in fields(RunConfig)]


def _from_env(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    sections = _section_names()
    for name, raw in env.items():
        if not name.startswith("GOSSIP_") or name in _ENV_NOT_CONFIG:
            continue
        rest = name[len("GOSSIP_") :].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            raise ConfigError(f"environment variable {name}: no config section matches (sections: {', '.join(sections)})")
        out.setdefault(section, {})[rest[len(section) + 1 :]] = parse_scalar(raw, name)
    return out


# Environment variables that belong to the CLI, not to the run config.
_ENV_NOT_CONFIG = frozenset({"GOSSIP_NODE_ID", "GOSSIP_CONFIG", "GOSSIP_LOG_LEVEL", "GOSSIP_FREE_PORTS"})


def _from_dotted(overrides: Mapping[str, Any], source: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for dotted, value in overrides.items():
        section, sep, key = dotted.partition(".")
        if not sep or not key:
            raise ConfigError(f"{source} {dotted!r}: expected section.key=value, e.g. training.lr=0.1")
        out.setdefault(section, {})[key] = parse_scalar(value, f"{source} {dotted}") if isinstance(value, str) else value
    return out


def _merge(into: dict[str, dict[str, Any]], layer: Mapping[str, Mapping[str, Any]]) -> None:
    for section, values in layer.items():
        into.setdefault(section, {}).update(values)
