"""Models: each builds for the shapes it supports, trains one step, and refuses what it cannot take."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gossip.errors import ConfigError
from gossip.learn.models import build_model, count_parameters, model_names

SUPPORTED = [
    ("mlp", (40,)),
    ("mlp", (1, 28, 28)),
    ("mlpbn", (40,)),
    ("cnn1d", (40,)),
    ("cnn", (1, 28, 28)),
    ("cnn", (3, 32, 32)),
    ("logreg", (64,)),
    ("logreg", (3, 32, 32)),
    ("vector", (40,)),
]


@pytest.mark.parametrize(("name", "input_shape"), SUPPORTED)
def test_forward_gives_batch_by_classes_logits(name: str, input_shape: tuple[int, ...]) -> None:
    """A batch of 5 inputs gives float32 logits of shape (5, num_classes)."""
    torch.manual_seed(0)
    model = build_model(name, input_shape, 7)

    logits = model(torch.randn(5, *input_shape))

    assert logits.shape == (5, 7) and logits.dtype == torch.float32


@pytest.mark.parametrize(("name", "input_shape"), SUPPORTED)
def test_backward_reaches_every_parameter(name: str, input_shape: tuple[int, ...]) -> None:
    """One cross-entropy backward pass gives every parameter a finite gradient of its own shape."""
    torch.manual_seed(0)
    model = build_model(name, input_shape, 10)

    loss = nn.functional.cross_entropy(model(torch.randn(4, *input_shape)), torch.tensor([0, 1, 2, 3]))
    loss.backward()

    for param in model.parameters():
        assert param.grad is not None and param.grad.shape == param.shape and torch.isfinite(param.grad).all()


def test_cnn1d_flatten_size_matches_the_paper() -> None:
    """For MNIST-1D's length 40 the three stride-2 convolutions leave 25 channels x 5 = 125 features."""
    model = build_model("cnn1d", (40,), 10)

    assert model.out.in_features == 125


def test_cnn1d_has_the_paper_convolutions() -> None:
    """Conv1d(1,25,k5,s2,p1) then two Conv1d(25,25,k3,s2,p1): the MNIST-1D reference CNN."""
    model = build_model("cnn1d", (40,), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]

    shapes = [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs]
    assert shapes == [(1, 25, (5,), (2,), (1,)), (25, 25, (3,), (2,), (1,)), (25, 25, (3,), (2,), (1,))]


def test_mlp_has_the_reference_sizes() -> None:
    """Default mlp on MNIST-1D is 40 -> 100 -> 100 -> 10: 15,210 parameters."""
    assert count_parameters(build_model("mlp", (40,), 10)) == 40 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10


def test_mlp_hidden_option_sets_the_widths() -> None:
    """hidden=(256, 256) builds 40 -> 256 -> 256 -> 10."""
    model = build_model("mlp", (40,), 10, hidden=(256, 256))

    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [256, 256, 10]


@pytest.mark.parametrize("input_shape", [(1, 28, 28), (3, 32, 32)])
def test_cnn_has_a_batchnorm(input_shape: tuple[int, ...]) -> None:
    """cnn holds a BatchNorm2d, so a merged model has running statistics to recompute."""
    model = build_model("cnn", input_shape, 10)

    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_logreg_is_one_linear_layer() -> None:
    """logreg on 64 features and 10 classes has 64 * 10 weights and 10 biases."""
    assert count_parameters(build_model("logreg", (64,), 10)) == 650


@pytest.mark.parametrize(("options", "size"), [({}, 40), ({"dim": 1000}, 1000)])
def test_vector_holds_one_parameter_of_the_requested_size(options: dict[str, int], size: int) -> None:
    """vector has a single parameter w, of size prod(input_shape) or the dim option."""
    model = build_model("vector", (40,), 10, **options)

    assert [name for name, _ in model.named_parameters()] == ["w"] and count_parameters(model) == size


def test_vector_logits_are_zero_and_w_is_standard_normal() -> None:
    """vector's logits are all zero; its w starts N(0, 1) (checked on 100,000 entries)."""
    torch.manual_seed(0)
    model = build_model("vector", (1,), 10, dim=100_000)

    assert torch.count_nonzero(model(torch.randn(3, 1))) == 0
    assert abs(model.w.mean().item()) < 0.02 and abs(model.w.std().item() - 1) < 0.02


@pytest.mark.parametrize("name", ["mlp", "vector"])
def test_the_caller_seed_decides_the_initialisation(name: str) -> None:
    """Same torch seed -> identical parameters; another seed -> different ones (nothing reseeds inside)."""

    def build(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return [p.detach().clone() for p in build_model(name, (40,), 10).parameters()]

    same_a, same_b, other = build(1), build(1), build(2)

    assert all(torch.equal(a, b) for a, b in zip(same_a, same_b, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(same_a, other, strict=True))


def test_build_model_does_not_reseed() -> None:
    """Two models built one after the other from a single seed differ: build_model consumes, never resets, the RNG."""
    torch.manual_seed(0)
    first = build_model("mlp", (40,), 10)
    second = build_model("mlp", (40,), 10)

    assert not torch.equal(first.out.weight, second.out.weight)


def test_linear_weights_have_xavier_variance_and_zero_bias() -> None:
    """A 1000 -> 100 layer's weights have variance 2 / (fan_in + fan_out) within 2%, inside the Xavier bound."""
    torch.manual_seed(0)
    layer = build_model("mlp", (1000,), 10).hidden[0]
    target = 2 / (1000 + 100)

    assert abs(layer.weight.var().item() / target - 1) < 0.02
    assert layer.weight.abs().max().item() <= math.sqrt(3 * target)
    assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("name", ["mlp", "cnn1d", "cnn", "logreg"])
def test_every_layer_starts_with_zero_bias(name: str) -> None:
    """All Linear/Conv biases are zero after build_model."""
    shape = (3, 32, 32) if name == "cnn" else (40,)
    model = build_model(name, shape, 10)

    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            assert torch.count_nonzero(module.bias) == 0


def test_unknown_model_lists_the_known_ones() -> None:
    """An unknown name is a ConfigError listing every model and suggesting the close one."""
    with pytest.raises(ConfigError, match=r"is not one of 'cnn', 'cnn1d', 'logreg', 'mlp', 'mlpbn', 'vector'.*did you mean 'cnn1d'\?"):
        build_model("cnn1", (40,), 10)


def test_model_names_are_sorted() -> None:
    """model_names() lists every model, sorted."""
    assert model_names() == ("cnn", "cnn1d", "logreg", "mlp", "mlpbn", "vector")


@pytest.mark.parametrize(
    ("name", "input_shape"),
    [("cnn", (40,)), ("cnn", (1, 2, 2)), ("cnn1d", (1, 28, 28)), ("cnn1d", (2,))],
    ids=["cnn-on-1d", "cnn-tiny-image", "cnn1d-on-images", "cnn1d-too-short"],
)
def test_shape_mismatch_is_a_one_line_config_error(name: str, input_shape: tuple[int, ...]) -> None:
    """A model given a shape it cannot take is a one-line ConfigError naming the model and the shape."""
    with pytest.raises(ConfigError) as info:
        build_model(name, input_shape, 10)

    assert f"'{name}'" in str(info.value) and str(input_shape) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (("mlp", (0,), 10), {}, "input_shape"),
        (("mlp", (), 10), {}, "input_shape"),
        (("mlp", (40,), 0), {}, "num_classes"),
        (("mlp", (40,), 2.0), {}, "num_classes"),
        (("mlp", (40,), 10), {"hidden": ()}, "hidden"),
        (("mlp", (40,), 10), {"dim": 3}, "no option"),
        (("vector", (40,), 10), {"dim": -1}, "dim"),
    ],
)
def test_invalid_arguments_are_config_errors(args: tuple[object, ...], options: dict[str, object], message: str) -> None:
    """Bad shapes, class counts and options are ConfigErrors naming what is wrong."""
    with pytest.raises(ConfigError, match=message):
        build_model(*args, **options)  # type: ignore[arg-type]


def test_count_parameters_excludes_buffers() -> None:
    """cnn on MNIST counts conv, BatchNorm affine and linear weights, not BatchNorm's running statistics."""
    model = build_model("cnn", (1, 28, 28), 10)

    conv1, bn_affine, conv2 = 1 * 32 * 9 + 32, 2 * 32, 32 * 64 * 9 + 64
    fc, out = 64 * 7 * 7 * 128 + 128, 128 * 10 + 10
    assert count_parameters(model) == conv1 + bn_affine + conv2 + fc + out
    assert sum(b.numel() for b in model.buffers()) > 0
