"""Model, loss and metric plug-ins in one process: the one resolve path, the contract checks, float targets, and
what evaluation and the summary make of a metric."""

from __future__ import annotations

import math
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from torch import nn

from gossip.config import ModelConfig, TrainingConfig, load_config
from gossip.data import Dataset, load_npz, save_npz
from gossip.errors import ConfigError, DataError
from gossip.learn.models import build_model, parameter_count
from gossip.learn.objectives import build_loss, build_metric, check_objectives
from gossip.learn.trainer import LocalTrainer
from gossip.results.summary import MetricInfo

LAB = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, input_shape, num_outputs, hidden=4):
        super().__init__()
        self.a = nn.Linear(input_shape[0], hidden)
        self.b = nn.Linear(hidden, num_outputs)
        with torch.no_grad():
            self.a.weight.fill_(0.25)  # the user's own initialisation

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def needs_real_values(input_shape, num_outputs):
    model = nn.Linear(input_shape[0], num_outputs)
    if float(model.weight.abs().sum().item()) < 0:  # reads a value: impossible on the meta device
        raise AssertionError
    return model


class WithFloat64Buffer(nn.Linear):
    def __init__(self, input_shape, num_outputs):
        super().__init__(input_shape[0], num_outputs)
        self.register_buffer("scale", torch.ones(1, dtype=torch.float64))


class WithCounter(nn.Linear):
    def __init__(self, input_shape, num_outputs):
        super().__init__(input_shape[0], num_outputs)
        self.register_buffer("seen", torch.zeros(1, dtype=torch.int64))


class Half:
    name = "half-accuracy"
    higher_is_better = True

    def __call__(self, outputs, labels):
        return 0.5 * (outputs.argmax(-1) == labels).float().mean()
"""


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A user's module of plug-ins, importable as ``lab``."""
    (tmp_path / "lab.py").write_text(textwrap.dedent(LAB))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lab", raising=False)
    import lab as module

    return module


def test_a_plug_in_model_gets_shape_outputs_and_options_and_keeps_its_own_initialisation(lab: ModuleType) -> None:
    """``build_model`` calls the factory with (input_shape, num_outputs, **options) and does not Xavier-initialise it."""
    model = build_model("lab:Tiny", (5,), 3, hidden=7)

    assert model.a.weight.shape == (7, 5) and model.b.weight.shape == (3, 7)
    assert torch.all(model.a.weight == 0.25)


def test_shipped_models_alone_start_from_xavier_weights_and_zero_biases() -> None:
    """A shipped model's biases are zero (Xavier init); torch's default init would give non-zero ones."""
    model = build_model("mlp", (5,), 3)

    assert all(torch.count_nonzero(m.bias) == 0 for m in model.modules() if isinstance(m, nn.Linear))


def test_a_plug_in_that_cannot_be_built_on_the_meta_device_is_counted_on_a_real_build(lab: ModuleType) -> None:
    """The memory check counts parameters on meta; a factory that reads a value there is built for real instead."""
    assert parameter_count("lab:needs_real_values", (6,), 2) == 6 * 2 + 2


def test_a_float64_buffer_is_refused_and_an_integer_buffer_stays_local(lab: ModuleType) -> None:
    """Floating buffers travel as float32 (float64 is refused, naming it); integer buffers such as counters never travel."""
    with pytest.raises(ConfigError, match=re.escape("[model] name = 'lab:WithFloat64Buffer': buffer 'scale' is float64")):
        build_model("lab:WithFloat64Buffer", (4,), 2)
    assert parameter_count("lab:WithCounter", (4,), 2) == 10


def test_options_are_a_plug_in_models_only() -> None:
    """``[model] options`` for a shipped model is refused in one line (its settings are the section's keys)."""
    with pytest.raises(ConfigError, match=re.escape("[model] options are a plug-in's keyword arguments; model.name = 'mlp'")):
        ModelConfig(name="mlp", options=("hidden=3",))
    assert ModelConfig(name="lab:Tiny", options=("hidden=3",)).build_options() == {"hidden": 3}


def test_loss_options_are_a_plug_in_losses_only() -> None:
    """``[training] loss_options`` with a shipped loss is refused, naming the key it was given in."""
    with pytest.raises(ConfigError, match=re.escape("[training] loss_options are a plug-in's keyword arguments")):
        TrainingConfig(loss="mse", loss_options=("delta=1",))


def test_a_torch_loss_class_is_a_loss_plug_in_with_its_options() -> None:
    """``torch.nn:HuberLoss`` with ``delta=0.5`` builds the torch loss with that delta."""
    loss = build_loss(TrainingConfig(loss="torch.nn:HuberLoss", loss_options=("delta=0.5",)))

    assert isinstance(loss, nn.HuberLoss) and loss.delta == 0.5


def test_a_metric_plug_ins_name_and_direction_come_from_its_attributes(lab: ModuleType) -> None:
    """A metric's ``name`` and ``higher_is_better`` are what summaries report; shipped mse is lower-is-better."""
    scorer = build_metric(TrainingConfig(metric="lab:Half"))

    assert (scorer.name, scorer.higher_is_better) == ("half-accuracy", True)
    assert not build_metric(TrainingConfig(metric="mse")).higher_is_better


def _regression(n_train: int = 10, n_test: int = 5) -> Dataset:
    x = np.arange(n_train + n_test, dtype=np.float32).reshape(-1, 1)
    y = (2 * x).astype(np.float32)
    return Dataset("line", x[:n_train].copy(), y[:n_train].copy(), x[n_train:].copy(), y[n_train:].copy(), num_classes=1, input_shape=(1,))


def test_a_dataset_takes_float_regression_targets_and_num_outputs_is_their_width() -> None:
    """float32 targets of shape (N, 1) are a regression dataset whose model outputs one value."""
    ds = _regression()

    assert ds.is_regression and ds.num_outputs == 1


@pytest.mark.parametrize(
    ("y_test", "message"),
    [
        (np.full((5, 1), np.nan, dtype=np.float32), "float y_test must be C-contiguous, at least 1-D and finite"),
        (np.zeros((5, 2), dtype=np.float32), "y_train and y_test differ"),
        (np.zeros(5, dtype=np.float64), "y_test must be 1-D int64 labels or float32 regression targets"),
    ],
    ids=["nan", "shapes-differ", "float64"],
)
def test_bad_float_targets_are_refused(y_test: np.ndarray, message: str) -> None:
    """Non-finite targets, splits whose targets differ in shape or type, and float64 targets are DataErrors."""
    ds = _regression()
    with pytest.raises(DataError, match=re.escape(message)):
        Dataset("line", ds.x_train, ds.y_train, ds.x_test, y_test, num_classes=1, input_shape=(1,))


def test_evaluation_weighs_each_batchs_metric_by_its_size() -> None:
    """Test batches of 4, 4 and 2 samples: the reported mse is the mean over all 10 samples, not over the 3 batches."""
    ds = _regression(n_train=4, n_test=10)
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(0.0)
        model.bias.fill_(0.0)
    cfg = TrainingConfig(loss="mse", metric="mse")
    trainer = LocalTrainer(model, ds.x_train, ds.y_train, ds.x_test, ds.y_test, cfg, batch_size=4, seed=0)

    evaluation = trainer.evaluate(batch=4)

    assert evaluation.accuracy == pytest.approx(float(np.mean(ds.y_test**2)))
    assert math.isclose(evaluation.loss, evaluation.accuracy, rel_tol=1e-6)


def test_cross_entropy_on_float_targets_is_refused_before_the_run() -> None:
    """The default loss on a regression dataset fails the launcher's probe: one ConfigError line naming the loss."""
    cfg = load_config(env={}, overrides={"model.name": "logreg"})
    with pytest.raises(ConfigError, match=re.escape("[training] loss = 'cross-entropy' failed on two training samples")):
        check_objectives(cfg, _regression())


def test_the_summarys_metric_round_trips_and_defaults_to_accuracy() -> None:
    """``summary.json``'s metric reads back as written; a summary without one holds accuracy."""
    info = MetricInfo("within-tolerance", False)

    assert MetricInfo.from_dict(info.to_dict()) == info
    assert MetricInfo.from_dict(None) == MetricInfo("accuracy", True)


def test_a_regression_dataset_survives_the_run_directorys_data_cache(tmp_path: Path) -> None:
    """save_npz / load_npz keep float targets as they are: nodes read the same regression data the launcher wrote."""
    ds = _regression()
    save_npz(ds, tmp_path / "data.npz")

    back = load_npz(tmp_path / "data.npz")

    assert back.is_regression and back.y_train.shape == (10, 1) and np.array_equal(back.y_test, ds.y_test)


def test_a_model_registered_under_the_entry_point_group_is_built_by_its_short_name(lab: ModuleType, tmp_path: Path) -> None:
    """An installed package's ``gossip.models`` entry point names a factory: ``[model] name = "tiny"`` builds lab:Tiny."""
    dist = tmp_path / "lab_models-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-models\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[gossip.models]\ntiny = lab:Tiny\n")

    model = build_model(ModelConfig(name="tiny").name, (5,), 3)

    assert type(model).__name__ == "Tiny" and torch.all(model.a.weight == 0.25)


def test_a_loss_that_returns_one_value_per_sample_is_refused_before_the_run() -> None:
    """``torch.nn:MSELoss`` with ``reduction=none`` gives a loss per sample, not the batch mean: one ConfigError line."""
    cfg = load_config(
        env={}, overrides={"model.name": "logreg", "training.loss": "torch.nn:MSELoss", "training.loss_options": "reduction=none"}
    )
    message = "[training] loss = 'torch.nn:MSELoss' returned Tensor (2, 1), not a one-number float tensor (the batch mean)"
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_objectives(cfg, _regression())
