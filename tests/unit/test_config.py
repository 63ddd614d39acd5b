"""Configuration: defaults, TOML → environment → overrides precedence, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossip.config import RunConfig, config_to_toml, load_config
from gossip.errors import ConfigError


def test_defaults_are_a_valid_run() -> None:
    """With no file, environment or flags, the config is the documented default run."""
    cfg = load_config(env={})
    assert cfg == RunConfig()
    assert cfg.topology.weights == "metropolis"
    assert cfg.data.dataset == "mnist1d"


def test_toml_then_env_then_overrides(tmp_path: Path) -> None:
    """A later layer wins: file < GOSSIP_* environment < --set overrides."""
    path = tmp_path / "run.toml"
    path.write_text('[training]\nlr = 0.1\nrounds = 7\n[topology]\nspec = "torus"\n')
    cfg = load_config(path, env={"GOSSIP_TRAINING_LR": "0.2"}, overrides={"topology.spec": "ring"})
    assert cfg.training.lr == 0.2
    assert cfg.training.rounds == 7
    assert cfg.topology.spec == "ring"


def test_env_keys_with_underscores_map_to_their_section() -> None:
    """GOSSIP_TRAINING_LOCAL_STEPS sets training.local_steps (the section is matched first)."""
    cfg = load_config(env={"GOSSIP_TRAINING_LOCAL_STEPS": "3", "GOSSIP_NODE_ID": "4"})
    assert cfg.training.local_steps == 3


def test_config_round_trips_through_toml(tmp_path: Path) -> None:
    """What the launcher writes into the run directory reads back to the same config."""
    cfg = load_config(env={}, overrides={"transport.addresses": '["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"]', "data.alpha": "0.1"})
    path = tmp_path / "config.toml"
    path.write_text(config_to_toml(cfg))
    assert load_config(path, env={}) == cfg


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[training]\nlrr = 0.1\n", "unknown key 'lrr' in [training]; did you mean 'lr'?"),
        ("[trainig]\nlr = 0.1\n", "unknown section [trainig]; did you mean 'training'?"),
        ("[training]\nlr = -1.0\n", "[training] lr must be a number in [0, 1000000], got -1.0"),
        ("[training]\nrounds = 'ten'\n", "[training] rounds must be an integer in 1..10000000, got 'ten'"),
        ("[run]\nlog_interval_s = -1.0\n", "[run] log_interval_s must be a number in [0, 86400], got -1.0"),
        ("[data]\npartition = 'zipf'\n", "[data] partition = 'zipf' is not one of"),
        ("[topology]\nweights = 'magic'\n", "[topology] weights = 'magic'"),
        ("[training\nlr = 1\n", "invalid TOML"),
        ("[transport]\naddress_template = 'http://x:{port}'\n", "must start with tcp://"),
    ],
)
def test_bad_config_raises_one_line_config_error(tmp_path: Path, toml: str, message: str) -> None:
    """Every user mistake in a config file is a ConfigError whose single line names the problem."""
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    """A path that does not exist is named in the error."""
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_unknown_environment_section_is_refused() -> None:
    """A GOSSIP_* variable that matches no section is an error, not silently ignored."""
    with pytest.raises(ConfigError, match="GOSSIP_TRAINNG_LR"):
        load_config(env={"GOSSIP_TRAINNG_LR": "1"})


def test_address_of_uses_list_or_template() -> None:
    """Peers are found from the explicit list when given, else from the template with {id}/{port}."""
    cfg = load_config(env={}, overrides={"transport.address_template": "tcp://gossip-{id}.gossip:7000"})
    assert cfg.transport.address_of(3) == "tcp://gossip-3.gossip:7000"
    cfg2 = load_config(env={}, overrides={"transport.base_port": 8000})
    assert cfg2.transport.address_of(5) == "tcp://127.0.0.1:8005"
    cfg3 = cfg.replace(transport={"addresses": ("tcp://a:1", "tcp://b:2")})
    assert cfg3.transport.address_of(1) == "tcp://b:2"
    with pytest.raises(ConfigError):
        cfg3.transport.address_of(2)


def test_model_hidden_and_synthetic_sizes_reach_the_node_model() -> None:
    """[model] hidden and [data] features/classes/train_samples/test_samples build the benchmark MLPs:
    64-200-10 has 15k parameters, 1000-1000-10 about a million."""
    from gossip.node.plan import build_flat_model, plan_node

    small = load_config(
        env={},
        overrides={
            "run.nodes": 3,
            "data.dataset": "synthetic",
            "data.train_samples": 200,
            "data.test_samples": 50,
            "model.hidden": "[200]",
        },
    )
    plan = plan_node(small, 0)
    assert plan.dataset.input_shape == (64,) and plan.dataset.num_train == 200 and plan.dataset.num_test == 50
    assert build_flat_model(plan).layout.numel == 64 * 200 + 200 + 200 * 10 + 10
    large = small.replace(data={"features": 1000, "classes": 7}, model={"hidden": (1000,)})
    plan = plan_node(large, 1)
    assert plan.dataset.input_shape == (1000,) and plan.dataset.num_classes == 7
    assert build_flat_model(plan).layout.numel == 1000 * 1000 + 1000 + 1000 * 7 + 7


def test_new_keys_round_trip_and_default_to_the_old_behaviour(tmp_path: Path) -> None:
    """hidden = [] means the model's default; the synthetic sizes default to the dataset's; both survive TOML."""
    assert RunConfig().model.build_options() == {} and RunConfig().data.dataset_options() == {}
    cfg = load_config(env={}, overrides={"data.dataset": "synthetic", "data.features": 32, "model.hidden": "[8, 4]"})
    assert cfg.model.build_options() == {"hidden": (8, 4)}
    assert cfg.data.dataset_options() == {"features": 32, "classes": 10, "train": 4000, "test": 1000}
    path = tmp_path / "c.toml"
    path.write_text(config_to_toml(cfg))
    assert load_config(path, env={}) == cfg


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model.hidden": "[0]"}, "[model] hidden must be a list of at most 32 integers in 1..1000000, got [0]"),
        ({"model.name": "cnn1d", "model.hidden": "[10]"}, "[model] hidden applies to mlp and mlpbn only, not 'cnn1d'"),
        ({"model.hidden": "'wide'"}, "[model] hidden must be a list of at most 32 integers in 1..1000000, got ['wide']"),
        ({"data.dataset": "synthetic", "data.features": 0}, "[data] features must be an integer in 1..1000000, got 0"),
        ({"data.dataset": "synthetic", "data.classes": 1}, "[data] classes must be an integer in 2..100000, got 1"),
        ({"data.dataset": "synthetic", "data.train_samples": 0}, "[data] train_samples must be an integer in 1..10000000, got 0"),
        ({"data.features": 1000}, "[data] features applies to dataset = 'synthetic' only, not 'mnist1d'"),
    ],
)
def test_bad_model_and_synthetic_options_are_one_line_errors(overrides: dict[str, object], message: str) -> None:
    """Out-of-range widths and sizes, and options given to a model or dataset that ignores them, are refused."""
    with pytest.raises(ConfigError) as info:
        load_config(env={}, overrides=overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("training.checkpoint_every", "-1", "checkpoint_every must be an integer in 0..10000000, got -1"),
        ("links.loss", "1.5", "loss must be a number in \\[0, 1\\], got 1.5"),
        ("links.delay_ms", "-3", "delay_ms must be a number in \\[0, 60000\\], got -3"),
        ("faults.step_delay_s", "-0.1", "step_delay_s must be a number in \\[0, 3600\\], got -0.1"),
        ("faults.slow_nodes", "[-1]", "slow_nodes must be a list of at most 10000 integers in 0..9999, got \\[-1\\]"),
    ],
)
def test_fault_keys_are_validated(key: str, value: str, message: str) -> None:
    """The checkpoint period, link emulation and straggler knobs refuse out-of-range values with one line."""
    with pytest.raises(ConfigError, match=message):
        load_config(env={}, overrides={key: value})


TOPK = {"compression.method": "topk"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({**TOPK, "training.mode": "async"}, "gossips in synchronous rounds"),
        ({**TOPK, "aggregation.rule": "median"}, "aggregation.rule = 'median' needs whole models"),
        ({**TOPK, "aggregation.rule": "variance"}, "aggregation.rule = 'variance' needs whole models"),
        ({**TOPK, "byzantine.nodes": "[1]", "byzantine.attack": "sign-flip"}, "byzantine.nodes must be empty"),
        ({**TOPK, "schedule.mode": "periodic"}, "set schedule.mode = 'every'"),
        ({**TOPK, "topology.spec": "one-peer-exponential"}, "set topology.peers = 'all'"),
        ({**TOPK, "transport.wire_dtype": "int8"}, "set transport.wire_dtype = 'float32'"),
        ({**TOPK, "compression.topk_fraction": "0.6"}, "topk_fraction must be a number in (0, 0.5], got 0.6"),
        ({**TOPK, "compression.topk_fraction": "0"}, "topk_fraction must be a number in (0, 0.5], got 0"),
        ({**TOPK, "compression.choco_gamma": "1.5"}, "choco_gamma must be a number in [0, 1], got 1.5"),
        ({**TOPK, "compression.resync_every": "0"}, "resync_every must be an integer in 1..10000000, got 0"),
        ({"compression.method": "int8"}, "[compression] method = 'int8' is not one of 'none', 'topk'"),
    ],
)
def test_compression_refuses_what_cannot_work(overrides: dict[str, object], message: str) -> None:
    """CHOCO-gossip needs synchronous rounds, D-SGD mixing over every neighbour, honest nodes and float32
    values; anything else is a one-line error, not a run that quietly ignores a setting."""
    with pytest.raises(ConfigError) as info:
        load_config(env={}, overrides=overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_compression_is_part_of_the_run_id() -> None:
    """Nodes that gossip compressed and nodes that do not refuse each other's messages (wrong_run)."""
    from gossip.node.plan import run_id_of

    plain = load_config(env={})
    assert run_id_of(plain) != run_id_of(load_config(env={}, overrides=TOPK))
    assert run_id_of(plain) == run_id_of(load_config(env={}, overrides={"transport.wire_dtype": "int8"}))  # an encoding only


def test_compression_mistake_on_the_command_line_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """`gossip launch` with a combination CHOCO cannot run stops before starting anything: one line, exit 2."""
    from gossip.cli import main

    code = main(["launch", "-n", "4", "--set", "compression.method=topk", "--set", "aggregation.rule=krum"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("gossip: error:") and "needs whole models" in err, err
