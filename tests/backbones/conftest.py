"""Shared fixtures for the backbone tests: one offline EfficientNet-Lite0 build per test session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hubpipe.components.backbones import offline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="session")
def lite0_weights() -> Path:
    """The .pth of the installed weights package (a runtime dependency of hubpipe)."""
    return offline.locate_weights()


@pytest.fixture(scope="session")
def lite0_saved_model(tmp_path_factory: pytest.TempPathFactory, lite0_weights: Path) -> Path:
    """The exported SavedModel, built once per session (about half a minute on 2 cores)."""
    return offline.build_offline_model(tmp_path_factory.mktemp("lite0") / "efficientnet_lite0", lite0_weights)


@pytest.fixture(scope="session")
def lite0_reference() -> dict[str, np.ndarray]:
    """Inputs and the original PyTorch model's outputs (see tests/fixtures/efficientnet_lite0_make_reference.py)."""
    with np.load(FIXTURES / "efficientnet_lite0_reference.npz") as data:
        return {name: data[name] for name in data.files}
