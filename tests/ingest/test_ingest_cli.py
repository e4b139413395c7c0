"""``hubpipe run --until validate`` end to end, and user mistakes that must end in one line without a traceback."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import image_corpus as corpus
import pytest

pytestmark = pytest.mark.e2e


def hubpipe(tmp_path: Path, *args: str, cache: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HUBPIPE_CACHE_DIR": str(cache or tmp_path / "hubpipe-cache")}
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
        (lambda tmp: _zip(tmp / "evil.zip", {"../../evil.jpg": corpus.jpeg(1)}), 2, "no images found"),
        (lambda tmp: corpus.write(tmp / "fake.zip", b"not a zip"), 2, "not a zip or tar archive"),
        (lambda tmp: corpus.simple_dataset(tmp / "one", {"cats": (3, 1)}), 2, "only one class"),
    ],
    ids=["missing-path", "zip-with-dotdot", "fake-zip", "single-class"],
)
def test_user_mistakes_end_in_one_line(tmp_path: Path, make_source, code: int, message: str) -> None:
    source = make_source(tmp_path)
    result = hubpipe(tmp_path, "run", "--until", "ingest", "--data", str(source), "--output", str(tmp_path / "out"))
    assert result.returncode == code
    assert message in one_line_error(result)
    assert not list(tmp_path.rglob("evil.jpg"))


@pytest.fixture
def small_disk(tmp_path: Path, missing_tool: Callable[[str], None]) -> Iterator[Callable[[str], Path]]:
    """Call with a size ("6m") to mount a tmpfs of that size (or resize it), which is unmounted at the end."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = False

    def size(value: str) -> Path:
        nonlocal mounted
        if not shutil.which("mount"):
            missing_tool("no mount command to make a small tmpfs")
        options = ["-o", f"remount,size={value}"] if mounted else ["-t", "tmpfs", "-o", f"size={value}", "tmpfs"]
        result = subprocess.run(["mount", *options, str(mount_point)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            missing_tool(f"cannot mount a tmpfs here (root needed): {result.stderr.strip()}")
        mounted = True
        return mount_point

    yield size
    if mounted:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_a_full_cache_disk_fails_the_run_in_one_line_and_a_larger_one_gets_every_image(
    tmp_path: Path, small_disk: Callable[[str], Path]
) -> None:
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for i in range(60):
            padding = b"\0" * (2 * 1024 * 1024) if i % 10 == 0 else b""  # 6 valid JPEGs of 2 MB: 12 MB in all
            bundle.writestr(f"pets/{('cat', 'dog')[i % 2]}/{i:03d}.jpg", corpus.jpeg(i) + padding)
    cache = small_disk("6m")
    args = ["run", "--until", "ingest", "--data", str(archive)]
    full = hubpipe(tmp_path, *args, "--output", str(tmp_path / "first"), cache=cache)
    assert full.returncode == 1, full.stderr
    message = r"error: no space left on device while extracting pets\.zip into \S+/sources/extracted "
    assert re.fullmatch(message + r"\(set HUBPIPE_CACHE_DIR to a larger disk\)", one_line_error(full))
    assert list((cache / "sources" / "extracted").iterdir()) == []  # nothing cached, nothing left behind

    small_disk("64m")  # the disk is enlarged: the same cache folder, a new run folder
    again = hubpipe(tmp_path, *args, "--output", str(tmp_path / "second"), cache=cache)
    assert again.returncode == 0, again.stderr
    ingest = json.loads((tmp_path / "second" / "run.json").read_text())["stages"][0]["results"]
    assert (ingest["files_seen"], ingest["examples_written"], ingest["quarantined"]) == (60, 60, 0)


def test_a_full_run_folder_disk_while_writing_shards_is_one_plain_line(
    tmp_path: Path, small_disk: Callable[[str], Path]
) -> None:
    """TensorFlow's file system reports a full disk without an errno (a ResourceExhaustedError): the line still
    says what the machine ran out of, and which shard it was writing."""
    data = tmp_path / "pets"
    for i in range(24):  # about 3 MB of images for a 1 MB disk
        corpus.write(data / ("cat", "dog")[i % 2] / f"{i:03d}.jpg", corpus.jpeg(i, (400, 400)))
    out = small_disk("1m")
    full = hubpipe(tmp_path, "run", "--until", "ingest", "--data", str(data), "--output", str(out / "run"))
    assert full.returncode == 1, full.stderr
    line = one_line_error(full)
    assert re.fullmatch(r"error: no space left on device while writing \S+/examples/\S+\.tfrecord", line), line


LONGEST_LOG_LINE = 1000


def _many_classes(root: Path, first: int, count: int, empty: int = 0) -> Path:
    """``count`` class folders of two tiny JPEGs each (some land in test only), and ``empty`` empty ones."""
    for label in range(first, first + count):
        for i in range(2):
            corpus.write(root / f"class_{label:05d}" / f"{i}.jpg", corpus.jpeg(label * 10 + i, (8, 8)))
    for i in range(empty):
        (root / f"empty_{i:03d}").mkdir(parents=True)
    return root


def test_a_dataset_of_many_classes_logs_no_long_line(tmp_path: Path) -> None:
    """Long lists (empty folders, quarantined files, classes with few images, classes the schema lacks or
    misses) are summarised in the log and in the error line, whatever the number of classes."""
    first = _many_classes(tmp_path / "first", 0, 150, empty=30)
    ran = hubpipe(tmp_path, "run", "--until", "validate", "--data", str(first), "--output", str(tmp_path / "a"))
    assert ran.returncode == 0, ran.stderr[-2000:]
    schema = tmp_path / "a" / "validate" / "schema.pbtxt"
    other = _many_classes(tmp_path / "other", 150, 150)
    args = ["run", "--until", "validate", "--data", str(other), "--output", str(tmp_path / "b")]
    rejected = hubpipe(tmp_path, *args, "--set", f"validate.schema={schema}")
    assert rejected.returncode == 3, rejected.stderr[-2000:]
    for result in (ran, rejected):
        longest = max(result.stderr.splitlines(), key=len)
        assert len(longest) <= LONGEST_LOG_LINE, longest[:300]
    assert "empty class folders: empty_000, empty_001, empty_002, empty_003, empty_004 ... and 25 more" in ran.stderr
    assert "classes with fewer than 10 training images (" in ran.stderr
    error = one_line_error(rejected)
    assert "unexpected_classes" in error and "missing_classes" in error and " ... and " in error
