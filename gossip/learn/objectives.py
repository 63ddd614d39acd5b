"""What a node minimises and what its evaluation reports: the loss and the metric, shipped or plug-ins.

``[training] loss`` and ``[training] metric`` take a shipped name or a plug-in (an import path
``module:factory`` or an entry point name of group ``gossip.losses`` / ``gossip.metrics``), resolved here
through one path: the shipped table first, then :func:`gossip.plugins.build`, which calls the factory with
the section's ``loss_options`` / ``metric_options``.

=============  ============================================================================================
loss           meaning
=============  ============================================================================================
cross-entropy  softmax cross-entropy of the outputs against int64 class labels (the default)
mse            mean squared error of the outputs against float targets (outputs reshaped to the targets'
               shape when they hold as many values: a ``(B, 1)`` output against ``(B,)`` targets)
=============  ============================================================================================

Metrics: ``accuracy`` (share of argmax outputs equal to the label; the default) and ``mse`` (as the loss;
lower is better). Evaluation averages a metric's batch values weighted by batch size, so a metric must be a
per-sample mean over its batch: a median or an R² over a batch would average to something else.

The records keep the metric's value under ``accuracy`` whatever the metric is; ``summary.json``'s
``metric`` says which metric that is and whether higher is better.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from gossip import plugins
from gossip.errors import ConfigError
from gossip.plugins import LOSS, METRIC

if TYPE_CHECKING:
    from gossip.config import RunConfig, TrainingConfig
    from gossip.data import Dataset

__all__ = ["Loss", "LossFactory", "Metric", "MetricFactory", "Scorer", "build_loss", "build_metric", "check_objectives", "mse"]


class Loss(Protocol):
    """A training loss: the mean over a batch of how far ``outputs`` are from ``targets``, as a 0-d tensor autograd can follow."""

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, /) -> torch.Tensor: ...


class LossFactory(Protocol):
    """What ``[training] loss`` names: called with ``loss_options`` as keyword arguments, returns a :class:`Loss`.

    A loss class is one: ``torch.nn:MSELoss``, or ``torch.nn:HuberLoss`` with ``loss_options = ["delta=0.5"]``.
    """

    def __call__(self, **options: Any) -> Loss: ...


class Metric(Protocol):
    """An evaluation metric: the mean over the batch of a per-sample score, as a float or a 0-d tensor.

    Optional attributes: ``name`` (str; what summaries and plots call it, default the configured name) and
    ``higher_is_better`` (bool, default True).
    """

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, /) -> float | torch.Tensor: ...


class MetricFactory(Protocol):
    """What ``[training] metric`` names: called with ``metric_options`` as keyword arguments, returns a :class:`Metric`."""

    def __call__(self, **options: Any) -> Metric: ...


def mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error; ``outputs`` take the targets' shape when they hold as many values (``(B, 1)`` vs ``(B,)``)."""
    if outputs.shape != targets.shape:
        if outputs.numel() != targets.numel():
            raise ValueError(f"mse needs one output per target value: outputs {tuple(outputs.shape)}, targets {tuple(targets.shape)}")
        outputs = outputs.reshape(targets.shape)
    return nn.functional.mse_loss(outputs, targets)


def _labels(what: str, targets: torch.Tensor) -> None:
    """Refuse float targets where class labels are needed: torch would read them as class probabilities, silently."""
    if targets.is_floating_point():
        raise ValueError(f"{what} needs int64 class labels; float targets are a regression task (use 'mse' or a plug-in)")


def _cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy against class labels."""
    _labels("cross-entropy", targets)
    return nn.functional.cross_entropy(outputs, targets)


def _accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Share of samples whose largest output is the label."""
    _labels("accuracy", targets)
    return (outputs.argmax(-1) == targets).float().mean()


def _shipped_loss(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[[], Loss]:
    return lambda: loss


_LOSSES: Mapping[str, Callable[[], Loss]] = MappingProxyType({"cross-entropy": _shipped_loss(_cross_entropy), "mse": _shipped_loss(mse)})


@dataclass(frozen=True)
class Scorer:
    """A metric with what reports need to know about it: its name and its direction."""

    metric: Metric
    name: str
    higher_is_better: bool

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        """The metric's value on this batch, as a float; a value that is not one number is a ConfigError naming the metric."""
        value = self.metric(outputs, targets)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            return float(value.detach())
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(
            f"{METRIC.where} = {self.name!r} returned {type(value).__name__} "
            f"{tuple(value.shape) if isinstance(value, torch.Tensor) else ''}, not one number (a batch mean)"
        )


_METRICS: Mapping[str, Scorer] = MappingProxyType({"accuracy": Scorer(_accuracy, "accuracy", True), "mse": Scorer(mse, "mse", False)})


def build_loss(cfg: TrainingConfig) -> Loss:
    """The loss ``[training] loss`` names: shipped, or the plug-in built with ``loss_options``."""
    shipped = _LOSSES.get(cfg.loss)
    if shipped is not None:
        return shipped()
    loss: Loss = plugins.build(LOSS, cfg.loss, plugins.parse_options(LOSS.options_where, cfg.loss_options))  # type: ignore[assignment]
    return loss


def build_metric(cfg: TrainingConfig) -> Scorer:
    """The metric ``[training] metric`` names, with its name and direction (a plug-in's own, else its config name and True)."""
    shipped = _METRICS.get(cfg.metric)
    if shipped is not None:
        return shipped
    metric: Metric = plugins.build(METRIC, cfg.metric, plugins.parse_options(METRIC.options_where, cfg.metric_options))  # type: ignore[assignment]
    name = getattr(metric, "name", cfg.metric)
    higher = getattr(metric, "higher_is_better", True)
    if not isinstance(name, str) or not name or not isinstance(higher, bool):
        raise ConfigError(f"{METRIC.where} = {cfg.metric!r}: its name must be a non-empty str and its higher_is_better a bool")
    return Scorer(metric, name, higher)


def check_objectives(cfg: RunConfig, dataset: Dataset) -> None:
    """Run the configured model, loss and metric once on two training samples, before any node starts.

    Why: a loss that does not fit the targets (cross-entropy on float targets, a model's output of the wrong
    width) would otherwise fail in every node at its first step. Each failure is one ConfigError line naming
    the key; torch's global random state is left as it was.
    """
    from gossip.learn.models import model_of

    with torch.random.fork_rng(devices=[]):  # the CPU generator only: forking CUDA state would initialise CUDA in the launcher
        model = model_of(cfg, dataset)
    model.eval()
    x, y = torch.from_numpy(dataset.x_train[:2]), torch.from_numpy(dataset.y_train[:2])
    seen = f"inputs {tuple(x.shape)} and targets {str(y.dtype).removeprefix('torch.')} {tuple(y.shape)}"
    with torch.no_grad():
        out = _probe(f"[model] name = {cfg.model.name!r}", seen, lambda: model(x))
        loss = _probe(f"{LOSS.where} = {cfg.training.loss!r}", seen, lambda: build_loss(cfg.training)(out, y))
        if not (isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.is_floating_point()):
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else ""
            raise ConfigError(
                f"{LOSS.where} = {cfg.training.loss!r} returned {type(loss).__name__} {shape}, not a one-number float tensor (the batch mean)"
            )
        _probe(f"{METRIC.where} = {cfg.training.metric!r}", seen, lambda: build_metric(cfg.training)(out, y))


def _probe(where: str, seen: str, call: Callable[[], object]) -> Any:
    try:
        with warnings.catch_warnings():  # the one line below says what is wrong; a torch warning would be a second
            warnings.simplefilter("ignore")
            return call()
    except ConfigError:
        raise
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConfigError(f"{where} failed on two training samples ({seen}): {type(exc).__name__}: {text}") from None
