"""The flat-vector optimiser does what torch.optim.SGD / Adam do, without importing torch's compiler stack."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from gossip.learn.flat import flatten_
from gossip.learn.optim import FlatOptimizer, flat_prefix


def _pair(seed: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    a = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    b = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize(
    ("kind", "momentum", "weight_decay"),
    [("sgd", 0.0, 0.0), ("sgd", 0.9, 0.0), ("sgd", 0.9, 1e-2), ("adam", 0.0, 0.0), ("adam", 0.0, 1e-2)],
)
def test_matches_torch_optim(kind: str, momentum: float, weight_decay: float) -> None:
    """Ten steps on the same batches land on the same parameters as torch.optim (to float32 rounding),
    and BatchNorm running statistics (in the flat vector, after the parameters) are left to the model."""
    ours, ref = _pair(0)
    flat = flatten_(ours)
    params = list(ours.parameters())
    vector = flat_prefix(params)
    assert vector is not None and vector.numel() == sum(p.numel() for p in params)
    opt = FlatOptimizer(params, vector, kind=kind, lr=0.05, momentum=momentum, weight_decay=weight_decay)
    torch_opt = (
        torch.optim.SGD(ref.parameters(), lr=0.05, momentum=momentum, weight_decay=weight_decay)
        if kind == "sgd"
        else torch.optim.Adam(ref.parameters(), lr=0.05, weight_decay=weight_decay)
    )
    gen = torch.Generator().manual_seed(1)
    for _ in range(10):
        x, y = torch.randn(8, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen)
        for model, o in ((ours, opt), (ref, torch_opt)):
            o.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            o.step()
    for (name, a), b in zip(ours.state_dict().items(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert params[0].data_ptr() == flat.vector.data_ptr()  # still the flat vector's views


def test_flat_prefix_refuses_parameters_that_do_not_tile_one_vector() -> None:
    """Separate tensors, or views out of order, are not a flat vector: make_optimizer then falls back to torch.optim."""
    assert flat_prefix(list(nn.Linear(3, 2).parameters())) is None
    flat = flatten_(nn.Linear(3, 2))
    params = list(flat.module.parameters())
    assert flat_prefix(params[::-1]) is None
    assert flat_prefix(params) is not None


def test_a_replaced_gradient_is_an_error_not_a_silent_no_op() -> None:
    """Setting .grad to None would make backward write elsewhere and step() apply nothing: refused loudly."""
    flat = flatten_(nn.Linear(3, 2))
    params = list(flat.module.parameters())
    opt = FlatOptimizer(params, flat_prefix(params), kind="sgd", lr=0.1)  # type: ignore[arg-type]
    params[0].grad = None
    with pytest.raises(RuntimeError, match="flat gradient"):
        opt.zero_grad()


def test_a_node_trainer_does_not_import_the_compiler_stack() -> None:
    """Building a node's trainer and stepping it imports neither torch._dynamo nor sympy (70 MiB per process)."""
    code = (
        "import sys\n"
        "from gossip.config import load_config\n"
        "from gossip.node.plan import plan_node, build_flat_model\n"
        "from gossip.learn.trainer import LocalTrainer\n"
        "cfg = load_config(env={}, overrides={'run.nodes': 3, 'data.dataset': 'synthetic', 'data.train_samples': 64, 'data.test_samples': 8})\n"
        "plan = plan_node(cfg, 0)\n"
        "flat = build_flat_model(plan)\n"
        "ds = plan.dataset\n"
        "t = LocalTrainer(flat.module, ds.x_train, ds.y_train, ds.x_test, ds.y_test, cfg.training, 8, seed=1)\n"
        "t.steps(2)\n"
        "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize(
    ("kind", "momentum", "weight_decay"),
    [("sgd", 0.0, 0.0), ("sgd", 0.9, 1e-2), ("adam", 0.0, 1e-2)],
)
def test_one_update_of_n_models_at_once_moves_each_row_as_alone(kind: str, momentum: float, weight_decay: float) -> None:
    """apply_update_ on an (N, P) matrix (gossip simulate) gives each row what it gives that row as a (P,) vector
    (a node's FlatOptimizer), step after step, to float32 rounding."""
    from gossip.learn.optim import UpdateRule, UpdateState, apply_update_

    rule = UpdateRule(kind, lr=0.05, momentum=momentum, weight_decay=weight_decay)  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(2)
    X = torch.randn(3, 37, generator=gen)
    rows = [X[i].clone() for i in range(3)]
    together, alone = UpdateState(), [UpdateState() for _ in rows]
    for _ in range(5):
        G = torch.randn(3, 37, generator=gen)
        for i, row in enumerate(rows):
            apply_update_(row, G[i].clone(), alone[i], rule)
        apply_update_(X, G, together, rule)
    for i, row in enumerate(rows):
        torch.testing.assert_close(X[i], row, rtol=1e-6, atol=1e-7)
