"""Fixtures of the publish tests: the evaluate tests' hand-built world (tests/evaluate/fake_run.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fake_run import FakeWorld, shared_world


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory) -> FakeWorld:
    return shared_world(lambda: tmp_path_factory.mktemp("fake-world"))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main()`` points the root logger at the stderr of the moment (pytest's capture); undo that afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
