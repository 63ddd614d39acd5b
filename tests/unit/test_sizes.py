"""The size caps of the style guide, kept by a test: a module of at most 400 lines, a class of 250, a function of 60
(docstrings included). A unit past its cap usually holds two jobs; split it where the data flow splits."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GOSSIP = Path(__file__).resolve().parents[2] / "gossip"
CAPS = {"module": 400, "class": 250, "function": 60}


def _sizes() -> list[tuple[str, str, int]]:
    found = []
    for path in sorted(GOSSIP.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        where = str(path.relative_to(GOSSIP.parent))
        found.append(("module", where, len(text.splitlines())))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                found.append((kind, f"{where}:{node.name}", (node.end_lineno or node.lineno) - node.lineno + 1))
    return found


@pytest.mark.parametrize("kind", sorted(CAPS))
def test_no_unit_of_the_package_is_past_its_size_cap(kind: str) -> None:
    """Every module, class and function of gossip/ within its cap; the message lists each one past it."""
    over = [(where, lines) for k, where, lines in _sizes() if k == kind and lines > CAPS[kind]]
    assert not over, f"{kind}s over {CAPS[kind]} lines: {over}"
