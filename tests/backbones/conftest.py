"""Shared fixtures for the backbone tests: each offline EfficientNet-Lite built once per test session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from backbone_fixtures import load_reference

from hubpipe.components.backbones import offline


@pytest.fixture(scope="session")
def offline_saved_model(session_cache_root: Path) -> Callable[[str], Path]:
    """Builds an offline backbone by name into the session's cache, where ``resolve_backbone`` finds it, so the
    train tests reuse the build (about 25-45 s each on 2 cores)."""

    def build(name: str) -> Path:
        variant = offline.find_variant(name)
        assert variant is not None, name
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HUBPIPE_CACHE_DIR", str(session_cache_root))
            patch.delenv(offline.MODELS_DIR_ENV, raising=False)
            return offline.ensure_offline_model(variant)

    return build


@pytest.fixture(scope="session")
def lite0_weights() -> Path:
    """The .pth of the installed weights package (a runtime dependency of hubpipe)."""
    return offline.locate_weights(offline.DEFAULT)


@pytest.fixture(scope="session")
def lite0_saved_model(offline_saved_model: Callable[[str], Path]) -> Path:
    return offline_saved_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def lite0_reference() -> dict[str, np.ndarray]:
    return load_reference("efficientnet_lite0")
