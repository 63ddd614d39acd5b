"""The README and docs/ stay navigable and describe the product as it is: links resolve, no history, no merge markers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])

_FENCE = re.compile(r"^(```|~~~)")
_LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)

# History belongs in git log and bench/HISTORY.md. Each pattern is a way a page narrates it.
_HISTORY = {
    "a numbered stop": re.compile(r"\bstop \d+\b", re.IGNORECASE),
    "an issue number": re.compile(r"\bissue #?\d+\b", re.IGNORECASE),
    "a before/after timing": re.compile(r"\bbefore\b[^.]{0,160}\bit took\b", re.IGNORECASE),
}
# A file of the repository named in backticks (`gossip/node/inbox.py`); bench/out/ holds what benches write, not in git.
_REPO_PATH = re.compile(r"`((?:gossip|bench|tests|deploy|topologies|docs)/[\w./-]*)`")
_GENERATED = ("bench/out/",)
_MERGE_MARKERS = re.compile(r"<!--\s*(BEGIN|END)\b|^(<<<<<<<|>>>>>>>|=======)( |$)", re.MULTILINE)


def _prose(text: str) -> list[tuple[int, str]]:
    """The page's lines outside fenced code blocks, numbered from 1 (code shows commands and output, not links)."""
    lines: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """The anchor a code host gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\*|_(?=\W)|(?<=\W)_", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps only its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page; repeated headings get -1, -2, ... as on the code host."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _prose(page.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path, root: Path = REPO) -> list[str]:
    """Each relative link of a page whose file, or whose heading within that file, does not exist (paths relative to root)."""
    broken = []
    for number, line in _prose(page.read_text(encoding="utf-8")):
        for target in _LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if _EXTERNAL.match(target):
                continue
            path_part, _, anchor = target.partition("#")
            where = (page.parent / path_part).resolve() if path_part else page
            name = f"{page.relative_to(root)}:{number}: {target}"
            if not where.exists():
                broken.append(f"{name} (no such file)")
            elif anchor and where.suffix == ".md" and anchor not in anchors(where):
                broken.append(f"{name} (no heading #{anchor} in {where.relative_to(root)})")
    return broken


def _page_id(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_relative_link_resolves_to_a_file_and_heading(page: Path) -> None:
    """A relative link names a file of the repository and, after '#', a heading of that file."""
    assert broken_links(page) == []


def missing_paths(page: Path, root: Path = REPO) -> list[str]:
    """Each repository path a page names in backticks that does not exist (a module that moved, a file renamed)."""
    missing = []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        for path in _REPO_PATH.findall(line):
            if not path.startswith(_GENERATED) and not (root / path).exists():
                missing.append(f"{page.relative_to(root)}:{number}: {path}")
    return missing


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_file_a_page_names_exists(page: Path) -> None:
    """A path like `gossip/node/inbox.py` in a page is a file of the repository: a moved module fails here until the page follows."""
    assert missing_paths(page) == []


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_no_page_narrates_history_or_keeps_merge_markers(page: Path) -> None:
    """Docs say what the product is now: no 'stop N', issue numbers or 'before ... it took', no merge markers."""
    text = page.read_text(encoding="utf-8")
    found = [
        f"{_page_id(page)}:{number}: {what}: {line.strip()[:120]}"
        for number, line in enumerate(text.splitlines(), start=1)
        for what, pattern in _HISTORY.items()
        if pattern.search(line)
    ]
    found += [f"{_page_id(page)}: merge marker {m.group(0)!r}" for m in _MERGE_MARKERS.finditer(text)]
    assert found == []


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_each_page_has_exactly_one_title(page: Path) -> None:
    """One H1 per page, on its first line, so the code host and the index show one title for it."""
    titles = [line for _, line in _prose(page.read_text(encoding="utf-8")) if re.match(r"^# ", line)]
    assert len(titles) == 1 and page.read_text(encoding="utf-8").startswith(titles[0])


def test_the_checks_catch_a_broken_link_a_missing_heading_a_missing_file_and_history(tmp_path: Path) -> None:
    """The checkers are not vacuous: a page with each fault is reported, code blocks are left alone."""
    (tmp_path / "other.md").write_text("# Other\n\n## Some `code` heading\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#some-code-heading) [gone](missing.md) [bad anchor](other.md#nowhere)\n```\n[in code](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    broken = [entry.split(": ", 1)[1] for entry in broken_links(page, root=tmp_path)]
    assert broken == ["missing.md (no such file)", "other.md#nowhere (no heading #nowhere in other.md)"]
    page.write_text("# Page\n\nSee `gossip/nowhere.py` and `bench/out/plot.png`.\n", encoding="utf-8")
    assert [entry.split(": ", 1)[1] for entry in missing_paths(page, root=tmp_path)] == ["gossip/nowhere.py"]
    assert _HISTORY["a numbered stop"].search("measured in stop 14's run")
    assert _HISTORY["a before/after timing"].search("before the fork server it took 35 s")
    assert _MERGE_MARKERS.search("<!-- BEGIN deploy -->")
