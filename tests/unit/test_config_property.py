"""Generated configs thrown at the loader and the launcher's preparation: a valid run, or one ConfigError line.

Whatever the TOML text, the --set overrides or the mix of valid values, extreme numbers, wrong types, nested
tables and odd strings, loading either gives a config that survives config.toml unchanged, or raises a
one-line ConfigError (TopologyError or DataError where a graph or a dataset is involved) — never another
exception, and never more than a bounded amount of memory or time.

Time is bounded by each test's timeout (pytest-timeout, set in pyproject.toml): it catches a hang or a
quadratic blow-up; no speed is asserted. Memory is the peak that tracemalloc sees (Python objects and numpy arrays): preparation builds no model
and no torch tensor.
"""

from __future__ import annotations

import dataclasses
import tempfile
import tracemalloc
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from gossip.config import RunConfig, config_to_toml, load_config
from gossip.errors import ConfigError, DataError, TopologyError

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")  # an example holding the long ODD_TEXT values

MIB = 1 << 20
KEYS = [f"{s.name}.{f.name}" for s in dataclasses.fields(RunConfig) for f in dataclasses.fields(s.default_factory)]  # type: ignore[misc]
ODD_TEXT = [
    "nan",
    "inf",
    "-inf",
    "1e20",
    "1e-300",
    "-0",
    "0x10",
    "[1, 2]",
    "[[[1]]]",
    "[]",
    "'x'",
    '"a\\nb"',
    "ring",
    "torus:4x4",
    "tcp://h:{port}",
    "tcp://h h:{port}",
    "ipc://",
    "ipc://@x-{id}",
    "../x",
    "a/b",
    ".",
    "\udcff",
    "{id}",
    "{port.real}",
    "true",
    "é\u2028中",
    "\x00",
    "a\nb",
    "{a = 1}",
    "1979-05-27",
    "[" * 1500,
    "9" * 4400,
    "x" * 4200,  # deeper than tomllib recurses, longer than int() parses, longer than a text setting
]
scalars = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-3, 70_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=30),
    st.sampled_from(ODD_TEXT),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8
)
writable_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=20)


def _in_range(field: dataclasses.Field[Any], hint: Any) -> st.SearchStrategy[Any]:
    """Values a field's own declaration allows: numbers in its range, one of its choices, any writable text."""
    rng = field.metadata.get("range")
    if rng is not None:
        if rng.max_len is not None:
            return st.lists(st.integers(int(rng.lo), min(int(rng.hi), int(rng.lo) + 20)), max_size=3)
        if rng.kind is int:
            return st.integers(int(rng.lo), int(rng.hi))
        return st.floats(rng.lo, rng.hi, exclude_min=rng.lo_open, exclude_max=rng.hi_open)
    if typing.get_origin(hint) is typing.Literal:
        return st.sampled_from(typing.get_args(hint))
    if hint is bool:
        return st.booleans()
    if hint is str:
        return writable_text
    return st.lists(writable_text, max_size=2)


IN_RANGE = {
    f"{s.name}.{f.name}": _in_range(f, typing.get_type_hints(s.default_factory)[f.name])  # type: ignore[misc]
    for s in dataclasses.fields(RunConfig)
    for f in dataclasses.fields(s.default_factory)  # type: ignore[misc]
}
# each key gets a value its declaration allows or a wild one; a few keys do not exist
pairs = st.sampled_from([*KEYS, "training.lrr", "nosuch.key", "run", "training.", ".x"]).flatmap(
    lambda key: st.tuples(st.just(key), (IN_RANGE[key] | values) if key in IN_RANGE else values)
)
overrides = st.lists(pairs, max_size=6).map(dict)


@contextmanager
def bounded(peak_bytes: int) -> Iterator[None]:
    """Fail when the body's traced memory peaks above ``peak_bytes``. Time is bounded by the test's timeout
    (pytest-timeout, ``[tool.pytest.ini_options] timeout``): a hang fails the test, a speed is not asserted."""
    tracemalloc.start()
    try:
        yield
    finally:
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < peak_bytes, f"peaked at {peak / MIB:.0f} MiB"


def check_refusal(exc: Exception) -> None:
    message = str(exc)
    assert message and "\n" not in message and len(message) < 1000, message


def round_trips(cfg: RunConfig) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(config_to_toml(cfg), encoding="utf-8")
        assert load_config(path, env={}) == cfg


def _load_or_refuse(load: Callable[[], RunConfig]) -> RunConfig | None:
    try:
        with bounded(64 * MIB):
            cfg = load()
    except ConfigError as exc:
        check_refusal(exc)
        event("refused")
        return None
    event("loaded")
    return cfg


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides)
@example({"data.root": "a\nb"})  # each @example: an input that once got through or crashed
@example({"run.name": "x\ny", "run.seed": 2**70})
@example({"training.rounds": "[" * 1500, "training.lr": "9" * 4400})
@example({"transport.queue_messages": 10**20, "training.weight_decay": float("inf")})
def test_any_overrides_load_to_a_config_that_round_trips_or_one_config_error_line(given_overrides: dict[str, Any]) -> None:
    """--set and GOSSIP_* values of any shape: a config that config.toml holds exactly, or one ConfigError line."""
    cfg = _load_or_refuse(lambda: load_config(env={}, overrides=given_overrides))
    if cfg is not None:
        round_trips(cfg)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return (
            '"'
            + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in value if not "\ud800" <= c <= "\udfff")
            + '"'
        )
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    return "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


sections = st.sampled_from([f.name for f in dataclasses.fields(RunConfig)] + ["bogus", "training.sub"])


def _line(section: str) -> st.SearchStrategy[tuple[str, str]]:
    keys = [k.split(".")[1] for k in KEYS if k.startswith(section + ".")] + ["lrr"]
    return st.sampled_from(keys).flatmap(
        lambda key: st.tuples(
            st.just(key), IN_RANGE.get(f"{section}.{key}", values).map(_toml_value) | values.map(_toml_value) | st.sampled_from(ODD_TEXT)
        )
    )


documents = st.lists(sections.flatmap(lambda s: st.tuples(st.just(s), st.lists(_line(s), max_size=5))), max_size=5).map(
    lambda doc: "".join(f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in body) for s, body in doc)
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents | st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
@example("[training]\nrounds = " + "[" * 1500 + "\n")
@example("[training]\nlr = " + "9" * 4400 + "\n")
@example('[data]\nroot = "a\\nb"\n')
@example('[run]\nname = "../../elsewhere"\n[links]\ndelay_ms = 1e300\n')
def test_any_toml_file_loads_to_a_config_that_round_trips_or_one_config_error_line(text: str) -> None:
    """A config file of any content (well-formed TOML of wrong shapes, broken TOML, noise): a config or one line."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.toml"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        cfg = _load_or_refuse(lambda: load_config(path, env={}))
    if cfg is not None:
        round_trips(cfg)


# a run that prepares, then up to three settings drawn from values that are sometimes valid, sometimes extreme
PLAN_BASE = st.fixed_dictionaries(
    {
        "run.nodes": st.integers(2, 8),
        "topology.spec": st.sampled_from(["ring", "complete", "star"]),
        "data.dataset": st.just("digits"),  # in memory in ~50 ms (MNIST-1D is generated once per session: seconds)
        "model.name": st.sampled_from(["logreg", "mlp"]),
        "data.partition": st.sampled_from(["iid", "dirichlet", "shards"]),
        "run.name": st.sampled_from(["", "mine", "é x 'q' \"d\""]),
    }
)
PLAN_WILD: dict[str, st.SearchStrategy[Any]] = {
    "run.nodes": st.integers(0, 12) | st.sampled_from([100, 5000, 100_000, 10**9]),
    "run.seed": st.integers(0, 2**33),
    "run.name": st.sampled_from(["../up", "a/b", "x\ny", ".."]),
    "topology.spec": st.sampled_from(["torus", "er:p=0.5", "exponential", "regular:d=3", "nope", "one-peer-exponential"]),
    "topology.weights": st.sampled_from(["metropolis", "uniform", "max-degree"]),
    "data.dataset": st.sampled_from(["synthetic", "bogus", "mnist1d"]),
    "data.features": st.integers(1, 64) | st.sampled_from([10**6, 10**7]),
    "data.train_samples": st.integers(1, 500) | st.sampled_from([10**7, 10**8]),
    "data.alpha": st.floats(0.0001, 10) | st.sampled_from([1e-300, float("nan")]),
    "data.min_size": st.integers(0, 50) | st.sampled_from([10**6]),
    "model.name": st.sampled_from(["vector", "cnn1d", "cnn"]),
    "model.hidden": st.lists(st.integers(1, 20) | st.sampled_from([10**5, 10**6, 10**8]), max_size=3),
    "links.delay_ms": st.sampled_from([5.0, 50_000.0, 1e300]),
    "links.bandwidth_mbit": st.sampled_from([0.001, 1.0, 1e-9]),
    "transport.round_timeout_s": st.sampled_from([0.5, 1e9]),
    "aggregation.rule": st.sampled_from(["median", "krum", "trimmed-mean"]),
    "byzantine.nodes": st.lists(st.integers(0, 15), max_size=2),
    "byzantine.attack": st.sampled_from(["none", "sign-flip"]),
}
plans = st.tuples(
    PLAN_BASE, st.lists(st.sampled_from(sorted(PLAN_WILD)).flatmap(lambda k: st.tuples(st.just(k), PLAN_WILD[k])), max_size=3)
).map(lambda base_wild: {**base_wild[0], **dict(base_wild[1])})


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans)
@example({"run.nodes": 4, "topology.spec": "ring", "data.dataset": "digits", "model.name": "mlp", "run.name": "../up"})
@example({"run.nodes": 4, "topology.spec": "ring", "data.dataset": "digits", "model.name": "mlp", "model.hidden": [10**6, 10**6]})
@example({"run.nodes": 4, "topology.spec": "ring", "data.dataset": "digits", "model.name": "logreg", "links.bandwidth_mbit": 1e-9})
def test_the_launchers_preparation_gives_a_run_inside_out_dir_or_one_error_line(chosen: dict[str, Any]) -> None:
    """prepare_run (everything `gossip launch` does before it starts a node) on generated configs, with 512 MiB of
    memory said to be available: a run directory inside out_dir whose config.toml loads back to the resolved config,
    or one ConfigError/TopologyError/DataError line, having written nothing. Sizes the memory check refuses are never
    allocated first (traced peak under 256 MiB)."""
    from gossip.run.launch import prepare_run

    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp) / "runs"
        given_overrides = {**chosen, "run.out_dir": str(out_dir), "metrics.enabled": False}
        cfg = _load_or_refuse(lambda: load_config(env={}, overrides=given_overrides))
        if cfg is None:
            return
        with mock.patch("gossip.run.capacity.available_bytes", return_value=512 * MIB):
            try:
                with bounded(256 * MIB):
                    resolved, run_dir, _topology = prepare_run(cfg)
            except (ConfigError, TopologyError, DataError) as exc:
                check_refusal(exc)
                assert not out_dir.exists()
                event(f"refused by the preparation: {type(exc).__name__}")
                return
        event("prepared")
        assert run_dir.parent == out_dir.resolve()
        assert load_config(run_dir / "config.toml", env={}) == resolved
