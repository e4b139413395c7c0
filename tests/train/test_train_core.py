"""The train core on tiny data: what it writes, the serving signature, the head, TensorBoard logs, TFLite."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import train_fixtures

from hubpipe.components.common.head import head_from_weights
from hubpipe.components.common.split_vectors import stored_test_split
from hubpipe.components.common.vector_store import store_location
from hubpipe.pipeline.core.runtime import ONEDNN_ENV, import_tensorflow

FE_MODEL = "tiny_backbone"
FT_MODEL = "tiny_backbone_fine_tuned"
SCRATCH = "scratch_cnn"


def model_dir(trained_run, name: str) -> Path:
    request, _ = trained_run
    return request.output_dir / "models" / name


def model_json(trained_run, name: str) -> dict:
    return json.loads((model_dir(trained_run, name) / "model.json").read_text())


def test_every_model_kind_is_written_with_its_record(trained_run) -> None:
    request, outcome = trained_run
    assert [m.name for m in outcome.models] == [FE_MODEL, FT_MODEL, SCRATCH]
    summary = json.loads((request.output_dir / "summary.json").read_text())
    assert [row["name"] for row in summary["models"]] == [FE_MODEL, FT_MODEL, SCRATCH]
    best = max(summary["models"], key=lambda row: row["test_accuracy"])
    assert summary["best_model"] == best["name"] == outcome.best_model
    rows = {row["name"]: row for row in summary["models"]}
    # models train one after another: each one's training starts after the previous one's ended
    spans = [(rows[name]["train_started"], rows[name]["train_finished"]) for name in (FE_MODEL, FT_MODEL, SCRATCH)]
    assert all(start < end for start, end in spans)
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))
    for name in (FE_MODEL, FT_MODEL, SCRATCH):
        folder = model_dir(trained_run, name)
        assert (folder / "serving" / "saved_model.pb").is_file()
        assert (folder / "labels.txt").read_text().split() == list(train_fixtures.CLASSES)
        assert (folder / "model.tflite").is_file() and (folder / "model_dynamic_range.tflite").is_file()
    assert (model_dir(trained_run, FE_MODEL) / "head" / "saved_model.pb").is_file()
    assert not (model_dir(trained_run, FT_MODEL) / "head").exists()

    fe = model_json(trained_run, FE_MODEL)
    assert (fe["kind"], fe["mode"], fe["input_size"]) == ("transfer", "feature_extraction", 32)
    assert fe["backbone"]["handle"] == request.train.backbones[0]
    assert fe["backbone"]["output_dim"] == train_fixtures.BACKBONE_DIM
    assert fe["backbone_fingerprint"].startswith("sha256:")
    assert [entry["epoch"] for entry in fe["history"]] == [0, 1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(fe["history"][0])
    assert fe["hparams"]["learning_rate"] == request.train.learning_rate
    assert fe["num_train_examples"] == 3 * train_fixtures.TRAIN_PER_CLASS
    assert fe["train_images_per_class"] == train_fixtures.TRAIN_PER_CLASS
    assert fe["train_seconds"] > 0
    started, finished = (dt.datetime.fromisoformat(fe[key]) for key in ("train_started", "train_finished"))
    assert started.tzinfo is not None and finished.tzinfo is not None
    # the real span of the fit, not a timestamp taken after the fact
    assert (finished - started).total_seconds() == pytest.approx(fe["train_seconds"], abs=0.05)

    ft = model_json(trained_run, FT_MODEL)
    assert (ft["mode"], ft["vector_space"], ft["base_model"]) == ("fine_tuned", None, FE_MODEL)
    assert [entry["epoch"] for entry in ft["history"]] == [3]  # continues after the 3 feature-extraction epochs
    assert ft["fine_tuned_variables"] == 2  # conv2's kernel and bias; bn2 stays frozen

    scratch = model_json(trained_run, SCRATCH)
    assert (scratch["kind"], scratch["mode"], scratch["backbone"]) == ("scratch", "from_scratch", None)
    assert scratch["input_size"] == train_fixtures.SCRATCH_SIZE


def test_run_results_are_small_and_complete(trained_run) -> None:
    _, outcome = trained_run
    results = outcome.results()
    json.dumps(results)
    assert set(results["models"]) == {FE_MODEL, FT_MODEL, SCRATCH}
    assert results["device"] == "CPU" and results["precision"] == "float32"
    assert results["embeddings_cached"] == {FE_MODEL: False}
    assert results["feature_extraction_seconds"][FE_MODEL] > 0
    assert results["tensorflow_onednn"] == (os.environ[ONEDNN_ENV].lower() in ("1", "true"))


def test_test_predictions_match_the_record_and_the_cached_vectors(trained_run) -> None:
    request, _ = trained_run
    tf = import_tensorflow()
    fe = model_json(trained_run, FE_MODEL)
    with np.load(model_dir(trained_run, FE_MODEL) / "test_predictions.npz") as saved:
        ids, labels, probabilities = saved["ids"], saved["labels"], saved["probabilities"]
    assert probabilities.shape == (3 * train_fixtures.TEST_PER_CLASS, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert fe["test_accuracy"] == pytest.approx(np.mean(probabilities.argmax(axis=1) == labels))

    store = store_location(request.train.vector_store)
    stored = stored_test_split(tf, store, fe["vector_space"], request.ingest_dir, ids)
    assert stored is not None and list(stored.ids) == list(ids)
    vectors = stored.vectors()
    head = tf.keras.models.load_model(str(model_dir(trained_run, FE_MODEL) / "head"))
    assert np.allclose(head.predict(vectors, verbose=0), probabilities, atol=1e-6)
    # What evaluate does with a published head: weights only, into the head architecture the code builds.
    rebuilt = head_from_weights(tf, str(model_dir(trained_run, FE_MODEL) / "head"))
    assert np.allclose(rebuilt.predict(vectors, verbose=0), probabilities, atol=1e-6)


@pytest.mark.parametrize("name", [FE_MODEL, FT_MODEL, SCRATCH])
def test_serving_signature_classifies_encoded_jpeg_and_png_bytes(trained_run, name: str) -> None:
    tf = import_tensorflow()
    test_images = train_fixtures.example_images("test", train_fixtures.TEST_PER_CLASS)
    assert {fmt for _, _, fmt, _ in test_images} == {"jpeg", "png"}
    serve = tf.saved_model.load(str(model_dir(trained_run, name) / "serving")).signatures["serving_default"]
    outputs = serve(images=tf.constant([data for _, _, _, data in test_images]))

    with np.load(model_dir(trained_run, name) / "test_predictions.npz") as saved:
        by_id = dict(zip(saved["ids"], saved["probabilities"], strict=True))
    expected = np.stack([by_id[example_id] for example_id, _, _, _ in test_images])
    probabilities = outputs["probabilities"].numpy()
    assert np.allclose(probabilities, expected, atol=1e-5)
    top = probabilities.argmax(axis=1)
    assert [v.decode() for v in outputs["labels"].numpy()] == [train_fixtures.CLASSES[i] for i in top]
    assert list(outputs["label_ids"].numpy()) == list(top)
    assert [v.decode() for v in outputs["classes"].numpy()[0]] == list(train_fixtures.CLASSES)


def test_tensorboard_logs_hold_epoch_scalars_and_hparams(trained_run) -> None:
    request, _ = trained_run
    tf = import_tensorflow()
    from tensorboard.plugins.hparams import plugin_data_pb2

    def scalars(folder: Path) -> dict[str, list[int]]:
        steps: dict[str, list[int]] = {}
        for path in folder.glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                for value in event.summary.value:
                    steps.setdefault(value.tag, []).append(event.step)
        return steps

    logs = request.output_dir / "logs" / FE_MODEL
    assert scalars(logs / "train") == {"epoch_loss": [0, 1, 2], "epoch_accuracy": [0, 1, 2]}
    assert scalars(logs / "validation") == {"epoch_loss": [0, 1, 2], "epoch_accuracy": [0, 1, 2]}
    hparams = {}
    for path in logs.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == "_hparams_/session_start_info":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    hparams = {key: v for key, v in data.session_start_info.hparams.items()}
    assert hparams["mode"].string_value == "feature_extraction"
    assert hparams["backbone"].string_value == request.train.backbones[0]
    assert hparams["learning_rate"].number_value == pytest.approx(request.train.learning_rate)
    assert hparams["train_images_per_class"].number_value == train_fixtures.TRAIN_PER_CLASS
    assert "_hparams_/experiment" in scalars(request.output_dir / "logs")


def test_quantised_tflite_agrees_with_the_saved_model(trained_run) -> None:
    tf = import_tensorflow()
    from hubpipe.components.train.inputs import decode_and_resize

    folder = model_dir(trained_run, FE_MODEL)
    images = [data for _, _, _, data in train_fixtures.example_images("test", train_fixtures.TEST_PER_CLASS)]
    pixels = np.stack([decode_and_resize(tf, tf.constant(data), 32).numpy() for data in images])
    serve = tf.saved_model.load(str(folder / "serving")).signatures["serving_default"]
    reference = serve(images=tf.constant(images))["probabilities"].numpy()

    def tflite_probabilities(filename: str) -> np.ndarray:
        interpreter = tf.lite.Interpreter(model_path=str(folder / filename))
        (entry,), (exit_,) = interpreter.get_input_details(), interpreter.get_output_details()
        interpreter.resize_tensor_input(entry["index"], pixels.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(entry["index"], pixels)
        interpreter.invoke()
        return interpreter.get_tensor(exit_["index"])

    assert np.allclose(tflite_probabilities("model.tflite"), reference, atol=1e-4)
    quantised = tflite_probabilities("model_dynamic_range.tflite")
    assert np.abs(quantised - reference).max() < 0.02
    ordered = np.sort(reference, axis=1)
    clear = ordered[:, -1] - ordered[:, -2] > 0.005  # top-1 is well defined
    assert clear.sum() >= len(images) // 2
    assert (quantised.argmax(axis=1)[clear] == reference.argmax(axis=1)[clear]).all()
