"""Writing a config back as TOML that :func:`~gossip.config.load_config` reads to an equal config (a run directory's ``config.toml``)."""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from typing import Any

from gossip.config.run_config import RunConfig
from gossip.errors import ConfigError

__all__ = ["config_to_toml"]


def config_to_toml(cfg: RunConfig) -> str:
    """Serialise a config as TOML that :func:`~gossip.config.load_config` reads back to an equal config."""
    lines: list[str] = []
    for section in fields(cfg):
        value = getattr(cfg, section.name)
        assert is_dataclass(value)  # internal invariant, not input validation
        lines.append(f"[{section.name}]")
        for f in fields(value):
            lines.append(f"{f.name} = {_toml_value(getattr(value, f.name))}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + _TOML_ESCAPE.sub(_toml_escape, value) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if value is None:
        raise ConfigError("None cannot be written to TOML")
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


# What a TOML basic string cannot hold as itself: the quote, the backslash and control characters.
_TOML_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f\ud800-\udfff]')
_TOML_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_escape(match: re.Match[str]) -> str:
    char = match.group()
    if "\ud800" <= char <= "\udfff":  # no TOML escape (nor UTF-8) can write half a character
        raise ConfigError("a string with bytes that are not UTF-8 cannot be written to TOML")
    return _TOML_SHORT.get(char) or f"\\u{ord(char):04x}"
