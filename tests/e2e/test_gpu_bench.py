"""bench/gpu.py on a machine without a CUDA GPU: it refuses in one line; its parts run on the CPU."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from gossip.data import load_dataset
from tests.conftest import REPO

pytestmark = [pytest.mark.e2e]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_bench", REPO / "bench" / "gpu.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a CUDA GPU")
def test_the_bench_refuses_without_a_cuda_gpu() -> None:
    """Exit 2, one line on stderr saying there is no CUDA GPU, nothing on stdout (no table of nothing)."""
    r = subprocess.run([sys.executable, "bench/gpu.py"], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu.py: error: no CUDA GPU 0 on this machine"), r.stderr
    assert r.stdout == ""


def test_the_benchs_synthetic_cifar_is_read_by_gossips_cifar_loader(tmp_path: Path) -> None:
    """The images the nodes train on go through the real CIFAR-10 reader: 32x32x3, labels 0..9, the sizes asked."""
    _bench().write_synthetic_cifar(tmp_path, train=500, test=100)
    ds = load_dataset("cifar10", root=tmp_path)
    assert ds.input_shape == (3, 32, 32) and len(ds.y_train) == 500 and len(ds.y_test) == 100
    assert set(ds.y_train.tolist()) == set(range(10))


def test_the_breakdown_splits_the_copies_out_of_the_mix() -> None:
    """Steady records skip the warm-up and the last round; H2D is taken out of aggregate; the table prints every N."""
    bench = _bench()
    record = {"train_s": 0.010, "encode_s": 0.001, "send_s": 0.0005, "wait_s": 0.002, "aggregate_s": 0.003, "h2d_s": 0.001, "round_s": 0.02}
    records = [{**record, "round_s": 9.0}] * 2 + [record] * 5 + [{**record, "round_s": 9.0}]
    means = bench.phase_means(bench.steady(records, 2))
    assert means["round"] == pytest.approx(0.02) and means["aggregate"] == pytest.approx(0.002) and means["H2D"] == pytest.approx(0.001)
    text = bench.table([(1, None, 1000.0), (4, {**means, "images_s": 500.0, "gpu_peak_mib": 600.0}, 2000.0)])
    assert "| 4 | 20.00 | 10.00 | 1.00 | 0.50 | 2.00 | 1.00 | 2.00 | 500 | 2,000 | 0.25 | 600 |" in text


def test_the_ceiling_trains_the_models_alone() -> None:
    """The no-communication ceiling runs (here on the CPU, tiny): a positive number of images per second."""
    assert _bench().ceiling(2, rounds=1, local_steps=1, batch_size=8, device=torch.device("cpu")) > 0
