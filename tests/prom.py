"""Helpers for tests that drive the real Prometheus tools: find the binaries, query the HTTP API, read PNGs.

A missing ``prometheus``/``promtool`` is a failure, never a skip: CI installs them
(``deploy/system-deps.sh``), and a developer without them must be told, not shown a green run.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def require(binary: str) -> str:
    """The path of ``binary`` (prometheus or promtool), or fail the test saying how to get it."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not on PATH: run `bash deploy/system-deps.sh` (installs Debian's prometheus package, which has both)")
    return path


class PromAPI:
    """The few Prometheus HTTP API calls the tests make (stdlib only)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _get(self, path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as response:
                body: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 400/422: a parse or evaluation error, with Prometheus' reason
            body = json.loads(exc.read())
        return body

    def query(self, expr: str, at: float) -> dict[str, Any]:
        """An instant query at time ``at``; returns the whole response (``status``, ``data`` or ``error``)."""
        return self._get("/api/v1/query", [("query", expr), ("time", f"{at:.3f}")])

    def label_values(self, selector: str, label: str, start: float, end: float) -> set[str]:
        """What Grafana's ``label_values(selector, label)`` lists over ``[start, end]``."""
        body = self._get("/api/v1/series", [("match[]", selector), ("start", f"{start:.3f}"), ("end", f"{end:.3f}")])
        assert body["status"] == "success", body
        return {series[label] for series in body["data"] if label in series}

    def targets(self) -> dict[str, Any]:
        body = self._get("/api/v1/targets", [])
        assert body["status"] == "success", body
        return body["data"]


def image_pixels(path: Path) -> np.ndarray:
    """A PNG's RGB pixels as a ``(height, width, 3)`` uint8 array; fails unless the file is a real PNG."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG", f"{path} is {image.format}, not PNG"
        return np.asarray(image.convert("RGB"))


def assert_real_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A real PNG of ``size`` (width, height) that is not blank: varied pixels, many colours."""
    pixels = image_pixels(path)
    height, width, _ = pixels.shape
    assert (width, height) == size, f"{path.name}: {width}x{height}, expected {size[0]}x{size[1]}"
    assert pixels.std() > 10, f"{path.name} is (nearly) blank"
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 50, f"{path.name} has only {len(colours)} distinct colours"
    return pixels


def assert_real_plot(path: Path, size: tuple[int, int]) -> None:
    """A real image with data drawn on it: axes, text and grid are grey, so saturated pixels mean marks."""
    pixels = assert_real_image(path, size)
    saturated = (pixels.max(axis=2).astype(int) - pixels.min(axis=2)) > 80
    assert saturated.sum() > 300, f"{path.name}: only {saturated.sum()} coloured pixels; no data drawn?"


def red_pixels(path: Path) -> int:
    """Pixels close to matplotlib's tab:red (#d62728), the colour attackers and only attackers are drawn in."""
    pixels = image_pixels(path).astype(int)
    return int((np.abs(pixels - np.array([214, 39, 40])).sum(axis=2) < 60).sum())
