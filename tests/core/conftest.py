"""Fixtures of the runner tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder where the fake stages count their runs (see fake_stages.py)."""
    folder = tmp_path / "counts"
    folder.mkdir()
    monkeypatch.setenv("FAKE_STAGE_COUNTS", str(folder))
    return folder
