"""Byzantine configuration: bad settings are one clear line that names the offending node, before any process starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossip.algorithms.tolerance import check_tolerance, tolerated
from gossip.config import RunConfig, load_config
from gossip.errors import ConfigError
from gossip.topology import parse_spec
from tests.conftest import run_gossip


def cfg_of(**overrides: object) -> RunConfig:
    return load_config(env={}, overrides={k.replace("__", "."): v for k, v in overrides.items()})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"byzantine.nodes": "[1]", "byzantine.attack": "teleport"}, "[byzantine] attack = 'teleport' is not one of 'none', 'sign-flip'"),
        ({"byzantine.nodes": "[1, 2]"}, "[byzantine] nodes = [1, 2] but attack = 'none'"),
        ({"byzantine.nodes": "[1, 1]", "byzantine.attack": "ipm"}, "[byzantine] nodes lists node 1 twice"),
        (
            {"byzantine.nodes": "[-1]", "byzantine.attack": "ipm"},
            "[byzantine] nodes must be a list of at most 10000 integers in 0..9999, got [-1]",
        ),
        ({"aggregation.rule": "bulyan"}, "[aggregation] rule = 'bulyan' is not one of 'dsgd', 'variance', 'median'"),
        ({"aggregation.trim_beta": "0.5"}, "[aggregation] trim_beta must be a number in [0, 0.5), got 0.5"),
        ({"aggregation.clip_rule": "median"}, "[aggregation] clip_rule = 'median'"),
        ({"byzantine.wait_fraction": "1.0"}, "[byzantine] wait_fraction must be a number in (0, 1), got 1.0"),
        ({"aggregation.rule": "median", "training.mode": "async"}, "[aggregation] rule = 'median' needs a round's set of models"),
        (
            {"byzantine.nodes": "[0]", "byzantine.attack": "sign-flip", "training.mode": "async"},
            "[byzantine] attacks are played in synchronous rounds",
        ),
        (
            {"byzantine.nodes": "[0]", "byzantine.attack": "sign-flip", "merge.enabled": "true"},
            "[merge] the single global merge averages every model and is not Byzantine-robust",
        ),
    ],
)
def test_bad_byzantine_or_rule_settings_are_one_line_errors(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={}, overrides=overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # Krum's 2f + 3 inputs do not fit a ring's degree 2: the first node is named
        (
            {"topology.spec": "ring", "run.nodes": 8, "aggregation.rule": "krum"},
            "rule 'krum': f = 1 needs at least 2f + 3 = 5 inputs, but node 0 has 2 neighbours (3 inputs with itself)",
        ),
        # node 3 of a ring sits between two attackers: no honest majority among its 3 inputs
        (
            {
                "topology.spec": "ring",
                "run.nodes": 8,
                "aggregation.rule": "median",
                "byzantine.nodes": "[2, 4]",
                "byzantine.attack": "alie",
            },
            "[byzantine] node 3 has 2 Byzantine neighbours (2, 4) among its 3 inputs; rule 'median' needs an honest majority",
        ),
        # on a 4x4 torus, nodes 0 and 5 share the neighbours 1 and 4: node 1 is named first
        (
            {"topology.spec": "torus:4x4", "aggregation.rule": "multi-krum", "byzantine.nodes": "[0, 5]", "byzantine.attack": "ipm"},
            "[byzantine] node 1 has 2 Byzantine neighbours (0, 5) but rule 'multi-krum' tolerates 1 there",
        ),
        (
            {
                "topology.spec": "torus:4x4",
                "aggregation.rule": "trimmed-mean",
                "aggregation.f": 3,
                "byzantine.nodes": "[0]",
                "byzantine.attack": "ipm",
            },
            "rule 'trimmed-mean': trimming 3 per side needs more than 6 inputs, but node 1 has 4 neighbours",
        ),
        (
            {"topology.spec": "torus:4x4", "aggregation.rule": "clipped-gossip", "aggregation.f": 4},
            "adaptive 'he' radius with f = 4 needs more than f neighbours, but node 0",
        ),
        # the data-dependent radius budgets for f attackers: two in one neighbourhood need f = 2
        (
            {
                "topology.spec": "complete",
                "run.nodes": 5,
                "aggregation.rule": "clipped-gossip",
                "aggregation.clip_rule": "second-largest",
                "byzantine.nodes": "[3, 4]",
                "byzantine.attack": "sign-flip",
            },
            "[byzantine] node 0 has 2 Byzantine neighbours (3, 4) but rule 'clipped-gossip' tolerates 1 there",
        ),
        (
            {
                "topology.spec": "ring",
                "run.nodes": 8,
                "aggregation.rule": "clipped-gossip",
                "aggregation.clip_rule": "second-largest",
                "aggregation.f": 2,
            },
            "adaptive 'second-largest' radius with f = 2 needs more than f neighbours, but node 0 has 2 neighbours",
        ),
        # floor(0.29 * 100) = 29 trimmed per side on a 99-neighbour clique: 30 attackers is one too many
        (
            {
                "topology.spec": "complete",
                "run.nodes": 100,
                "aggregation.rule": "trimmed-mean",
                "aggregation.trim_beta": 0.29,
                "byzantine.nodes": str(list(range(1, 31))),
                "byzantine.attack": "ipm",
            },
            "node 0 has 30 Byzantine neighbours (1, 2, 3,",
        ),
        (
            {"topology.spec": "ring", "run.nodes": 8, "byzantine.nodes": "[8]", "byzantine.attack": "ipm"},
            "[byzantine] node 8 is not in the topology (nodes 0..7)",
        ),
    ],
)
def test_rules_refuse_more_attackers_than_they_tolerate_naming_the_node(overrides: dict[str, object], message: str) -> None:
    cfg = load_config(env={}, overrides=overrides)
    topo = parse_spec(cfg.topology.spec, n=cfg.run.nodes or None)
    with pytest.raises(ConfigError) as info:
        check_tolerance(cfg, topo)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"aggregation.rule": "dsgd", "byzantine.nodes": "[0, 5]"},  # the undefended baseline may lose
        {"aggregation.rule": "balance", "byzantine.nodes": "[0, 5]"},  # no count bound
        {"aggregation.rule": "clipped-gossip", "aggregation.clip_tau": 1.0, "byzantine.nodes": "[0, 5]"},
        {"aggregation.rule": "krum", "byzantine.nodes": "[0, 10]"},  # 0 and 10 share no neighbour on the 4x4 torus
        {"aggregation.rule": "median", "byzantine.nodes": "[0, 5]"},  # 2 of 5 inputs: still an honest majority
        {"aggregation.rule": "variance", "byzantine.nodes": "[0, 5]"},  # an undefended baseline, like dsgd
    ],
)
def test_defensible_placements_pass(overrides: dict[str, object]) -> None:
    cfg = load_config(env={}, overrides={"topology.spec": "torus:4x4", "byzantine.attack": "sign-flip", **overrides})
    check_tolerance(cfg, parse_spec("torus:4x4"))


def test_trimmed_mean_beta_defends_exactly_floor_beta_n_attackers() -> None:
    """β = 0.29 on a 100-node clique trims ⌊0.29 × 100⌋ = 29 per side, so 29 attackers are defended (30 are refused above)."""
    cfg = load_config(
        env={},
        overrides={
            "topology.spec": "complete",
            "run.nodes": 100,
            "aggregation.rule": "trimmed-mean",
            "aggregation.trim_beta": 0.29,
            "byzantine.nodes": str(list(range(1, 30))),
            "byzantine.attack": "ipm",
        },
    )
    check_tolerance(cfg, parse_spec("complete", n=100))


@pytest.mark.parametrize("clip_rule", ["he", "second-largest"])
def test_adaptive_clipping_with_f_2_accepts_two_attackers_in_a_neighbourhood(clip_rule: str) -> None:
    """5-node clique, attackers 3 and 4: every honest node has 2 Byzantine neighbours of 4, which f = 2 budgets for."""
    cfg = load_config(
        env={},
        overrides={
            "topology.spec": "complete",
            "run.nodes": 5,
            "aggregation.rule": "clipped-gossip",
            "aggregation.clip_rule": clip_rule,
            "aggregation.f": 2,
            "byzantine.nodes": "[3, 4]",
            "byzantine.attack": "sign-flip",
        },
    )
    check_tolerance(cfg, parse_spec("complete", n=5))


def test_tolerated_counts() -> None:
    """Per-rule bounds for N inputs: median (N-1)//2, Krum f iff N >= 2f+3, adaptive clipping f iff f < N - 1, BALANCE and fixed τ none."""
    assert tolerated(cfg_of(aggregation__rule="median"), 5) == 2
    assert tolerated(cfg_of(aggregation__rule="median"), 4) == 1
    assert tolerated(cfg_of(aggregation__rule="krum", aggregation__f=1), 5) == 1
    assert tolerated(cfg_of(aggregation__rule="krum", aggregation__f=1), 4) == -1
    assert tolerated(cfg_of(aggregation__rule="trimmed-mean", aggregation__trim_beta=0.25), 8) == 2
    assert tolerated(cfg_of(aggregation__rule="trimmed-mean", aggregation__trim_beta=0.29), 100) == 29  # exact floor, not int(28.999…)
    assert tolerated(cfg_of(aggregation__rule="balance"), 5) is None
    assert tolerated(cfg_of(aggregation__rule="clipped-gossip", aggregation__clip_tau=1.0), 5) is None
    assert tolerated(cfg_of(aggregation__rule="clipped-gossip", aggregation__clip_rule="second-largest", aggregation__f=2), 5) == 2
    assert tolerated(cfg_of(aggregation__rule="clipped-gossip", aggregation__clip_rule="second-largest", aggregation__f=2), 3) == -1
    assert tolerated(cfg_of(aggregation__rule="dsgd"), 5) == 0
    assert tolerated(cfg_of(aggregation__rule="variance"), 5) == 0


@pytest.mark.slow
def test_cli_refuses_an_indefensible_run_before_starting_any_process(tmp_path: Path) -> None:
    """`gossip launch` and `gossip node`: exit 2, one line naming the node, no run directory written."""
    run_dir = tmp_path / "run"
    args = [
        "-n",
        "8",
        "-t",
        "ring",
        "-r",
        "2",
        "--set",
        "aggregation.rule=median",
        "--set",
        "byzantine.nodes=[2, 4]",
        "--set",
        "byzantine.attack=sign-flip",
    ]
    proc = run_gossip("launch", *args, "--run-dir", str(run_dir), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert (
        proc.stderr.strip()
        == "gossip: error: [byzantine] node 3 has 2 Byzantine neighbours (2, 4) among its 3 inputs; rule 'median' needs an honest majority at every node"
    )
    assert not run_dir.exists()

    config = tmp_path / "run.toml"
    config.write_text('[run]\nnodes = 8\n[topology]\nspec = "ring"\n[aggregation]\nrule = "krum"\n')
    proc = run_gossip("node", "--config", str(config), "--id", "0", timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "rule 'krum': f = 1 needs at least 2f + 3 = 5 inputs, but node 0 has 2 neighbours" in proc.stderr
    assert "listening on" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
