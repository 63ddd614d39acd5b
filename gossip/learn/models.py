"""The models a node can train, built by name for a dataset's input shape and class count.

=========  ===================  ============================================================================
name       input_shape          architecture
=========  ===================  ============================================================================
mlp        any                  flatten → Linear(in, 100) → ReLU → Linear(100, 100) → ReLU → Linear(100, classes)
mlpbn      any                  mlp with a BatchNorm1d after each hidden Linear: running statistics on 1-D data,
                                which the global merge must re-estimate (Zhu et al. 2025's BN re-calibration)
cnn1d      (L,)                 the MNIST-1D paper's CNN (Greydanus & Kobak 2020): three stride-2 Conv1d of 25
                                channels → Linear(25 * L', classes); L' = 5 for L = 40, so Linear(125, classes)
cnn        (C, H, W), H,W ≥ 4   Conv(C→32) → BatchNorm → ReLU → MaxPool → Conv(32→64) → ReLU → MaxPool →
                                Linear(64 * H/4 * W/4, 128) → ReLU → Linear(128, classes)
logreg     any                  flatten → Linear(in, classes)
vector     any                  one parameter vector ``w`` (N(0, 1)); logits are zeros: for consensus tests
=========  ===================  ============================================================================

Any other name is a plug-in: a :class:`ModelFactory` named by import path (``mylab.nets:SmallCNN``) or by an
entry point of group ``gossip.models``, resolved and checked by the same :func:`build_model` (see
``docs/develop/write-your-own-model.md``).

Initialisation: Linear and Conv weights are Xavier-uniform (Glorot & Bengio 2010) and biases zero, for
every shipped model (a plug-in's model keeps its own). This is the setting of the vanishing-variance paper (Tian et al. 2024, LeNet-5 with Xavier
fillers): the variance it shows averaging destroys, and that variance correction restores, is the
Xavier variance ``2 / (fan_in + fan_out)``, so our layers must start there for its numbers to reproduce.
PyTorch's default (Kaiming-uniform with ``a = sqrt(5)``) would start them elsewhere.

Nothing here seeds: call ``torch.manual_seed`` before :func:`build_model`. Seeding every node alike gives
a shared initialisation; seeding per node gives independent ones.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from gossip import plugins
from gossip.errors import ConfigError
from gossip.plugins import MODEL

if TYPE_CHECKING:
    from gossip.config import RunConfig

__all__ = [
    "ModelFactory",
    "build_model",
    "check_model",
    "count_parameters",
    "model_names",
    "model_of",
    "parameter_count",
    "parameter_count_of",
    "resolve_model",
]


class ModelFactory(Protocol):
    """What ``[model] name`` names: a callable that builds the model for a dataset's shape.

    ``input_shape`` is one sample's shape (``Dataset.input_shape``), ``num_outputs`` the width of the model's
    output (``Dataset.num_outputs``: classes, or a regression target's size), ``options`` the plug-in's
    ``[model] options``. It returns a ``torch.nn.Module`` whose parameters and floating buffers are all float32.
    A class whose ``__init__`` takes these arguments is one.
    """

    def __call__(self, input_shape: tuple[int, ...], num_outputs: int, /, **options: Any) -> nn.Module: ...


class MLP(nn.Module):
    """Fully connected ReLU network on flattened inputs (MNIST-1D reference sizes: 100, 100)."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int) -> None:
        super().__init__()
        widths = [in_features, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.out = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = torch.relu(layer(x))
        logits: torch.Tensor = self.out(x)
        return logits


class MLPBN(nn.Module):
    """:class:`MLP` with BatchNorm1d after each hidden layer (the 1-D model with normalisation statistics)."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int) -> None:
        super().__init__()
        widths = [in_features, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in widths[1:])
        self.out = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer, norm in zip(self.hidden, self.norms, strict=True):
            x = torch.relu(norm(layer(x)))
        logits: torch.Tensor = self.out(x)
        return logits


class CNN1d(nn.Module):
    """The MNIST-1D paper's convolutional network; takes ``(B, L)`` signals."""

    def __init__(self, length: int, num_classes: int, channels: int = 25) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, kernel_size=5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, kernel_size=3, stride=2, padding=1)
        self.out = nn.Linear(channels * _conv1d_length(length), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], 1, -1)
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        logits: torch.Tensor = self.out(x.flatten(1))
        return logits


class CNN(nn.Module):
    """A small two-block image CNN for (1, 28, 28) and (3, 32, 32) inputs.

    The BatchNorm after the first convolution is deliberate: it gives a merged model running statistics
    to re-estimate (the single-merge paper's BN re-calibration).
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.conv1 = nn.Conv2d(channels, 32, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.fc = nn.Linear(64 * (height // 4) * (width // 4), 128)
        self.out = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        logits: torch.Tensor = self.out(torch.relu(self.fc(x.flatten(1))))
        return logits


class LogReg(nn.Module):
    """Multinomial logistic regression on flattened inputs."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.linear(x.flatten(1))
        return logits


class Vector(nn.Module):
    """A bare parameter vector ``w`` ~ N(0, 1) whose logits are always zero.

    With learning rate 0 training leaves ``w`` alone, so only gossip moves it: pure consensus tests.
    The ``0 * w.sum()`` term keeps ``w`` in the autograd graph, so a backward pass gives it a (zero)
    gradient like any other model's parameters.
    """

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.w = nn.Parameter(torch.randn(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros((x.shape[0], self.num_classes)) + 0 * self.w.sum()


def _conv1d_length(length: int) -> int:
    """Output length of CNN1d's three convolutions for input length ``length``."""
    for kernel in (5, 3, 3):
        length = (length + 2 * 1 - kernel) // 2 + 1
    return length


def _build_mlp(input_shape: tuple[int, ...], num_classes: int, *, hidden: Sequence[int] = (100, 100)) -> nn.Module:
    return MLP(math.prod(input_shape), _positive_ints("model 'mlp': hidden", tuple(hidden)), num_classes)


def _build_mlpbn(input_shape: tuple[int, ...], num_classes: int, *, hidden: Sequence[int] = (100, 100)) -> nn.Module:
    return MLPBN(math.prod(input_shape), _positive_ints("model 'mlpbn': hidden", tuple(hidden)), num_classes)


def _build_cnn1d(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(input_shape) != 1 or _conv1d_length(input_shape[0]) < 1:
        raise ConfigError(f"model 'cnn1d' needs 1-D inputs (length,) of length >= 3, got input_shape {input_shape}")
    return CNN1d(input_shape[0], num_classes)


def _build_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(input_shape) != 3 or input_shape[1] < 4 or input_shape[2] < 4:
        raise ConfigError(
            f"model 'cnn' needs image inputs (channels, height, width) with height, width >= 4, got input_shape {input_shape}"
        )
    return CNN((input_shape[0], input_shape[1], input_shape[2]), num_classes)


def _build_logreg(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return LogReg(math.prod(input_shape), num_classes)


def _build_vector(input_shape: tuple[int, ...], num_classes: int, *, dim: int | None = None) -> nn.Module:
    (size,) = _positive_ints("model 'vector': dim", (math.prod(input_shape) if dim is None else dim,))
    return Vector(size, num_classes)


def _xavier(builder: Callable[..., nn.Module]) -> ModelFactory:
    """``builder`` as a :class:`ModelFactory` whose model starts from Xavier-uniform weights and zero biases."""

    def factory(input_shape: tuple[int, ...], num_outputs: int, /, **options: Any) -> nn.Module:
        model = builder(input_shape, num_outputs, **options)
        _init_weights(model)
        return model

    return factory


_SHIPPED: Mapping[str, ModelFactory] = MappingProxyType(
    {
        name: _xavier(builder)
        for name, builder in {
            "cnn": _build_cnn,
            "cnn1d": _build_cnn1d,
            "logreg": _build_logreg,
            "mlp": _build_mlp,
            "mlpbn": _build_mlpbn,
            "vector": _build_vector,
        }.items()
    }
)
_OPTIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {"mlp": frozenset({"hidden"}), "mlpbn": frozenset({"hidden"}), "vector": frozenset({"dim"})}
)


def model_names() -> tuple[str, ...]:
    """Every shipped model name, sorted (:func:`build_model` also takes plug-ins)."""
    return tuple(sorted(_SHIPPED))


def resolve_model(name: str) -> ModelFactory:
    """The factory ``name`` stands for: a shipped model first, then an entry point (``gossip.models``), then an import path.

    A name that is none of these, or a plug-in that does not load, is one ConfigError line.
    """
    shipped = _SHIPPED.get(name)
    if shipped is not None:
        return shipped
    plugins.check_name(MODEL, name, model_names())
    factory: ModelFactory = plugins.load(MODEL, name)  # type: ignore[assignment]  # build_model checks what it returns
    return factory


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, **options: Any) -> nn.Module:
    """Build model ``name``: a shipped one (see the module docstring) or a plug-in :class:`ModelFactory`.

    Shipped models start from Xavier-uniform weights and zero biases; a plug-in's model keeps its own
    initialisation (its layers' defaults, or whatever its factory does): the user chose it.

    Parameters
    ----------
    input_shape
        Per-sample shape, e.g. ``Dataset.input_shape``.
    num_classes
        The model's output count (``Dataset.num_outputs``): classes, or a regression target's width.
    **options
        ``mlp``: ``hidden`` (default ``(100, 100)``); ``vector``: ``dim`` (default ``prod(input_shape)``);
        a plug-in: its factory's keyword arguments (``[model] options``).

    Raises
    ------
    ConfigError
        Unknown name or option, an input shape the model cannot take (e.g. ``cnn`` on 1-D data), or a
        plug-in that fails its contract (see :func:`check_model`).
    """
    shape = _positive_ints("input_shape", input_shape)
    (outputs,) = _positive_ints("num_classes", (num_classes,))
    factory = resolve_model(name)
    if name in _SHIPPED:
        unknown = sorted(set(options) - _OPTIONS.get(name, frozenset()))
        if unknown:
            allowed = ", ".join(sorted(_OPTIONS.get(name, ()))) or "none"
            raise ConfigError(f"model {name!r} has no option(s) {', '.join(unknown)}; its options: {allowed}")
    try:
        model = factory(shape, outputs, **options)
    except ConfigError:
        raise
    except TypeError as exc:  # most often options the factory does not take, or misses
        raise ConfigError(f"{MODEL.where} = {name!r} refused its options {dict(options)}: {exc}") from None
    except Exception as exc:
        raise _FactoryFailed(f"{MODEL.where} = {name!r}: building it failed: {type(exc).__name__}: {exc}") from None
    check_model(name, model)
    return model


class _FactoryFailed(ConfigError):
    """A factory raised while building: on the meta device that may be the device's fault, so the count retries for real."""


def check_model(name: str, model: object) -> None:
    """Refuse a built model the network cannot carry: not an ``nn.Module``, no parameters, or state that is not float32.

    The wire carries one float32 vector (:func:`gossip.learn.flat.flatten_`): every parameter must be float32,
    and so must every floating buffer (a float64 one would be cast, a complex one dropped). Integer buffers
    (BatchNorm's ``num_batches_tracked``) stay local, as for the shipped models.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{MODEL.where} = {name!r} built a {type(model).__name__}, not a torch.nn.Module; see {MODEL.contract}")
    named = [*(("parameter", n, t) for n, t in model.named_parameters()), *(("buffer", n, t) for n, t in model.named_buffers())]
    for what, tensor_name, tensor in named:
        local = what == "buffer" and not (tensor.is_floating_point() or tensor.is_complex())
        if tensor.dtype != torch.float32 and not local:
            raise ConfigError(
                f"{MODEL.where} = {name!r}: {what} {tensor_name!r} is {str(tensor.dtype).removeprefix('torch.')}; "
                "models travel as float32, so every parameter and floating buffer must be float32 (e.g. .float())"
            )
    if not any(True for _ in model.parameters()):
        raise ConfigError(
            f"{MODEL.where} = {name!r} built a {type(model).__name__} with no parameters: there is nothing to learn or gossip"
        )


def _positive_ints(what: str, values: Sequence[Any]) -> tuple[int, ...]:
    """``values`` as Python ints (numpy integers welcome), or ConfigError if any is not a positive integer."""
    try:
        ints = tuple(operator.index(v) for v in values if not isinstance(v, bool))
    except TypeError:
        ints = ()
    if not ints or len(ints) != len(values) or min(ints) < 1:
        got = values[0] if len(values) == 1 else values
        raise ConfigError(f"{what} must be {'a positive integer' if len(values) == 1 else 'positive integers'}, got {got!r}")
    return ints


def _init_weights(model: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every Linear and Conv layer (see the module docstring)."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (trainable or not; buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def parameter_count(name: str, input_shape: tuple[int, ...], num_classes: int, **options: Any) -> int:
    """The number of parameters :func:`build_model` would give, found without allocating them when it can.

    The model is built on PyTorch's meta device (shapes, no storage), so a typo such as ``hidden = [100000000]``
    costs nothing here and the memory check can refuse it before any real model exists. A plug-in that cannot
    be built on meta (it reads a value, or calls numpy) is built for real instead. Refuses what
    :func:`build_model` refuses.
    """
    try:
        with torch.device("meta"):
            return count_parameters(build_model(name, input_shape, num_classes, **options))
    except _FactoryFailed:
        if name in _SHIPPED:
            raise
    return count_parameters(build_model(name, input_shape, num_classes, **options))


class _Shaped(Protocol):
    """What a model's size depends on: a dataset's per-sample shape and class count (``gossip.data.Dataset`` has both)."""

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    def num_classes(self) -> int: ...


def model_of(cfg: RunConfig, dataset: _Shaped) -> nn.Module:
    """The model ``cfg``'s ``[model]`` section names, shaped for ``dataset`` (initialised from torch's current seed)."""
    return build_model(cfg.model.name, dataset.input_shape, dataset.num_classes, **cfg.model.build_options())


def parameter_count_of(cfg: RunConfig, input_shape: tuple[int, ...], num_classes: int) -> int:
    """:func:`parameter_count` of the model ``cfg`` names, for data of this shape: nothing allocated."""
    return parameter_count(cfg.model.name, input_shape, num_classes, **cfg.model.build_options())
