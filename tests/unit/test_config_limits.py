"""Every setting has limits checked on load: numbers in a documented range, text that files and paths can hold,
addresses that can work, config files read with a size cap. A refusal is one ConfigError line naming the key."""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

from gossip.config import MAX_NODES, MAX_SEED, RunConfig, RunSection, config_to_toml, load_config
from gossip.errors import ConfigError
from gossip.seeds import attack_seed, batch_seed, push_seed


def _numeric_fields() -> list[tuple[str, dataclasses.Field[typing.Any], typing.Any]]:
    out = []
    for section in dataclasses.fields(RunConfig):
        cls = section.default_factory  # type: ignore[misc]
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] in (int, float, tuple[int, ...]):
                out.append((section.name, f, hints[f.name]))
    return out


NUMERIC = _numeric_fields()


def _refusal(overrides: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(env={}, overrides=overrides)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300, message
    return message


def test_every_numeric_setting_declares_its_range() -> None:
    """No int, float or list-of-int field is left without a range: a new setting cannot skip the check."""
    assert len(NUMERIC) > 60
    missing = [f"{s}.{f.name}" for s, f, _ in NUMERIC if "range" not in f.metadata]
    assert not missing


@pytest.mark.parametrize(("section", "field", "hint"), NUMERIC, ids=[f"{s}.{f.name}" for s, f, _ in NUMERIC])
def test_every_numeric_setting_refuses_what_is_not_a_number_in_its_range(
    section: str, field: dataclasses.Field[typing.Any], hint: object
) -> None:
    """NaN, infinity, a bool, text, values past either end (and an open end itself) are refused, each in one line that
    names the key and its range; an integer setting refuses a float."""
    rng = field.metadata["range"]
    key = f"{section}.{field.name}"
    past = [rng.hi + max(1, abs(rng.hi)), rng.lo - max(1, abs(rng.lo))]
    past += [rng.lo] if rng.lo_open else []
    past += [rng.hi] if rng.hi_open else []
    bad: list[object] = ["nan", "inf", "-inf", "true", "'text'", *past]
    if rng.kind is int:
        bad.append(float(rng.lo) + 0.5)
    for value in bad:
        shown = f"[{value}]" if hint == tuple[int, ...] else value
        message = _refusal({key: shown})
        assert message.startswith(f"[{section}] {field.name} must be ") and str(rng) in message, (value, message)


def test_a_range_message_reads_like_the_documentation() -> None:
    """The refusal says which key, which kind of number, which range and what it got."""
    assert _refusal({"training.rounds": "nan"}) == "[training] rounds must be an integer in 1..10000000, got nan"
    assert _refusal({"training.momentum": "1"}) == "[training] momentum must be a number in [0, 1), got 1"
    assert _refusal({"transport.queue_messages": "1e20"}) == "[transport] queue_messages must be an integer in 1..10000, got 1e+20"
    assert (
        _refusal({"model.hidden": "[100000000]"}) == "[model] hidden must be a list of at most 32 integers in 1..1000000, got [100000000]"
    )
    assert _refusal({"data.alpha": "1e-300"}) == "[data] alpha must be a number in [0.001, 1000], got 1e-300"


def test_seeds_up_to_the_bound_are_accepted_by_every_generator_they_reach() -> None:
    """The largest seed, and the per-node seeds derived from it (gossip.seeds), are valid torch and
    numpy seeds; one past the bound is refused on load instead of crashing every node."""
    assert load_config(env={}, overrides={"run.seed": MAX_SEED}).run.seed == MAX_SEED
    torch.Generator().manual_seed(attack_seed(MAX_SEED, MAX_NODES))
    torch.Generator().manual_seed(batch_seed(MAX_SEED, MAX_NODES))
    torch.manual_seed(MAX_SEED)
    np.random.default_rng(push_seed(MAX_SEED, MAX_NODES))
    assert "[run] seed" in _refusal({"run.seed": str(MAX_SEED + 1)})
    assert "[run] seed" in _refusal({"run.seed": str(2**70)})


def test_numbers_are_stored_as_their_kind() -> None:
    """An integer given for a float setting is stored as a float (configs compare equal whatever was typed)."""
    cfg = load_config(env={}, overrides={"training.lr": "1", "links.delay_ms": "5"})
    assert type(cfg.training.lr) is float and type(cfg.links.delay_ms) is float


@pytest.mark.parametrize(
    "key", ["run.name", "run.out_dir", "data.root", "data.dataset", "topology.spec", "security.keys_dir", "model.name", "metrics.host"]
)
@pytest.mark.parametrize("text", ["a\nb", "a\rb", "tab\there", "nul\x00", "del\x7f", "bad-utf8-\udcff"], ids=repr)
def test_text_settings_refuse_what_would_break_a_file_or_a_path(key: str, text: str) -> None:
    """A newline (or any control character) or a byte that is not UTF-8 in a setting that ends up in config.toml or a
    path is refused on load, naming the key."""
    message = _refusal({key: text})
    section, name = key.split(".")
    assert message.startswith(f"[{section}] {name} must not contain")


def test_addresses_in_a_list_are_checked_too() -> None:
    """An address list is checked entry by entry."""
    assert "[transport] addresses" in _refusal({"transport.addresses": '["tcp://127.0.0.1:7000", "tcp://a\\nb:7001"]'})


@pytest.mark.parametrize("name", ["../../../../elsewhere", "a/b", "..", ".", "/abs", "back\\slash"])
def test_a_run_name_is_one_directory_name(name: str) -> None:
    """--name ../../x (or any name with a slash) would put the run directory outside out_dir: refused on load."""
    assert _refusal({"run.name": repr(name)}).startswith("[run] name must be one directory name under out_dir")


@pytest.mark.parametrize("topology_name", ["../../z", "a/../../b", "..", "x\ny", "/etc"])
def test_the_default_run_directory_stays_inside_out_dir_whatever_the_topology_is_called(topology_name: str) -> None:
    """Without --name the directory is named after the topology, whose name a topology file chooses: it is still one
    child of out_dir."""
    run = RunSection(out_dir="runs")
    path = run.directory(topology_name)
    assert path.parent == Path("runs") and path.name not in ("", ".", "..") and "/" not in path.name and "\n" not in path.name
    assert run.directory("20250101-000000-ring") == Path("runs/20250101-000000-ring")
    assert RunSection(name="mine").directory(topology_name) == Path("runs/mine")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"transport.address_template": "'tcp://host name:{port}'"}, "has a space in its host"),
        ({"transport.address_template": "'tcp://h:{port.real}'"}, "only {id} and {port} can be filled in"),
        ({"transport.address_template": "'tcp://h:{port:>999999999}'"}, "only {id} and {port} can be filled in"),
        ({"transport.address_template": "'tcp://h:{nope}'"}, "only {id} and {port} can be filled in"),
        ({"transport.address_template": "'tcp://h:{port'"}, "address_template 'tcp://h:{port'"),
        ({"transport.address_template": "'tcp://gossip-{id}:99999'"}, "port '99999' is not in 1..65535"),
        ({"transport.address_template": "'tcp://:{port}'"}, "needs HOST:PORT"),
        ({"transport.address_template": "'http://h:{port}'"}, "must start with tcp:// or ipc://"),
        ({"transport.address_template": "'ipc:///tmp/" + "x" * 120 + "-{id}'"}, "socket path longer than 107 bytes"),
        ({"transport.addresses": "['tcp://a:1', 'tcp://b:0']"}, "port '0' is not in 1..65535"),
        ({"transport.addresses": "['ipc://']"}, "names no socket path"),
        ({"transport.listen": "'tcp://0.0.0.0:70000'"}, "[transport] listen"),
    ],
)
def test_an_address_that_cannot_work_is_refused_on_load(overrides: dict[str, object], message: str) -> None:
    """Templates (filled in for node 0), lists and bind addresses are checked when the config loads, not when a node
    first binds or connects."""
    assert message in _refusal(overrides)


def test_a_port_past_65535_for_a_later_node_is_refused_when_that_address_is_asked_for() -> None:
    """Node i's port is base_port + i: a node of a run too large for its base port gets a ConfigError naming the key
    when it looks up its own or a neighbour's address (before it binds), not an OverflowError from the socket."""
    cfg = load_config(env={}, overrides={"transport.base_port": 65530, "metrics.base_port": 65530})
    assert cfg.transport.address_of(5) == "tcp://127.0.0.1:65535" and cfg.metrics.port_of(5) == 65535
    with pytest.raises(
        ConfigError, match=r"^\[transport\] address_template .* \(node 9: 'tcp://127.0.0.1:65539'\): port '65539' is not in 1..65535$"
    ):
        cfg.transport.address_of(9)
    with pytest.raises(ConfigError, match=r"^\[transport\] listen 'tcp://\*:\{port\}' \(node 6: 'tcp://\*:65536'\)"):
        cfg.replace(transport={"listen": "tcp://*:{port}"}).transport.listen_address(6)
    with pytest.raises(ConfigError, match=r"^\[metrics\] base_port 65530 \+ node 9 = 65539 is past port 65535$"):
        cfg.metrics.port_of(9)


def test_addresses_that_work_are_accepted() -> None:
    """DNS templates, zero-padded ids, IPv6, bind wildcards and the launcher's `ipc://` marker all load."""
    cfg = load_config(env={}, overrides={"run.nodes": 12, "transport.address_template": "'tcp://gossip-{id:02d}.gossip:7000'"})
    assert cfg.transport.address_of(11) == "tcp://gossip-11.gossip:7000" and cfg.transport.address_of(3) == "tcp://gossip-03.gossip:7000"
    load_config(env={}, overrides={"transport.address_template": "'tcp://[::1]:{port}'", "transport.listen": "'tcp://*:{port}'"})
    load_config(env={}, overrides={"transport.listen": "'tcp://0.0.0.0:*'", "run.nodes": 4})
    load_config(env={}, overrides={"transport.address_template": "'ipc://'", "run.nodes": 4})
    load_config(env={}, overrides={"transport.address_template": "'ipc://@gossip-{id}'", "run.nodes": 4})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("links.delay_ms", "1e300", "[links] delay_ms must be a number in [0, 60000]"),
        ("links.jitter_ms", "1e9", "[links] jitter_ms must be a number in [0, 60000]"),
        ("links.bandwidth_mbit", "1e-9", "[links] bandwidth_mbit must be 0 (unlimited) or at least 0.001 Mbit/s"),
        ("training.weight_decay", "inf", "[training] weight_decay must be a number in [0, 1]"),
        ("training.lr", "1e300", "[training] lr must be a number in [0, 1000000]"),
    ],
)
def test_settings_that_would_hang_or_blow_up_a_run_are_refused(key: str, value: str, message: str) -> None:
    """A huge delay, a bandwidth near zero, an infinite weight decay: refused on load, not a run that never ends."""
    assert _refusal({key: value}).startswith(message)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


@pytest.mark.timeout(60)
def test_a_config_path_that_is_not_a_regular_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A FIFO (with no writer: reading would wait for ever), /dev/zero (reading would fill the memory) and a directory
    are refused from what they are."""
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a FIFO"), (Path("/dev/zero"), "a character device"), (tmp_path, "a directory")):
        with pytest.raises(ConfigError) as info:
            load_config(path, env={})
        assert str(info.value) == f"config path {path} is {kind}, not a TOML file"


def test_a_config_file_larger_than_a_mebibyte_is_refused(tmp_path: Path) -> None:
    """A run config is a few kB; a file past 1 MiB is refused without being parsed."""
    path = _write(tmp_path, "# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="is larger than 1024 KiB"):
        load_config(path, env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[training]\nrounds = " + "[" * 5000 + "]" * 5000 + "\n", "values nested too deeply"),
        ("[training]\nrounds = " + "9" * 5000 + "\n", "invalid TOML"),
        ('[training]\n"lr\\nx" = 1\n', "unknown key 'lr\\nx' in [training]"),
        ('["sec\\ntion"]\nx = 1\n', "unknown section ['sec\\ntion']"),
        ("[training]\n" + "k" * 5000 + " = 1\n", "unknown key 'kkkk"),
    ],
)
def test_toml_the_parser_chokes_on_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    """Deep nesting (RecursionError in tomllib), a 5000-digit integer (ValueError), and keys with newlines or of any
    length: one short ConfigError line each."""
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text), env={})
    assert message in str(info.value) and "\n" not in str(info.value) and len(str(info.value)) < 400


def test_a_set_value_is_one_toml_value_or_a_string() -> None:
    """`--set training.lr=0.1<newline>[run]<newline>seed=1` does not smuggle in a second key: it stays text, and the
    number setting refuses text."""
    assert _refusal({"training.lr": "0.1\n[run]\nseed = 1"}).startswith("[training] lr must be a number")
    assert _refusal({"training.rounds": "[" * 3000}).startswith("[training] rounds must be an integer")


def test_odd_but_writable_text_round_trips_through_config_toml(tmp_path: Path) -> None:
    """Quotes, backslashes, non-ASCII and Unicode line separators are written escaped and read back equal."""
    odd = "q\"uo\\te \u00e9\u2028\u4e2d 'x'"
    cfg = RunConfig().replace(data={"root": odd}, run={"name": 'r\u00e9sum\u00e9 "1"', "out_dir": odd})
    assert cfg.data.root == odd
    path = tmp_path / "config.toml"
    path.write_text(config_to_toml(cfg), encoding="utf-8")
    assert load_config(path, env={}) == cfg


def test_config_to_toml_escapes_every_control_character() -> None:
    """Even a config built in code with a control character in a string is written as valid TOML (escaped)."""
    import tomllib

    from gossip.config.writer import _toml_value

    text = "".join(map(chr, range(0x20))) + '\x7f"\\'
    assert tomllib.loads(f"v = {_toml_value(text)}")["v"] == text
    with pytest.raises(ConfigError, match="not UTF-8"):
        _toml_value("\udcff")


def test_float_bounds_are_finite_everywhere() -> None:
    """No range admits a non-finite number, and every default lies inside its range."""
    defaults = RunConfig()
    for section, f, _ in NUMERIC:
        rng = f.metadata["range"]
        assert math.isfinite(rng.lo) and math.isfinite(rng.hi)
        value = getattr(getattr(defaults, section), f.name)
        assert all(rng.admits(v) for v in value) if isinstance(value, tuple) else rng.admits(value), (section, f.name)


def test_the_documented_example_config_loads_and_states_each_shown_range() -> None:
    """The configuration reference's complete example file (docs/operate/configuration.md) is a valid config, and
    every number it shows carries its range, as the code declares it, in its comment."""
    import re

    page = (Path(__file__).resolve().parents[2] / "docs" / "operate" / "configuration.md").read_text()
    block = page.split("## A complete file", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "readme.toml").write_text(block)
        load_config(Path(tmp) / "readme.toml", env={})
    ranges = {f"{s}.{f.name}": str(f.metadata["range"]) for s, f, _ in NUMERIC}
    section, shown = "", 0
    for line in block.splitlines():
        if head := re.match(r"\[(\w+)\]", line):
            section = head.group(1)
        elif (entry := re.match(r"(\w+) = [^#]*(#.*)?$", line)) and f"{section}.{entry.group(1)}" in ranges:
            assert ranges[f"{section}.{entry.group(1)}"] in (entry.group(2) or ""), line
            shown += 1
    assert shown >= 25


@pytest.mark.timeout(10)  # a hang guard: a duplicate check that was quadratic took hours
def test_the_longest_node_lists_load_in_linear_time() -> None:
    """[byzantine] nodes and [faults] slow_nodes of 10000 ids (the most there can be) load, within the test's
    timeout; one more id is refused."""
    ids = list(range(MAX_NODES))
    cfg = load_config(env={}, overrides={"byzantine.nodes": ids, "byzantine.attack": "sign-flip", "faults.slow_nodes": ids})
    assert len(cfg.byzantine.nodes) == MAX_NODES
    assert "[byzantine] nodes must be a list of at most 10000" in _refusal({"byzantine.nodes": [*ids, 0], "byzantine.attack": "sign-flip"})
