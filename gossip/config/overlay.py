"""Laying settings over a config: unknown sections and keys refused with a did-you-mean, values coerced to the field's type.

One path for every source (a TOML file, ``GOSSIP_*`` variables, ``--set`` flags, :meth:`RunConfig.replace`):
the result is built with ``dataclasses.replace``, so each section's own checks run on the new values.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args, get_origin

from gossip.config.fields import MAX_CONFIG_BYTES, check, name_text, show
from gossip.errors import ConfigError

__all__ = ["apply_layers", "parse_scalar"]

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_Config = TypeVar("_Config", bound="DataclassInstance")


def parse_scalar(text: str, source: str = "value") -> Any:
    """Parse a string as a TOML value when it is one (``0.1``, ``true``, ``[1, 2]``), else keep the string.

    Exactly one value: ``0.1\n[run]\nseed = 1`` stays a string (which the key's own check then refuses).
    """
    check(len(text) <= MAX_CONFIG_BYTES, f"{source}: value longer than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        parsed = tomllib.loads(f"v = {text}")
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        return text
    return parsed["v"] if list(parsed) == ["v"] else text


def apply_layers(base: _Config, layers: Mapping[str, Mapping[str, Any]], source: str) -> _Config:
    """``base`` with ``layers`` (section → key → value) laid over it; ``source`` names where they came from in messages."""
    sections = {f.name: f for f in fields(base)}
    changes: dict[str, Any] = {}
    for section, values in layers.items():
        if section not in sections:
            raise ConfigError(f"{source}: unknown section [{name_text(section)}]{_did_you_mean(section, sections)}")
        current = getattr(base, section)
        changes[section] = _apply_section(current, section, values, source)
    return dataclasses.replace(base, **changes)


def _apply_section(current: Any, section: str, values: Mapping[str, Any], source: str) -> Any:
    known = {f.name: f for f in fields(current)}
    hints = typing.get_type_hints(type(current))
    coerced: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key {show(key)} in [{section}]{_did_you_mean(key, known)}")
        coerced[key] = _coerce(value, hints[key], f"[{section}] {key}")
    return dataclasses.replace(current, **coerced)


def _did_you_mean(word: str, options: Mapping[str, Any] | Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1) if len(word) <= 100 else []
    return f"; did you mean {close[0]!r}?" if close else ""


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = get_origin(hint)
    if origin is Literal:
        return value  # the section's __post_init__ checks the choice and names it
    if origin in (tuple, Sequence):
        item_type = get_args(hint)[0]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {show(value)}")
        return tuple(_coerce(parse_scalar(v) if isinstance(v, str) and item_type is not str else v, item_type, where) for v in value)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        return _coerce(value, next(a for a in get_args(hint) if a is not type(None)), where)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {show(value)}")
    if hint in (int, float):
        return value  # the section checks it against the field's range, and names the range
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where} must be a string, got {show(value)}")
    return value
