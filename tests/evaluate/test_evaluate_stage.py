"""The evaluate executor on a hand-built run: metrics, checks, blessing, pictures and TensorBoard content."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from fake_run import CLASSES, FakeWorld

from hubpipe.components.common import publish_root
from hubpipe.components.evaluate import executor
from hubpipe.components.evaluate.layout import RUN_HPARAM
from hubpipe.components.evaluate.tensorboard_logs import read_session_hparams
from hubpipe.pipeline.core.config import load_config
from hubpipe.pipeline.core.errors import DataError, PublishRootDamaged, StageError
from hubpipe.pipeline.core.runtime import import_tensorflow
from hubpipe.pipeline.core.stage import StageContext


def context(
    world: FakeWorld, train: Path, out: Path, root: Path, cache: Path | None = None, **settings
) -> StageContext:
    out.mkdir(parents=True)
    store = str(cache or world.cache)
    config = load_config(overrides={"publish.root": str(root), "train.vector_store": store, **settings})
    return StageContext(
        name="evaluate",
        config=config,
        inputs={"ingest": world.ingest, "train": train},
        output_dir=out,
        cache_dir=cache or world.cache,
        cache_root=world.cache / "hubpipe-cache",
        code_version="test",
    )


def blessing_of(out: Path) -> dict:
    return json.loads((out / "blessing.json").read_text())


def publish_by_hand(root: Path, version: str, model_dir: Path, labels: list[str], key: str = "another") -> None:
    """A published version as the publish stage leaves it (the layout is tested with the publish stage)."""
    folder = root / "models" / version
    shutil.copytree(model_dir, folder)
    (folder / "labels.txt").write_text("".join(f"{label}\n" for label in labels))
    record = {"version": version, "model": model_dir.name, "model_key": key, "reference": None}
    (folder / "version.json").write_text(json.dumps(record))
    (root / "models" / "LATEST").write_text(version + "\n")


def refuse(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, what: str) -> None:
    """Makes ``owner.name`` fail the test when it is called: ``what`` must not happen."""

    def fail(*args, **kwargs):
        raise AssertionError(what)

    monkeypatch.setattr(owner, name, fail)


def test_weak_candidate_fails_and_the_good_one_is_blessed(world: FakeWorld, tmp_path: Path) -> None:
    out = tmp_path / "evaluate"
    result = executor.run(context(world, world.train_good_and_weak, out, tmp_path / "published"))

    assert result.results["blessed"] == "good"
    assert result.results["models"]["good"] == {"accuracy": 0.8333, "macro_f1": 0.8333}
    assert result.results["models"]["weak"]["accuracy"] == 0.0
    assert (result.results["checks_failed"], result.results["checks_skipped"]) == (2, 2)
    assert (out / "BLESSED").is_file() and not (out / "NOT_BLESSED").exists()
    assert result.artifacts["marker"] == "BLESSED"

    blessing = blessing_of(out)
    assert blessing["blessed_model"]["name"] == "good" and len(blessing["blessed_model"]["model_key"]) == 64
    weak_checks = {c["name"]: c for c in blessing["checks"] if c["candidate"] == "weak"}
    low, high = weak_checks["min_accuracy"].pop("interval")
    assert low == 0.0 and high == pytest.approx(0.1759, abs=1e-4)  # Wilson, 0 of 18
    assert weak_checks["min_accuracy"] == {
        "candidate": "weak",
        "name": "min_accuracy",
        "value": 0.0,
        "p_value": None,
        "threshold": 0.5,
        "rule": "accuracy >= 0.5 (point estimate: 18 test images are fewer than the 100 an interval needs to show it)",
        "decided_by": "point",
        "passed": False,
        "detail": "accuracy 0.0000 (0/18), 95% interval [+0.0000, +0.1759]: +0.0000 < 0.5",
        "skipped": False,
    }
    assert blessing["statistics"]["min_test_images_to_show"] == 100
    assert blessing["candidates"][0]["accuracy_interval"][0] < blessing["candidates"][0]["accuracy"]
    assert weak_checks["max_drop_vs_blessed"]["skipped"] is True
    assert blessing["reference"] == {
        "version": None,
        "method": "",
        "skip_reason": "no blessed model in the publish root yet",
        "metrics": None,
        "latest_seen": None,
    }
    assert [b["name"] for b in blessing["baselines"]] == ["scratch_cnn"]
    assert blessing["publish_root"] == str(tmp_path / "published")


def test_metrics_and_pictures_are_written_per_model(world: FakeWorld, tmp_path: Path) -> None:
    out = tmp_path / "evaluate"
    executor.run(context(world, world.train_good_and_weak, out, tmp_path / "published"))

    metrics = json.loads((out / "metrics" / "good.json").read_text())
    assert metrics["confusion_matrix"] == [[5, 1, 0], [0, 5, 1], [1, 0, 5]]
    assert [c["name"] for c in metrics["per_class"]] == CLASSES
    assert metrics["top5_accuracy"] == 1.0 and metrics["log_loss"] > 0
    for model in ("good", "weak", "scratch_cnn"):
        for picture in ("confusion_matrix", "misclassified"):
            assert (out / "images" / model / f"{picture}.png").read_bytes().startswith(b"\x89PNG")


def test_tensorboard_tree_has_sessions_images_and_projector(world: FakeWorld, tmp_path: Path) -> None:
    out = tmp_path / "evaluate"
    executor.run(context(world, world.train_good_and_weak, out, tmp_path / "published"))
    board = out / "tensorboard"
    evaluation = board / "good" / "evaluation"

    hparams = read_session_hparams(import_tensorflow(), board / "good")
    assert hparams["model"] == "good" and hparams["backbone"] == "mean_colour"
    assert hparams[RUN_HPARAM] == blessing_of(out)["evaluation_id"]
    assert list(evaluation.glob("events.out.tfevents.*"))
    assert 'tensor_name: "embedding/.ATTRIBUTES/VARIABLE_VALUE"' in (evaluation / "projector_config.pbtxt").read_text()
    metadata = (evaluation / "metadata.tsv").read_text().splitlines()
    assert metadata[0] == "label\tpredicted\tcorrect\tid" and len(metadata) == 1 + 3 * 6
    assert (evaluation / "checkpoint").read_text().startswith('model_checkpoint_path: "embedding.ckpt-1"')
    assert not (board / "scratch_cnn" / "evaluation" / "projector_config.pbtxt").exists()


def summaries(folder: Path) -> dict[str, object]:
    """The last value of each text (str) and scalar (float) tag in a TensorBoard run folder."""
    tf = import_tensorflow()
    found: dict[str, object] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                if array.size == 1:  # images are several strings
                    found[value.tag] = array.item().decode() if array.dtype == object else float(array)
    return found


def test_tensorboard_shows_the_intervals_of_accuracies_and_checks(world: FakeWorld, tmp_path: Path) -> None:
    out = tmp_path / "evaluate"
    executor.run(context(world, world.train_good_and_weak, out, tmp_path / "published"))
    logged = summaries(out / "tensorboard" / "good" / "evaluation")
    low, high = json.loads((out / "metrics" / "good.json").read_text())["accuracy_interval"]
    assert logged["test_accuracy_low"] == pytest.approx(low) and logged["test_accuracy_high"] == pytest.approx(high)
    assert logged["test_accuracy"] == pytest.approx(15 / 18) and low < 15 / 18 < high
    assert f"95% Wilson interval [{low:.4f}, {high:.4f}]" in logged["per_class"]
    margin = next(line for line in logged["checks"].splitlines() if line.startswith("| margin_over_baseline"))
    check = next(
        c for c in blessing_of(out)["checks"] if c["candidate"] == "good" and c["name"] == "margin_over_baseline"
    )
    low, high = check["interval"]
    assert f"[{low:+.4f}, {high:+.4f}]" in margin and f"{check['p_value']:.3g}" in margin and "passed" in margin


def test_the_hparams_experiment_puts_the_test_metrics_first(world: FakeWorld, tmp_path: Path) -> None:
    """TensorBoard ticks the first five declared metrics; undeclared, it sorted the test metrics last."""
    from tensorboard.plugins.hparams import metadata

    out = tmp_path / "evaluate"
    executor.run(context(world, world.train_good_and_weak, out, tmp_path / "published"))
    tf = import_tensorflow()
    (events,) = (out / "tensorboard").glob("events.out.tfevents.*")
    (value,) = [
        v
        for event in tf.compat.v1.train.summary_iterator(str(events))
        for v in event.summary.value
        if v.tag == metadata.EXPERIMENT_TAG
    ]
    experiment = metadata.parse_experiment_plugin_data(value.metadata.plugin_data.content)
    first_five = [(m.name.group, m.name.tag) for m in experiment.metric_infos[:5]]
    assert first_five[:2] == [("evaluation", "test_accuracy"), ("evaluation", "test_macro_f1")]
    assert {tag for _, tag in first_five} == {
        "test_accuracy",
        "test_macro_f1",
        "test_log_loss",
        "test_top5_accuracy",
        "blessed",
    }
    hparams = {info.name: info.differs for info in experiment.hparam_infos}
    assert hparams[RUN_HPARAM] is True and hparams["model"] is True and hparams["backbone"] is True
    assert hparams["epochs"] is False  # the same for every model of this run
    assert set(hparams) == set(read_session_hparams(tf, out / "tensorboard" / "good"))


def test_margin_check_is_skipped_without_a_baseline(world: FakeWorld, tmp_path: Path) -> None:
    out = tmp_path / "evaluate"
    executor.run(context(world, world.train_without_baseline, out, tmp_path / "published"))
    margin = next(c for c in blessing_of(out)["checks"] if c["name"] == "margin_over_baseline")
    assert margin["skipped"] is True and "train.baseline is off" in margin["detail"]
    assert blessing_of(out)["blessed"] == "good"


def test_thresholds_come_from_the_config(world: FakeWorld, tmp_path: Path) -> None:
    out = tmp_path / "evaluate"
    ctx = context(world, world.train_good_and_weak, out, tmp_path / "published", **{"evaluate.min_accuracy": 0.9})
    result = executor.run(ctx)
    assert result.results["blessed"] is None
    assert (out / "NOT_BLESSED").is_file() and not (out / "BLESSED").exists()
    assert "no candidate passed every check" in blessing_of(out)["reasons"][0]


@pytest.mark.parametrize("cached", [True, False], ids=["head-on-cached-vectors", "stored-predictions"])
def test_last_blessed_model_is_scored_on_this_test_split(world: FakeWorld, tmp_path: Path, cached: bool) -> None:
    root = tmp_path / "published"
    publish_by_hand(root, "v1", world.train_good_and_weak / "models" / "good", CLASSES)
    cache = world.cache if cached else tmp_path / "empty-cache"
    decisions = {}
    for rule in ("point", "interval"):
        out = tmp_path / f"evaluate-{rule}"
        result = executor.run(context(world, world.train_fair, out, root, cache=cache, **{"evaluate.rule": rule}))
        reference = blessing_of(out)["reference"]
        assert reference["version"] == "v1" and result.results["compared_with"] == "v1"
        assert reference["method"] == ("cached features" if cached else "stored predictions")
        assert reference["metrics"]["accuracy"] == pytest.approx(5 / 6)
        drop = next(c for c in blessing_of(out)["checks"] if c["name"] == "max_drop_vs_blessed")
        assert drop["value"] == pytest.approx(5 / 6 - 11 / 18)
        # paired image by image: 5 test images only the blessed model gets right, 1 only the candidate
        assert (
            drop["p_value"] == pytest.approx(2 * (1 + 6) / 2**6) and "(5 test images only the blessed" in drop["detail"]
        )
        decisions[rule] = (drop["passed"], result.results["blessed"])
    assert decisions["point"] == (False, None)  # 22 points down on the point estimate ...
    assert decisions["interval"] == (True, "fair")  # ... but on 18 test images not shown worse than 0.02


def test_blessed_model_with_classes_in_another_order_is_compared_by_name(world: FakeWorld, tmp_path: Path) -> None:
    root = tmp_path / "published"
    model = tmp_path / "reordered"
    shutil.copytree(world.train_good_and_weak / "models" / "weak", model)  # predicts the next class ...
    publish_by_hand(root, "v1", model, [CLASSES[2], CLASSES[0], CLASSES[1]])  # ... so relabelled it is right
    out = tmp_path / "evaluate"
    executor.run(context(world, world.train_better, out, root))
    assert blessing_of(out)["reference"]["metrics"]["accuracy"] == pytest.approx(5 / 6)


def test_blessed_model_of_other_classes_is_not_compared(world: FakeWorld, tmp_path: Path) -> None:
    root = tmp_path / "published"
    publish_by_hand(root, "v1", world.train_good_and_weak / "models" / "good", ["cat", "dog", "fish"])
    out = tmp_path / "evaluate"
    executor.run(context(world, world.train_better, out, root))
    blessing = blessing_of(out)
    assert blessing["reference"]["skip_reason"] == "the blessed model v1 was trained on other classes"
    drop = next(c for c in blessing["checks"] if c["name"] == "max_drop_vs_blessed")
    assert drop["skipped"] is True and "other classes" in drop["detail"]
    assert blessing["blessed"] == "better"


def test_external_inputs_name_the_blessed_version_to_compare_with(world: FakeWorld, tmp_path: Path) -> None:
    root = tmp_path / "published"
    config = load_config(overrides={"publish.root": str(root)})
    run_dir = tmp_path / "run"
    shutil.copytree(world.train_better, run_dir / "train")
    assert executor.external_inputs(config, {"train": run_dir / "train"}, None) == {
        "publish_root": str(root),
        "compared_with": None,
    }
    publish_by_hand(root, "v1", world.train_good_and_weak / "models" / "good", CLASSES)
    assert executor.external_inputs(config, {"train": run_dir / "train"}, None)["compared_with"] == "v1"
    assert publish_root.read_latest_id(str(root)) == "v1"


def test_train_output_without_candidates_is_an_error(world: FakeWorld, tmp_path: Path) -> None:
    train = tmp_path / "train"
    shutil.copytree(world.train_good_and_weak, train)
    for name in ("good", "weak"):
        shutil.rmtree(train / "models" / name)
    with pytest.raises(StageError, match="no transfer model"):
        executor.run(context(world, train, tmp_path / "evaluate", tmp_path / "published"))


def test_missing_ingest_labels_are_a_data_error(world: FakeWorld, tmp_path: Path) -> None:
    ingest = tmp_path / "ingest"
    shutil.copytree(world.ingest, ingest)
    (ingest / "labels.txt").unlink()
    ctx = context(world, world.train_good_and_weak, tmp_path / "evaluate", tmp_path / "published")
    with pytest.raises(DataError, match=r"labels\.txt"):
        executor.run(StageContext(**{**vars(ctx), "inputs": {"ingest": ingest, "train": world.train_good_and_weak}}))


def test_no_model_file_of_the_publish_root_is_run(
    world: FakeWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse(monkeypatch, import_tensorflow().saved_model, "load", "a SavedModel from the publish root is loaded")
    root = tmp_path / "published"
    publish_by_hand(root, "v1", world.train_good_and_weak / "models" / "good", CLASSES)
    shutil.rmtree(root / "models" / "v1" / "serving")
    executor.run(context(world, world.train_fair, tmp_path / "evaluate", root, cache=tmp_path / "empty-cache"))
    reference = blessing_of(tmp_path / "evaluate")["reference"]
    assert reference["method"] == "stored predictions" and reference["metrics"]["accuracy"] == pytest.approx(5 / 6)


def _keep_predictions(folder: Path, rows: slice) -> None:
    path = folder / "test_predictions.npz"
    with np.load(path) as stored:
        kept = {name: stored[name][rows] for name in stored.files}
    np.savez(path, **kept)


def test_stored_predictions_that_do_not_cover_the_split_skip_the_check(world: FakeWorld, tmp_path: Path) -> None:
    root = tmp_path / "published"
    publish_by_hand(root, "v1", world.train_good_and_weak / "models" / "good", CLASSES)
    _keep_predictions(root / "models" / "v1", slice(0, 12))
    out = tmp_path / "evaluate"
    executor.run(context(world, world.train_fair, out, root, cache=tmp_path / "empty-cache"))
    reference = blessing_of(out)["reference"]
    expected = "cover 12 of the 18 test examples"
    assert reference["metrics"] is None and expected in reference["skip_reason"]
    drop = next(c for c in blessing_of(out)["checks"] if c["name"] == "max_drop_vs_blessed")
    assert drop["skipped"] is True and expected in drop["detail"]


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("missing_predictions", "has no test_predictions.npz"),
        ("unreadable_predictions", "cannot be scored (cannot read test predictions"),
        ("missing_model_json", "has no model.json"),
        ("malformed_model_json", "has a malformed model.json"),
        ("missing_labels", "has no labels.txt"),
    ],
)
def test_a_blessed_version_that_cannot_be_scored_stops_the_evaluation(
    world: FakeWorld, tmp_path: Path, damage: str, expected: str
) -> None:
    root = tmp_path / "published"
    publish_by_hand(root, "v1", world.train_good_and_weak / "models" / "good", CLASSES)
    folder = root / "models" / "v1"
    if damage == "missing_predictions":
        (folder / "test_predictions.npz").unlink()
    elif damage == "unreadable_predictions":
        (folder / "test_predictions.npz").write_bytes(b"not an npz")
    elif damage == "missing_model_json":
        (folder / "model.json").unlink()
    elif damage == "malformed_model_json":
        (folder / "model.json").write_text("[1, 2")
    else:
        (folder / "labels.txt").unlink()
    ctx = context(world, world.train_fair, tmp_path / "evaluate", root, cache=tmp_path / "empty-cache")
    with pytest.raises(
        PublishRootDamaged, match=re.escape(f"the blessed version v1 (the last blessed model) {expected}")
    ):
        executor.run(ctx)
    assert not (tmp_path / "evaluate" / "blessing.json").exists()


def test_a_head_that_is_missing_stops_the_evaluation(world: FakeWorld, tmp_path: Path) -> None:
    """With this run's cached vectors the blessed head is what scores it: without it, the gate cannot run."""
    root = tmp_path / "published"
    publish_by_hand(root, "v1", world.train_good_and_weak / "models" / "good", CLASSES)
    shutil.rmtree(root / "models" / "v1" / "head")
    with pytest.raises(PublishRootDamaged, match=r"the blessed version v1 .* cannot be scored"):
        executor.run(context(world, world.train_fair, tmp_path / "evaluate", root, cache=world.cache))


def test_the_blessed_head_is_built_by_code_and_only_its_weights_are_read(
    world: FakeWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tf = import_tensorflow()
    refuse(monkeypatch, tf.keras.models, "load_model", "load_model deserialises layers from the publish root")
    root = tmp_path / "published"
    publish_by_hand(root, "v1", world.train_good_and_weak / "models" / "good", CLASSES)
    executor.run(context(world, world.train_fair, tmp_path / "evaluate", root, cache=world.cache))
    reference = blessing_of(tmp_path / "evaluate")["reference"]
    assert reference["method"] == "cached features" and reference["metrics"]["accuracy"] == pytest.approx(5 / 6)

    two_layers = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(4), tf.keras.layers.Dense(3)])
    shutil.rmtree(root / "models" / "v1" / "head")
    two_layers.save(str(root / "models" / "v1" / "head"), save_format="tf")
    with pytest.raises(PublishRootDamaged, match="is not one Dense layer"):
        executor.run(context(world, world.train_fair, tmp_path / "evaluate2", root, cache=world.cache))
