"""``hubpipe report``: one self-contained HTML file from a run folder's stage folders."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import fake_upstream
import pytest
from fake_run import FakeWorld

from hubpipe.pipeline.cli import main
from hubpipe.pipeline.core.config import load_config
from hubpipe.pipeline.local_runner import run_pipeline
from hubpipe.pipeline.report.page import render_report


@pytest.fixture
def finished_run(world: FakeWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ingest = tmp_path / "ingest-with-summary"
    shutil.copytree(world.ingest, ingest)
    summary = {
        "train_examples": 18,
        "test_examples": 18,
        "classes": 3,
        "layout": "split",
        "source": {"description": "hand-built colours"},
        "per_class": {
            "red": {"train": 6, "test": 6},
            "green": {"train": 6, "test": 6},
            "blue": {"train": 6, "test": 6},
        },
    }
    (ingest / "summary.json").write_text(json.dumps(summary))
    quarantine = [{"path": "train/red/<bad>.jpg", "reason": "truncated", "detail": "image file is truncated"}]
    (ingest / "quarantine.json").write_text(json.dumps(quarantine))
    monkeypatch.setenv("FAKE_INGEST", str(ingest))
    monkeypatch.setenv("FAKE_TRAIN", str(world.train_good_and_weak))
    monkeypatch.setenv("FAKE_CACHE", str(world.cache))
    config = load_config(overrides={"publish.root": str(tmp_path / "published")})
    run_pipeline(config, tmp_path / "run", fake_upstream.stages())
    return tmp_path / "run"


def test_report_shows_data_models_blessing_and_publication(finished_run: Path) -> None:
    page = render_report(finished_run)

    assert "hand-built colours" in page
    assert "train/red/&lt;bad&gt;.jpg" in page and "<bad>" not in page  # escaped
    assert "1 file(s) quarantined." in page
    for model in ("good", "weak", "scratch_cnn"):
        assert f"<td>{model}</td>" in page
    assert "blessed: good" in page
    assert "weak failed min_accuracy" in page
    assert page.count("data:image/png;base64,") == 6  # confusion matrix + mistakes, for three models
    assert "published version" in page
    assert "The validate stage has no results in this folder" in page


def test_report_is_self_contained(finished_run: Path) -> None:
    page = render_report(finished_run)
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


def test_report_of_a_partial_run_says_which_stages_did_not_run(finished_run: Path) -> None:
    for stage in ("evaluate", "publish"):
        shutil.rmtree(finished_run / stage)
    page = render_report(finished_run)
    assert "The evaluate stage has no results in this folder" in page
    assert "The publish stage has no results in this folder" in page
    assert "<td>good</td>" in page  # the models are still listed from the train folder


def test_report_command_writes_the_file(finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(finished_run)]) == 0
    assert (finished_run / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(finished_run), "-o", str(tmp_path / "elsewhere.html")]) == 0
    assert (tmp_path / "elsewhere.html").is_file()
    assert "wrote" in capsys.readouterr().out


def test_report_command_refuses_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"stages": {"a": 1}}', '{"stages": [1]}', '"text"'])
def test_report_command_refuses_a_damaged_run_json(tmp_path: Path, capsys: pytest.CaptureFixture, content: str) -> None:
    (tmp_path / "run.json").write_text(content)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run.json" in err and "Traceback" not in err


#: Each JSON file the report reads from a stage folder (stage, file name), as the stages' layouts name them.
REPORTED_FILES = [
    ("ingest", "quarantine.json"),
    ("ingest", "summary.json"),
    ("validate", "anomalies.json"),
    ("evaluate", "blessing.json"),
    ("publish", "publish.json"),
]


@pytest.mark.parametrize(("stage", "name"), REPORTED_FILES)
@pytest.mark.parametrize(
    "content", ['["str"]', '"text"', '{"a": ', "\xff\xfe not utf-8"], ids=["list", "string", "truncated", "not-utf8"]
)
def test_a_damaged_stage_file_is_one_line_and_exit_2(
    finished_run: Path, capsys: pytest.CaptureFixture, stage: str, name: str, content: str
) -> None:
    folder = finished_run / stage
    if not (folder / "manifest.json").is_file():  # the fake run has no validate stage: make a complete folder
        folder.mkdir()
        (folder / "manifest.json").write_text("{}")
    (folder / name).write_bytes(content.encode("latin-1"))
    assert main(["report", str(finished_run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"error: {folder / name} is not ")


@pytest.mark.parametrize(
    ("stage", "name", "content"),
    [
        ("ingest", "quarantine.json", '["str"]'),
        ("ingest", "summary.json", '{"per_class": {"red": {"train": "six"}}}'),
        ("ingest", "summary.json", '{"source": ["x"]}'),
        ("evaluate", "blessing.json", '{"candidates": ["good"]}'),
        ("evaluate", "blessing.json", '{"candidates": [{"name": "good", "accuracy": "high"}]}'),
        ("evaluate", "blessing.json", '{"reference": {"metrics": 0.5}}'),
        ("publish", "publish.json", '{"hints": "hubpipe tensorboard"}'),
    ],
)
def test_a_wrong_shape_inside_a_stage_file_names_where(
    finished_run: Path, capsys: pytest.CaptureFixture, stage: str, name: str, content: str
) -> None:
    (finished_run / stage / name).write_text(content)
    assert main(["report", str(finished_run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"{name} is not what hubpipe writes there (" in err


def test_missing_and_null_fields_are_not_an_error(finished_run: Path) -> None:
    blessing = finished_run / "evaluate" / "blessing.json"
    record = json.loads(blessing.read_text())
    record.update(reasons=None, checks=None, reference=None, thresholds=None)
    blessing.write_text(json.dumps(record))
    (finished_run / "publish" / "publish.json").write_text("{}")
    assert "blessed: good" in render_report(finished_run)
