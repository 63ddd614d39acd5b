"""The exception tree: the one drawn in ``gossip/errors.py``'s docstring is the one the classes form."""

from __future__ import annotations

import re

from gossip import errors


def _drawn_tree() -> dict[str, str | None]:
    """Each class named in the docstring's drawing, mapped to the class drawn as its parent."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []  # (column of the name, name) from the root down
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^(\s*(?:[│ ]\s*)*(?:[├└]── )?)([A-Z]\w+)\b", line)
        if match is None or not hasattr(errors, match[2]):
            continue
        column, name = len(match[1]), match[2]
        while stack and stack[-1][0] >= column:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((column, name))
    return parents


def test_every_exported_error_is_drawn_under_its_base_class() -> None:
    """A new exception joins the drawing, under the class it derives from: the docstring is the tree users read."""
    drawn = _drawn_tree()
    exported = {name for name in errors.__all__ if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), Exception)}

    assert set(drawn) == exported
    for name, parent in drawn.items():
        base = getattr(errors, name).__bases__[0]
        assert (base.__name__ if parent is not None else None) == parent, name


def test_a_usage_error_is_a_config_error() -> None:
    """A malformed flag is a user mistake like a bad config key: one line, exit 2 (the CLI catches GossipError)."""
    assert issubclass(errors.UsageError, errors.ConfigError)
