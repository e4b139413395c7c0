"""Fixtures of the evaluate tests: a tiny hand-built ingest + train world, built once per session."""

from __future__ import annotations

import pytest
from fake_run import FakeWorld, shared_world


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory) -> FakeWorld:
    return shared_world(lambda: tmp_path_factory.mktemp("fake-world"))
