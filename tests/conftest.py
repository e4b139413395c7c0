"""Shared test set-up: an isolated cache folder and no TensorFlow chatter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

TESTS_DIR = Path(__file__).parent


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test session gets its own hubpipe cache, unless HUBPIPE_TEST_CACHE_DIR names a shared one."""
    shared = os.environ.get("HUBPIPE_TEST_CACHE_DIR")
    root = Path(shared) if shared else tmp_path_factory.getbasetemp() / "hubpipe-cache"
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(root))
