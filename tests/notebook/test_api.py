"""The Python API (`import hubpipe`): run, Run, load, compare, on the tiny dataset and backbone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from notebook_fixtures import tiny_config_file
from PIL import Image

import hubpipe
from hubpipe.pipeline.api import settings_overrides
from hubpipe.pipeline.cli import main
from hubpipe.pipeline.core.errors import ConfigError, UsageError


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> hubpipe.Run:
    root = tmp_path_factory.mktemp("api")
    return hubpipe.run(config=tiny_config_file(root), output=root / "run")


def test_import_is_light_and_lazy() -> None:
    code = "import sys, hubpipe; print(hubpipe.__version__, 'tensorflow' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [hubpipe.__version__, "False", "False"]
    assert callable(hubpipe.run) and callable(hubpipe.load) and callable(hubpipe.compare)
    with pytest.raises(AttributeError):
        hubpipe.no_such_name  # noqa: B018


def test_settings_by_section_become_dotted_overrides() -> None:
    shortcuts = {"data": Path("imgs"), "backbones": "mobilenetv2", "epochs": 3}
    overrides = settings_overrides(shortcuts, {"train": {"batch_size": 16}})
    assert overrides == {
        "train.batch_size": 16,
        "data.source": "imgs",
        "train.backbones": ["mobilenetv2"],
        "train.epochs": 3,
    }
    with pytest.raises(ConfigError, match="expected a dict of settings"):
        settings_overrides(sections={"train": 3})


def test_bad_setting_raises_the_line_the_cli_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError) as raised:
        hubpipe.run(epochs=0, output=tmp_path / "never")
    assert main(["run", "--epochs", "0", "--output", str(tmp_path / "never")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {raised.value}"
    with pytest.raises(ConfigError, match=r"unknown setting train\.no_such"):
        hubpipe.run(train={"no_such": 1}, output=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_models_table_matches_run_json(tiny_run: hubpipe.Run) -> None:
    run_file = json.loads((tiny_run.output_dir / "run.json").read_text())
    train = next(stage for stage in run_file["stages"] if stage["name"] == "train")["results"]["models"]
    table = tiny_run.models
    assert list(table.columns) == ["model", "backbone", "accuracy", "top-5", "macro-F1", "training seconds", "blessed"]
    assert sorted(table["model"]) == sorted(train)
    for row in table.itertuples(index=False):
        assert row.accuracy == pytest.approx(train[row.model]["test_accuracy"], abs=1e-4)
        assert row[5] == train[row.model]["train_seconds"]
        assert 0.0 <= row[3] <= 1.0 and row[3] >= row.accuracy  # top-5 includes top-1
    assert table["blessed"].sum() == (1 if tiny_run.blessed else 0)
    assert tiny_run.status == "succeeded"
    assert list(tiny_run.stages["stage"]) == ["ingest", "validate", "train", "evaluate", "publish"]
    assert set(tiny_run.stages["status"]) == {"ran"}


def test_history_has_every_epoch_of_every_model(tiny_run: hubpipe.Run) -> None:
    history = tiny_run.history
    assert list(history.columns[:6]) == ["model", "epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert set(history["model"]) == set(tiny_run.models["model"])
    config = tiny_run.config.train
    for model, rows in history.groupby("model"):
        epochs = config.baseline_epochs if model == "scratch_cnn" else config.epochs
        assert list(rows["epoch"]) == list(range(epochs)), model
        assert rows[["loss", "accuracy", "val_loss", "val_accuracy"]].notna().all().all(), model
    assert hubpipe.load(tiny_run.output_dir).history.equals(history)


def test_predict_takes_paths_pil_images_and_arrays(tiny_run: hubpipe.Run, tmp_path: Path) -> None:
    data = Path(json.loads((tiny_run.output_dir / "run.json").read_text())["output_dir"]).parent / "data"
    path = sorted((data / "test").rglob("*.jpg"))[0]
    pil = Image.open(path)
    array = np.asarray(pil.convert("RGB"))
    table = tiny_run.predict([path, pil, array, array / 255.0], model="scratch_cnn", top_k=2)
    assert list(table["image"]) == [str(path), "#1", "#2", "#3"]
    assert table["top"][1] == table["top"][2] == table["top"][3]  # the same pixels, however given
    assert all(len(top) == 2 and top[0][1] >= top[1][1] for top in table["top"])
    classes = set((tiny_run.output_dir / "ingest" / "labels.txt").read_text().split())
    assert set(table["label"]) <= classes
    default = tiny_run.predict(str(path))
    assert len(default) == 1 and default["label"][0] in classes
    with pytest.raises(UsageError, match="no model 'nope'"):
        tiny_run.predict(path, model="nope")


def test_load_compare_and_notebook_view(tiny_run: hubpipe.Run, tmp_path: Path) -> None:
    again = hubpipe.load(tiny_run.output_dir)
    assert again == tiny_run
    table = hubpipe.compare(tiny_run, str(tiny_run.output_dir))
    assert table.columns[0] == "run" and len(table) == 2 * len(tiny_run.models)
    html = tiny_run._repr_html_()
    assert html.startswith('<div class="hubpipe-run">') and "<h2>Models</h2>" in html and "<h2>Blessing</h2>" in html
    assert all(name in html for name in tiny_run.models["model"])
    assert "body{" not in html  # the notebook page keeps its own style
    assert tiny_run.tensorboard_logdir.is_dir()
    with pytest.raises(UsageError, match="not a run folder"):
        hubpipe.load(tmp_path)


def test_keras_model_predicts_as_the_serving_model_fits_and_saves(tiny_run: hubpipe.Run, tmp_path: Path) -> None:
    import tensorflow_hub as hub

    from hubpipe.components.train.export import SERVING_INPUT
    from hubpipe.components.train.inputs import decode_and_resize
    from hubpipe.components.train.layout import PROBABILITIES
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    data = Path(json.loads((tiny_run.output_dir / "run.json").read_text())["output_dir"]).parent / "data"
    paths = sorted((data / "test").rglob("*.jpg"))[:4]
    encoded = [path.read_bytes() for path in paths]
    table = tiny_run.models
    transfer = next(name for name, backbone in zip(table["model"], table["backbone"], strict=True) if backbone)
    for name in sorted(table["model"], key=lambda name: name == transfer):  # the transfer model last: fit below
        model = tiny_run.keras_model(name)
        assert type(model).__module__.startswith("tf_keras.")  # legacy Keras 2, as documented
        size = model.input_shape[1]
        images = tf.stack([decode_and_resize(tf, tf.constant(image), size) for image in encoded])
        serving = tf.saved_model.load(str(tiny_run.output_dir / "train" / "models" / name / "serving"))
        expected = serving.signatures["serving_default"](**{SERVING_INPUT: tf.constant(encoded)})[PROBABILITIES]
        np.testing.assert_allclose(model.predict(images, verbose=0), expected.numpy(), atol=1e-5)
    before = [weight.copy() for weight in model.get_weights()]
    history = model.fit(images, np.array([0, 1, 2, 3]), epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(old, new) for old, new in zip(before, model.get_weights(), strict=True))
    model.save(str(tmp_path / "saved"))
    reloaded = tf.keras.models.load_model(str(tmp_path / "saved"), custom_objects={"KerasLayer": hub.KerasLayer})
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    with pytest.raises(UsageError, match="no model 'nope'"):
        tiny_run.keras_model("nope")


def test_a_run_is_named_after_its_folder_and_date_and_links_its_records(tiny_run: hubpipe.Run, tmp_path: Path) -> None:
    from hubpipe.pipeline.report.page import render_report

    claimed = json.loads((tiny_run.output_dir / ".hubpipe-run").read_text())["claimed"][:10]
    assert tiny_run.name == f"run-{claimed}"  # the folder is called run
    links = tiny_run.links
    assert links["run_folder"] == str(tiny_run.output_dir)
    logs = Path(links["tensorboard_logs"])
    assert logs == tiny_run.tensorboard_logdir and logs.name == tiny_run.name and logs.parent.name == "tensorboard"
    assert links["evaluation_id"] == tiny_run.blessing["evaluation_id"]
    if tiny_run.blessed:  # the tiny model is blessed or not depending on the machine's kernels
        version = Path(links["published_version"])
        assert json.loads((version / "version.json").read_text())["run_name"] == tiny_run.name
        assert version.name == links["evaluation_id"]
    else:
        assert "published_version" not in links
    html = render_report(tiny_run.output_dir)
    assert f"<title>hubpipe run report: {tiny_run.name}</title>" in html
    assert f"<code>{logs}</code>" in html and "95% interval" in html
    assert list(hubpipe.compare(tiny_run)["run"].unique()) == [tiny_run.name]

    # the same run under a name of its own: only publish runs again, and the logs go under the new name
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run.output_dir, copy)
    renamed = hubpipe.run(config=tiny_config_file(tiny_run.output_dir.parent), output=copy, name="tiny-sweep")
    assert dict(zip(renamed.stages["stage"], renamed.stages["status"], strict=True)) == {
        "ingest": "cached",
        "validate": "cached",
        "train": "cached",
        "evaluate": "cached",
        "publish": "ran",
    }
    assert renamed.name == "tiny-sweep" and Path(renamed.links["tensorboard_logs"]) == logs.parent / "tiny-sweep"
    assert (logs.parent / "tiny-sweep" / "hubpipe-run.json").is_file() and logs.is_dir()
    with pytest.raises(ConfigError, match=r"run\.name"):
        hubpipe.run(config=tiny_config_file(tiny_run.output_dir.parent), output=copy, name="no/slashes")
