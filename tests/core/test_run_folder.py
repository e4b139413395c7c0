"""What hubpipe may touch in an --output folder: only a folder it claimed, and there only what it created."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import fake_stages
import pytest

from hubpipe.pipeline.core.config import load_config
from hubpipe.pipeline.core.errors import UsageError
from hubpipe.pipeline.core.execution import killed_run_leftovers
from hubpipe.pipeline.core.run_folder import RUN_MARKER
from hubpipe.pipeline.local_runner import run_pipeline

#: The user's files of issue 22's report, which a run into their folder removed as a killed run's leftovers.
USER_FILES = (".tmp-notes/todo.txt", ".old-photos/cat.jpg", ".tmp-draft.txt", "cache/sub/.thesis.tmp")
STAGES = [stage.name for stage in fake_stages.CHAIN]


def users_folder(folder: Path) -> Path:
    for name in USER_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"the user's {name}")
    return folder


def surviving(folder: Path) -> list[str]:
    return [name for name in USER_FILES if (folder / name).is_file()]


def hubpipe(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HUBPIPE_CACHE_DIR": str(tmp_path / "hubpipe-cache")}
    command = [sys.executable, "-m", "hubpipe.pipeline.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, env=env, timeout=600)


@pytest.mark.e2e
def test_a_run_into_the_users_folder_is_refused_and_forced_leaves_their_files_alone(tmp_path: Path) -> None:
    from hubpipe.data.sample import SampleSpec, generate

    data = generate(tmp_path / "data", SampleSpec(train_per_class=2, test_per_class=1))
    folder = users_folder(tmp_path / "mine")
    args = ["run", "--until", "ingest", "--data", str(data), "--output", str(folder)]

    refused = hubpipe(tmp_path, *args)
    assert refused.returncode == 2, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "is not a hubpipe run folder" in errors[0] and "--force-output" in errors[0]
    assert sorted(p.name for p in folder.iterdir()) == [".old-photos", ".tmp-draft.txt", ".tmp-notes", "cache"]

    forced = hubpipe(tmp_path, *args, "--force-output")
    assert forced.returncode == 0, forced.stderr
    assert surviving(folder) == list(USER_FILES)
    assert (folder / RUN_MARKER).is_file() and (folder / "ingest" / "manifest.json").is_file()

    again = hubpipe(tmp_path, *args)  # a run folder now: no flag needed, and still nothing of the user's removed
    assert again.returncode == 0, again.stderr
    assert [s["status"] for s in json.loads((folder / "run.json").read_text())["stages"]] == ["cached"]
    assert surviving(folder) == list(USER_FILES)


def test_the_python_api_refuses_the_same_folder_and_names_its_keyword(tmp_path: Path) -> None:
    import hubpipe

    folder = users_folder(tmp_path / "mine")
    with pytest.raises(UsageError, match=r"force_output=True") as raised:
        hubpipe.run(tmp_path / "data-not-needed", output=folder)
    assert raised.value.exit_code == 2
    assert surviving(folder) == list(USER_FILES) and not (folder / ".lock").exists()


def test_forced_runs_sweep_only_the_exact_names_of_their_own_temporaries(tmp_path: Path, counts: Path) -> None:
    folder = users_folder(tmp_path / "mine")
    for name in (".tmp-notes-12", ".old-photos-3", ".tmp-ingest", "cache/.x.tmp-4", "cache/sub/.tmp-train-5"):
        (folder / name).mkdir(parents=True)  # look like hubpipe's, but no stage / no cache folder of its own
    with pytest.raises(UsageError, match="is not empty and is not a hubpipe run folder"):
        run_pipeline(load_config(), folder, fake_stages.CHAIN)

    run_pipeline(load_config(), folder, fake_stages.CHAIN, force_output=True)
    own = [folder / ".tmp-ingest-77", folder / ".old-train-78", folder / ".run.json.k3j4h5g6.tmp"]
    cache = folder / "cache"
    own += [cache / "embeddings" / "k" / ".tmp-test-9", cache / "checkpoints" / ".h.json.ab12.tmp"]
    for path in own:
        path.mkdir(parents=True)
    assert sorted(killed_run_leftovers(folder, STAGES)) == sorted(own)

    report = run_pipeline(load_config(), folder, fake_stages.CHAIN)
    assert report.status == "succeeded"
    assert surviving(folder) == list(USER_FILES)
    assert not any(path.exists() for path in own)
    for name in (".tmp-notes-12", ".old-photos-3", ".tmp-ingest", "cache/.x.tmp-4", "cache/sub/.tmp-train-5"):
        assert (folder / name).is_dir(), name


def test_a_run_folder_of_an_earlier_version_is_still_a_run_folder(tmp_path: Path, counts: Path) -> None:
    folder = tmp_path / "run"
    run_pipeline(load_config(), folder, fake_stages.CHAIN)
    (folder / RUN_MARKER).unlink()  # what versions before the marker left: run.json, stage folders, leftovers
    (folder / ".tmp-train-99").mkdir()
    assert killed_run_leftovers(folder, STAGES) == []  # no marker: nothing is anyone's to remove

    report = run_pipeline(load_config(), folder, fake_stages.CHAIN)
    assert report.status == "succeeded"
    assert (folder / RUN_MARKER).is_file() and not (folder / ".tmp-train-99").exists()


def test_an_empty_or_new_folder_needs_no_flag(tmp_path: Path, counts: Path) -> None:
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        assert run_pipeline(load_config(), folder, fake_stages.CHAIN).status == "succeeded"
        assert (folder / RUN_MARKER).is_file()


def test_the_swept_cache_folders_are_the_ones_the_stages_fill() -> None:
    from hubpipe.components.train.session import CHECKPOINTS_DIR, DECODED_DIR
    from hubpipe.components.train.trained import TRAINED_DIR
    from hubpipe.pipeline.core.run_folder import CACHE_FOLDERS

    # "embeddings": the feature-vector cache of versions before the vector store, still swept in their folders
    assert sorted(CACHE_FOLDERS) == sorted(["embeddings", CHECKPOINTS_DIR, DECODED_DIR, TRAINED_DIR])
