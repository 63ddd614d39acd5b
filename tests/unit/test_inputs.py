"""gossip.inputs: the bounded reads and the JSON pre-scan every file reader builds on."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from gossip.errors import ConfigError
from gossip.inputs import clip, load_json, quote, read_capped


def test_a_small_file_costs_its_size_not_the_cap(tmp_path: Path) -> None:
    """read(n) allocates n bytes up front: reading a 1 KB file under a 64 MiB cap must not allocate 64 MiB."""
    path = tmp_path / "small"
    path.write_bytes(b"x" * 1000)
    tracemalloc.start()
    try:
        data = read_capped(path, 64 << 20, ConfigError, "file")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert data == b"x" * 1000
    assert peak < 1 << 20, peak


def test_a_file_that_says_size_zero_is_read_to_its_end_and_capped() -> None:
    """Files in /proc say st_size 0: they are read on in chunks, and refused past the cap."""
    assert b"VmSize" in read_capped("/proc/self/status", 1 << 20, ConfigError, "file")
    with pytest.raises(ConfigError, match="holds more than 100 bytes"):
        read_capped("/proc/self/status", 100, ConfigError, "file")


def test_a_missing_file_names_what_it_is(tmp_path: Path) -> None:
    """``what`` starts the message: callers keep their own wording ("topology file not found: ...")."""
    with pytest.raises(ConfigError, match=r"^widget file not found: .*nope$"):
        read_capped(tmp_path / "nope", 10, ConfigError, "widget file")


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        (b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', True),  # brackets in a string are not nesting
        (b'{"a": "\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', True),  # nor after an escaped quote
        (b"[" * 5 + b"]" * 5, True),
        (b"[" * 6 + b"]" * 6, False),
    ],
)
def test_json_depth_is_counted_outside_strings(text: bytes, ok: bool) -> None:
    """The scan empties strings (escapes included) before it counts brackets."""
    if ok:
        load_json(text, max_depth=5, max_values=100, error=ConfigError, where="x")
    else:
        with pytest.raises(ConfigError, match="x: nested 6 deep, deeper than 5"):
            load_json(text, max_depth=5, max_values=100, error=ConfigError, where="x")


def test_json_values_are_counted_before_decoding() -> None:
    """Containers and commas bound what json.loads builds; commas inside strings do not count."""
    assert load_json(b'["a,b,c,d,e,f"]', max_depth=5, max_values=2, error=ConfigError, where="x") == ["a,b,c,d,e,f"]
    with pytest.raises(ConfigError, match="more than 2 values"):
        load_json(b"[1, 2, 3]", max_depth=5, max_values=2, error=ConfigError, where="x")


def test_messages_quote_at_most_a_prefix() -> None:
    """An error quotes what it refuses, never all of it."""
    assert quote("abc") == "'abc'"
    assert quote("x" * 10_000, 10) == "'xxxxxxxxxx'... (10,000 characters)"
    assert clip("y" * 200, 5) == "yyyyy... (200 characters)"
