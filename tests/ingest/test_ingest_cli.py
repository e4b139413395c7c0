"""``hubpipe run --until validate`` end to end, and user mistakes that must end in one line without a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import image_corpus as corpus
import pytest

pytestmark = pytest.mark.e2e


def hubpipe(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HUBPIPE_CACHE_DIR": str(tmp_path / "hubpipe-cache")}
    command = [sys.executable, "-m", "hubpipe.pipeline.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, env=env, timeout=600)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_run_until_validate_then_cached_then_rejected_by_a_curated_schema(tmp_path: Path) -> None:
    data = corpus.simple_dataset(tmp_path / "pets", {"cats": (10, 3), "dogs": (10, 3)})
    corpus.write(data / "train" / "cats" / "broken.jpg", b"not an image")
    out = tmp_path / "run"
    first = hubpipe(tmp_path, "run", "--until", "validate", "--data", str(data), "--output", str(out))
    assert first.returncode == 0, first.stderr
    report = json.loads((out / "run.json").read_text())
    stages = {stage["name"]: stage for stage in report["stages"]}
    assert [stages[name]["status"] for name in ("ingest", "validate")] == ["ran", "ran"]
    ingest = stages["ingest"]["results"]
    assert (ingest["files_seen"], ingest["examples_written"], ingest["quarantined"]) == (27, 26, 1)
    assert ingest["quarantined_by_reason"] == {"not_an_image": 1}
    assert "quarantine: 1 not_an_image" in first.stderr
    assert (out / "validate" / "report.html").is_file()

    again = hubpipe(tmp_path, "run", "--until", "validate", "--data", str(data), "--output", str(out))
    assert again.returncode == 0, again.stderr
    assert [s["status"] for s in json.loads((out / "run.json").read_text())["stages"]] == ["cached", "cached"]

    curated = tmp_path / "schema.pbtxt"
    curated.write_text((out / "validate" / "schema.pbtxt").read_text().replace('value: "dogs"\n', ""))
    args = ["run", "--until", "validate", "--data", str(data), "--output", str(out)]
    rejected = hubpipe(tmp_path, *args, "--set", f"validate.schema={curated}")
    assert rejected.returncode == 3
    assert "unexpected_classes" in one_line_error(rejected)
    assert (out / "validate" / "anomalies.json").is_file()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, content in members.items():
            bundle.writestr(name, content)
    return path


@pytest.mark.parametrize(
    ("make_source", "code", "message"),
    [
        (lambda tmp: tmp / "does" / "not" / "exist", 2, "does not exist"),
        (lambda tmp: _zip(tmp / "evil.zip", {"../../evil.jpg": corpus.jpeg(1)}), 1, "no images found"),
        (lambda tmp: corpus.write(tmp / "fake.zip", b"not a zip"), 1, "not a zip or tar archive"),
        (lambda tmp: corpus.simple_dataset(tmp / "one", {"cats": (3, 1)}), 1, "only one class"),
    ],
    ids=["missing-path", "zip-with-dotdot", "fake-zip", "single-class"],
)
def test_user_mistakes_end_in_one_line(tmp_path: Path, make_source, code: int, message: str) -> None:
    source = make_source(tmp_path)
    result = hubpipe(tmp_path, "run", "--until", "ingest", "--data", str(source), "--output", str(tmp_path / "out"))
    assert result.returncode == code
    assert message in one_line_error(result)
    assert not list(tmp_path.rglob("evil.jpg"))
