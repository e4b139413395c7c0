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


@pytest.fixture(scope="session")
def session_cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test session's hubpipe cache: its own, unless HUBPIPE_TEST_CACHE_DIR names a shared one."""
    shared = os.environ.get("HUBPIPE_TEST_CACHE_DIR")
    return Path(shared) if shared else tmp_path_factory.getbasetemp() / "hubpipe-cache"


@pytest.fixture(autouse=True)
def _isolated_cache(session_cache_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test sees the session's cache (offline backbones built once per session land there)."""
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(session_cache_root))


@pytest.fixture(scope="session")
def missing_tool() -> Callable[[str], NoReturn]:
    """Call with a reason when an external test tool (chromium, checkov) is absent: a skip on a developer's
    machine, a failure where HUBPIPE_REQUIRE_TOOLS is set (CI), so CI never passes by skipping."""

    def handle(reason: str) -> NoReturn:
        if os.environ.get("HUBPIPE_REQUIRE_TOOLS"):
            pytest.fail(f"{reason} (HUBPIPE_REQUIRE_TOOLS is set)")
        pytest.skip(reason)

    return handle
