"""Merging train folders (the parts of a train stage split into one task per backbone and one for the baseline)
into the folder one train stage writes: on hand-made folders, through the execution core, and on real parts."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest

from hubpipe.components.train import executor, merge
from hubpipe.components.train.layout import ARTIFACTS
from hubpipe.components.train.merge import TrainPart, merge_train_folders, merged_results
from hubpipe.pipeline.core.config import load_config
from hubpipe.pipeline.core.errors import StageError
from hubpipe.pipeline.core.execution import Placement, execute, fingerprint_inputs, output_identity, read_manifest
from hubpipe.pipeline.core.stage import StageSpec


def write_part(folder: Path, rows: list[tuple[str, float]], device: str = "CPU", logs_root: str = "") -> Path:
    """A train folder as the train stage writes it, with small stand-in files."""
    for name, accuracy in rows:
        (folder / "models" / name / "serving").mkdir(parents=True)
        (folder / "models" / name / "model.json").write_text(json.dumps({"name": name, "test_accuracy": accuracy}))
        (folder / "models" / name / "serving" / "saved_model.pb").write_bytes(name.encode())
        (folder / "logs" / name / "train").mkdir(parents=True)
        (folder / "logs" / name / "train" / "events.out.tfevents.1").write_text(f"scalars of {name}")
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    (folder / "logs" / f"events.out.tfevents.{logs_root or folder.name}").write_text("hparams experiment")
    summary = {
        "best_model": max(rows, key=lambda row: row[1])[0],
        "device": device,
        "precision": "float32",
        "models": [{"name": name, "kind": "transfer", "test_accuracy": accuracy} for name, accuracy in rows],
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture
def parts(tmp_path: Path) -> list[TrainPart]:
    return [
        TrainPart("lite0", write_part(tmp_path / "p1", [("lite0", 0.8), ("lite0_fine_tuned", 0.85)])),
        TrainPart("lite1", write_part(tmp_path / "p2", [("lite1", 0.9)])),
        TrainPart("scratch_cnn", write_part(tmp_path / "p3", [("scratch_cnn", 0.3)])),
    ]


def test_the_merged_folder_has_the_layout_of_one_train_stage(parts: list[TrainPart], tmp_path: Path) -> None:
    out = tmp_path / "merged"
    summary = merge_train_folders(parts, out)
    names = ["lite0", "lite0_fine_tuned", "lite1", "scratch_cnn"]
    assert sorted(path.name for path in (out / "models").iterdir()) == sorted(names)
    for name in names:
        assert (out / "models" / name / "serving" / "saved_model.pb").read_bytes() == name.encode()
        assert (out / "logs" / name / "train" / "events.out.tfevents.1").read_text() == f"scalars of {name}"
    root_files = [path.name for path in (out / "logs").iterdir() if path.is_file()]
    assert root_files == ["events.out.tfevents.p1"]  # the experiment declaration once, from the first part
    assert json.loads((out / "summary.json").read_text()) == summary
    assert [row["name"] for row in summary["models"]] == names  # in the parts' order
    assert (summary["best_model"], summary["device"], summary["precision"]) == ("lite1", "CPU", "float32")
    assert sorted(path.name for path in out.iterdir()) == sorted(ARTIFACTS.values())


def test_the_first_of_equally_accurate_models_is_the_best_as_in_one_stage(tmp_path: Path) -> None:
    parts = [
        TrainPart("a", write_part(tmp_path / "a", [("a", 0.5)])),
        TrainPart("b", write_part(tmp_path / "b", [("b", 0.5)])),
    ]
    assert merge_train_folders(parts, tmp_path / "merged")["best_model"] == "a"


def test_parts_on_different_devices_say_which_ran_where(tmp_path: Path) -> None:
    parts = [
        TrainPart("a", write_part(tmp_path / "a", [("a", 0.5)], device="GPU")),
        TrainPart("scratch_cnn", write_part(tmp_path / "b", [("scratch_cnn", 0.2)])),
    ]
    assert merge_train_folders(parts, tmp_path / "merged")["device"] == {"a": "GPU", "scratch_cnn": "CPU"}


def test_two_parts_with_a_model_of_the_same_name_are_refused(tmp_path: Path) -> None:
    parts = [
        TrainPart("x", write_part(tmp_path / "x", [("model", 0.5)])),
        TrainPart("y", write_part(tmp_path / "y", [("model", 0.6)])),
    ]
    with pytest.raises(StageError, match="the train parts x and y both trained a model named model"):
        merge_train_folders(parts, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()  # checked before anything is copied


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda folder: (folder / "summary.json").unlink(), r"the train part lite1 has no summary\.json in"),
        (lambda folder: (folder / "summary.json").write_text("{"), r"the train part lite1: .* is not readable JSON"),
        (
            lambda folder: (folder / "summary.json").write_text('{"models": [{"name": 3}]}'),
            r"the train part lite1: .*\.models\[0\]\.name is an integer, expected a string",
        ),
        (
            lambda folder: shutil.rmtree(folder / "models" / "lite1"),
            r"the train part lite1 lists the model lite1 but has no folder",
        ),
    ],
)
def test_a_damaged_part_is_one_line(parts: list[TrainPart], tmp_path: Path, damage, message: str) -> None:
    damage(parts[1].folder)
    with pytest.raises(StageError, match=message) as raised:
        merge_train_folders(parts, tmp_path / "merged")
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "merged" / "summary.json").exists()


def test_a_full_disk_while_copying_is_one_line(parts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(source, target, **_):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(merge.shutil, "copytree", full)
    with pytest.raises(StageError, match=r"copying .*models/lite0 to .* failed: No space left on device"):
        merge_train_folders(parts, tmp_path / "merged")


def test_nothing_to_merge_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="there is no train folder to merge"):
        merge_train_folders([], tmp_path / "merged")


def test_the_key_results_are_those_of_one_stage() -> None:
    def results(models: dict, device: str = "CPU") -> dict:
        best = max(models, key=lambda name: models[name]["test_accuracy"])
        extraction = {name: 1.0 for name in models if name != "scratch_cnn"}
        return {
            "best_model": best,
            "best_test_accuracy": models[best]["test_accuracy"],
            "models": models,
            "feature_extraction_seconds": extraction,
            "embeddings_cached": {name: False for name in extraction},
            "usable_cores": 2,
            "device": device,
        }

    merged = merged_results(
        ["a", "b", "scratch_cnn"],
        [
            results({"a": {"test_accuracy": 0.7, "train_seconds": 1.0}}),
            results({"b": {"test_accuracy": 0.9, "train_seconds": 2.0}}, device="GPU"),
            results({"scratch_cnn": {"test_accuracy": 0.2, "train_seconds": 3.0}}),
        ],
    )
    assert list(merged) == [
        "best_model", "best_test_accuracy", "models", "feature_extraction_seconds", "embeddings_cached",
        "usable_cores", "device",
    ]  # fmt: skip
    assert (merged["best_model"], merged["best_test_accuracy"]) == ("b", 0.9)
    assert list(merged["models"]) == ["a", "b", "scratch_cnn"]
    assert merged["feature_extraction_seconds"] == {"a": 1.0, "b": 1.0}
    assert merged["usable_cores"] == 2
    assert merged["device"] == {"a": "CPU", "b": "GPU", "scratch_cnn": "CPU"}


def collect_spec(names: list[str]) -> StageSpec:
    from hubpipe.pipeline.stages import TRAIN_STAGE

    return StageSpec("train", "hubpipe.components.train.executor:collect", tuple(names), TRAIN_STAGE.sections, ("x",))


def part_stage(folder: Path, results: dict) -> Path:
    """A part folder with a manifest, as a train task leaves it."""
    manifest = {"stage": "train", "fingerprint": folder.name, "results": results, "rejected": None, "files": {}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_collect_runs_through_the_execution_core_as_the_train_stage(parts, tmp_path, monkeypatch) -> None:
    """The collected folder's manifest is a train stage's: stage, artifacts, merged results, each part's id."""
    monkeypatch.setattr("hubpipe.pipeline.core.execution.code_version", lambda packages: "code")
    for part in parts:
        models = json.loads((part.folder / "summary.json").read_text())["models"]
        part_stage(part.folder, {"models": {row["name"]: {"test_accuracy": row["test_accuracy"]} for row in models}})
    spec = collect_spec([part.name for part in parts])
    placement = Placement(
        {part.name: part.folder for part in parts}, tmp_path / "out", tmp_path / "cache", tmp_path / "hubpipe-cache"
    )
    config = load_config()
    inputs = fingerprint_inputs(spec, config, placement)
    result, manifest = execute(spec, config, placement, inputs)
    assert read_manifest(tmp_path / "out") == manifest
    assert manifest["stage"] == "train" and manifest["artifacts"] == ARTIFACTS
    assert manifest["results"]["best_model"] == "lite1"
    assert list(manifest["results"]["models"]) == ["lite0", "lite0_fine_tuned", "lite1", "scratch_cnn"]
    assert manifest["inputs"]["upstream"] == {
        part.name: output_identity(read_manifest(part.folder) or {}) for part in parts
    }
    assert "summary.json" in manifest["files"] and "models/lite1/serving/saved_model.pb" in manifest["files"]
    assert result.results == manifest["results"]


def test_split_training_merges_into_what_one_stage_trains(tmp_path: Path, ingest_dir: Path, tiny_backbone: Path):
    """The train stage run once per part (narrowed as the Kubeflow tasks narrow it: one backbone with the
    baseline off, no backbone with the baseline on) and merged gives the models, rows and accuracies of one
    train stage that trains them all."""
    from hubpipe.pipeline.core.config import apply_overrides
    from hubpipe.pipeline.core.stage import StageContext
    from hubpipe.pipeline.kubeflow.fan_out import narrow_to_part, train_parts

    config = apply_overrides(
        load_config(),
        {
            "train.backbones": [str(tiny_backbone)],
            "train.epochs": 2,
            "train.batch_size": 8,
            "train.baseline_epochs": 1,
            "train.precision": "float32",
            "data.image_size": 32,
        },
    )

    def train(name: str, narrowed) -> Path:
        output = tmp_path / name
        output.mkdir()
        context = StageContext(
            name,
            narrowed,
            {"ingest": ingest_dir},
            output,
            tmp_path / f"cache-{name}",
            tmp_path / "hubpipe-cache",
            "test",
        )
        part_stage(output, executor.run(context).results)
        return output

    whole = json.loads((train("whole", config) / "summary.json").read_text())
    arguments = [(part.model, part.argument(config.train)) for part in train_parts(config.train)]
    assert [(name, argument["backbones"], argument["baseline"]) for name, argument in arguments] == [
        ("tiny_backbone", [str(tiny_backbone)], False),
        ("scratch_cnn", [], True),
    ]
    folders = [(name, train(name, narrow_to_part(config, argument))) for name, argument in arguments]
    context = StageContext(
        "train",
        config,
        dict(folders),
        tmp_path / "merged",
        tmp_path / "cache-merged",
        tmp_path / "hubpipe-cache",
        "test",
    )
    (tmp_path / "merged").mkdir()
    result = executor.collect(context)
    merged = json.loads((tmp_path / "merged" / "summary.json").read_text())
    fields = ("name", "kind", "mode", "backbone", "test_accuracy", "epochs")
    assert [[row[f] for f in fields] for row in merged["models"]] == [
        [row[f] for f in fields] for row in whole["models"]
    ]
    assert merged["best_model"] == whole["best_model"] == result.results["best_model"]
    for name in ("tiny_backbone", "scratch_cnn"):
        assert (tmp_path / "merged" / "models" / name / "serving" / "saved_model.pb").is_file()
        assert list((tmp_path / "merged" / "logs" / name / "validation").glob("events.out.tfevents.*"))
