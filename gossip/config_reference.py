"""The configuration reference page (docs/operate/configuration.md), written from the config dataclasses.

Why generated: the dataclasses are the only place a key, its type, default and range are defined, and each
field's comment on its source line says what it is for. A page written by hand drifts from them; this one is
rebuilt from them, and ``tests/unit/test_config_reference.py`` fails when the committed page differs.

The comments are read from the source of each section class (``inspect.getsource`` + ``tokenize`` + ``ast``),
so the page does not care which module of ``gossip.config`` defines a section.

    python -m gossip.config_reference           # rewrite docs/operate/configuration.md
    python -m gossip.config_reference --check   # write nothing; exit 1 when the page is out of date
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import sys
import textwrap
import tokenize
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from gossip.config import RunConfig

__all__ = ["PAGE", "field_comments", "main", "render"]

REPO = Path(__file__).resolve().parents[1]
PAGE = Path("docs/operate/configuration.md")
COMMAND = "python -m gossip.config_reference"

INTRO = """\
Every setting of a run, generated from the config dataclasses by `{command}` (edit the code's comments,
then run it again; a unit test fails when this page and the code disagree). How to set them:

- **a TOML file**: `gossip launch --config run.toml` (also `simulate`, `node`, `deploy`); one `[section]`
  per table below. `gossip launch` writes the resolved file of every run to `RUN_DIR/config.toml`.
- **an environment variable** `GOSSIP_<SECTION>_<KEY>`, e.g. `GOSSIP_TRAINING_LR=0.1` (the last column).
- **a flag** `--set section.key=value`, e.g. `--set aggregation.rule=median` (repeatable), and the
  shortcut flags of `gossip launch` (`-n`, `-t`, `-r`, `--lr`, ...).

Later wins: defaults < file < environment < `--set` and flags. Values are parsed as TOML (`0.1`, `true`,
`[1, 2]`; a list may also be written `1,2`). Every key is checked when the config loads, before any process
starts: an unknown key is refused with a suggestion (`unknown key 'lrr' in [training]; did you mean 'lr'?`),
a number outside its range names the range, a choice outside its list names the list, and settings that
cannot work together are refused with one line (`gossip: error: ...`, exit code 2). Text that ends up in a
file or a path may hold no control characters, and a config file is at most 1 MiB.

Ranges: `a..b` is an integer range, `[a, b]` a real one (a round bracket: that end excluded).
"""


def field_comments(cls: type) -> dict[str, str]:
    """Each field's comment in ``cls``'s source: the one on its line(s), then the comment lines right above it.

    A field written over several lines (the formatter wraps long ones) may carry its comment on any of them.
    A block above a field that has a comment of its own is usually about a group of fields, so it comes second.
    """
    source = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    lines = source.splitlines()
    found: dict[str, str] = {}
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef))
    for statement in node.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        above: list[str] = []
        line = statement.lineno - 1
        while line >= 1 and lines[line - 1].strip().startswith("#"):
            above.insert(0, comments[line])
            line -= 1
        trailing = [comments[n] for n in range(statement.lineno, (statement.end_lineno or statement.lineno) + 1) if n in comments]
        found[statement.target.id] = _sentences(" ".join(trailing), " ".join(above))
    return found


def _sentences(*parts: str) -> str:
    """Non-empty ``parts`` as one text, a full stop between two when the first ends without one."""
    text = ""
    for part in filter(None, parts):
        text = f"{text}{'' if not text or text[-1] in '.:;!?' else '.'} {part}".strip()
    return text


def _open_choices() -> dict[tuple[str, str], tuple[str, ...]]:
    """Names a string key accepts that are listed by the registry that owns them, not by the config."""
    from gossip.config.choices import AttackKind, LossKind, MetricKind, RuleKind
    from gossip.data import DATASET_NAMES
    from gossip.learn.models import model_names

    plugin = ("module:Class",)  # a plug-in by import path (or a name an installed package registers)
    return {
        ("data", "dataset"): tuple(DATASET_NAMES),
        ("model", "name"): (*model_names(), *plugin),
        ("training", "loss"): (*get_args(LossKind), *plugin),
        ("training", "metric"): (*get_args(MetricKind), *plugin),
        ("aggregation", "rule"): (*get_args(RuleKind), *plugin),
        ("byzantine", "attack"): (*get_args(AttackKind), *plugin),
    }


def _type_name(hint: Any) -> str:
    if get_origin(hint) is Literal:
        return "choice"
    if get_origin(hint) in (tuple, typing.Sequence):
        return f"list of {_type_name(get_args(hint)[0])}"
    return getattr(hint, "__name__", str(hint))


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _cell(text: str) -> str:
    """Text that keeps a Markdown table cell whole and shows ``<``...``>`` as written (not as an HTML tag)."""
    return text.replace("|", "\\|").replace("<", "\\<")


def _allowed(field: dataclasses.Field[Any], hint: Any, open_choices: tuple[str, ...] | None) -> str:
    if get_origin(hint) is Literal:
        return ", ".join(f"`{choice}`" for choice in get_args(hint))
    if open_choices:
        return ", ".join(f"`{choice}`" for choice in open_choices)
    rng = field.metadata.get("range")
    if rng is None:
        return ""
    if getattr(rng, "max_len", None) is not None:
        return f"at most {rng.max_len} values, each in {rng}"
    return str(rng)


def _where(cls: type) -> str:
    path = Path(inspect.getsourcefile(cls) or "")
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return path.name


def _section(name: str, section: object, open_choices: dict[tuple[str, str], tuple[str, ...]]) -> list[str]:
    cls = type(section)
    doc = (inspect.getdoc(cls) or "").replace("``", "`")
    comments = field_comments(cls)
    hints = typing.get_type_hints(cls)
    out = [f"## [{name}]", "", doc, "", f"`{cls.__name__}` in `{_where(cls)}`; on the command line `--set {name}.<key>=<value>`.", ""]
    out += ["| key | type | default | allowed | what | environment |", "|---|---|---|---|---|---|"]
    for f in dataclasses.fields(section):  # type: ignore[arg-type]
        hint = hints[f.name]
        row = [
            f"`{f.name}`",
            _type_name(hint),
            f"`{_cell(_toml(getattr(section, f.name)))}`",
            _cell(_allowed(f, hint, open_choices.get((name, f.name)))),
            _cell(comments.get(f.name, "")),
            f"`GOSSIP_{name.upper()}_{f.name.upper()}`",
        ]
        out.append("| " + " | ".join(row) + " |")
    return out + [""]


def _example(defaults: RunConfig, open_choices: dict[tuple[str, str], tuple[str, ...]]) -> list[str]:
    """Every key of every section at its default, what it allows in a comment: a file to copy and trim."""
    out = [
        "## A complete file",
        "",
        "Every key at its default, with what it allows; copy it, keep the keys you change "
        "(`RUN_DIR/config.toml` of any run is the same with that run's values):",
        "",
        "```toml",
    ]
    for section in dataclasses.fields(RunConfig):
        values = getattr(defaults, section.name)
        hints = typing.get_type_hints(type(values))
        out.append(f"[{section.name}]")
        for f in dataclasses.fields(values):
            allowed = _allowed(f, hints[f.name], open_choices.get((section.name, f.name))).replace("`", "")
            line = f"{f.name} = {_toml(getattr(values, f.name))}"
            out.append(f"{line}  # {allowed}" if allowed else line)
        out.append("")
    return out[:-1] + ["```", ""]


def render() -> str:
    """The whole page, as it should be committed."""
    defaults = RunConfig()
    open_choices = _open_choices()
    names = [f.name for f in dataclasses.fields(RunConfig)]
    out = [
        "# Configuration reference",
        "",
        INTRO.format(command=COMMAND),
        "Sections: " + ", ".join(f"[`[{n}]`](#{n})" for n in names) + "; [a complete file](#a-complete-file).",
        "",
    ]
    for name in names:
        out += _section(name, getattr(defaults, name), open_choices)
    out += _example(defaults, open_choices)
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the page under ``--root`` (default: this checkout), or with ``--check`` only compare it."""
    parser = argparse.ArgumentParser(prog=f"{COMMAND}", description="Generate docs/operate/configuration.md from the config dataclasses.")
    parser.add_argument("--root", type=Path, default=REPO, help="the checkout to write into (default: this one)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when the committed page is out of date")
    args = parser.parse_args(argv)
    path = args.root / PAGE
    text = render()
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    if args.check:
        if current != text:
            print(f"{PAGE} is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
