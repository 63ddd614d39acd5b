"""The configuration reference (docs/operate/configuration.md) is generated from the config dataclasses and kept so."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from gossip.config import RunConfig
from gossip.config_reference import COMMAND, PAGE, field_comments, main, render

REPO = Path(__file__).resolve().parents[2]


def test_the_committed_page_is_what_the_dataclasses_generate() -> None:
    """Changing a key, default, range or comment without regenerating the page fails here, naming the command."""
    committed = (REPO / PAGE).read_text(encoding="utf-8")
    assert committed == render(), f"{PAGE} is out of date: run `{COMMAND}` and commit the result"


def test_every_key_of_every_section_has_a_row_with_its_environment_variable() -> None:
    """No key is left out of the reference: each section's table lists every field, with GOSSIP_<SECTION>_<KEY>."""
    page = render()
    for section in dataclasses.fields(RunConfig):
        assert f"## [{section.name}]" in page
        for f in dataclasses.fields(getattr(RunConfig(), section.name)):
            assert f"| `{f.name}` |" in page and f"`GOSSIP_{section.name.upper()}_{f.name.upper()}`" in page, (section.name, f.name)


# fmt: off
@dataclass(frozen=True)
class _Example:
    """A section written the ways the config's sections are written."""

    plain: int = 1  # on its line
    # above it,
    # over two lines
    above: str = "x"
    wrapped: float = field(
        default=0.5, metadata={}
    )  # on the closing line of a wrapped field
    # about a group of fields
    both: bool = True  # its own
    bare: int = 2
# fmt: on


def test_comments_are_read_above_on_and_after_a_field_wherever_the_class_lives() -> None:
    """The reader takes a field's comment from its line(s) and the block right above it, from any module's source."""
    assert field_comments(_Example) == {
        "plain": "on its line",
        "above": "above it, over two lines",
        "wrapped": "on the closing line of a wrapped field",
        "both": "its own. about a group of fields",
        "bare": "",
    }


def test_check_reports_a_stale_page_and_writing_fixes_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`--check` exits 1 with the command to run when the page differs; a write makes it pass."""
    (tmp_path / PAGE).parent.mkdir(parents=True)
    (tmp_path / PAGE).write_text("# stale\n")

    assert main(["--root", str(tmp_path), "--check"]) == 1
    assert COMMAND in capsys.readouterr().err
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--root", str(tmp_path), "--check"]) == 0
