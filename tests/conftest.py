"""Shared test set-up: an isolated cache folder and no TensorFlow chatter."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

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


@pytest.fixture(scope="session")
def missing_tool() -> Callable[[str], NoReturn]:
    """Call with a reason when an external test tool (chromium, checkov) is absent: a skip on a developer's
    machine, a failure where HUBPIPE_REQUIRE_TOOLS is set (CI), so CI never passes by skipping."""

    def handle(reason: str) -> NoReturn:
        if os.environ.get("HUBPIPE_REQUIRE_TOOLS"):
            pytest.fail(f"{reason} (HUBPIPE_REQUIRE_TOOLS is set)")
        pytest.skip(reason)

    return handle
