"""The Python API, for notebooks and scripts: ``hubpipe.run(...)``, ``hubpipe.load(dir)``, ``hubpipe.compare(...)``.

``run`` takes the same settings tree as the command line and validates it the same way (a bad value raises
:class:`~hubpipe.pipeline.core.errors.ConfigError` with the line ``hubpipe run`` prints), runs the local runner and
returns a :class:`Run`: a view of the run folder (stages, models table, blessing, predictions, TensorBoard logs)
that reads only what the stages wrote, so ``load`` gives the same view of any finished run folder.
"""

from __future__ import annotations

import io
import logging
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubpipe.components.evaluate.layout import BLESSED
from hubpipe.components.publish import layout as publish_layout
from hubpipe.components.train import layout as train_layout
from hubpipe.pipeline.core.artifacts import read_json
from hubpipe.pipeline.core.config import PipelineConfig, Setting, load_config, replace, settings
from hubpipe.pipeline.core.errors import ConfigError, UsageError
from hubpipe.pipeline.core.log_setup import call_logging
from hubpipe.pipeline.core.run_folder import DEFAULT_OUTPUT, RUN_FILE
from hubpipe.pipeline.run_results import RunFolder

if TYPE_CHECKING:
    import pandas as pd

LOG = logging.getLogger("hubpipe.api")
#: Column name of the models table -> key of the run folder's model rows (:meth:`RunFolder.model_rows`).
MODEL_COLUMNS = {
    "model": "model",
    "backbone": "backbone",
    "accuracy": "accuracy",
    "top-5": "top5_accuracy",
    "macro-F1": "macro_f1",
    "training seconds": "train_seconds",
    "blessed": "gate",
}


def keyword_settings() -> dict[str, Setting]:
    """The API's shortcut arguments (``data``, ``backbones``, ``epochs``, ``name``) and the settings they stand for, as
    the configuration tree declares them (``keyword=``)."""
    return {item.keyword: item for item in settings() if item.keyword}


def settings_overrides(
    shortcuts: Mapping[str, Any] | None = None, sections: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Dotted overrides (as ``--set`` gives them) from the API's arguments: ``shortcuts`` maps keyword
    arguments (see :func:`keyword_settings`) to values (None: not given); ``sections`` maps a section name to a
    dict of its settings, e.g. ``{"train": {"batch_size": 16}}``."""
    overrides: dict[str, Any] = {}
    for section, values in (sections or {}).items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"{section}: expected a dict of settings, e.g. {section}={{'name': value}}")
        overrides.update({f"{section}.{key}": value for key, value in values.items()})
    by_keyword = keyword_settings()
    for keyword, value in (shortcuts or {}).items():
        if value is not None:
            overrides[by_keyword[keyword].key] = _as_setting(by_keyword[keyword], value)
    return overrides


def _as_setting(item: Setting, value: Any) -> Any:
    """A shortcut's value as the setting takes it: a list for a list setting (one name alone is a list of one),
    a string for a string setting (a Path too)."""
    if typing.get_origin(item.type) is tuple:
        return [value] if isinstance(value, str) else list(value)
    return str(value) if item.type is str else value


def run(
    data: str | Path | Mapping[str, Any] | None = None,
    backbones: Sequence[str] | str | None = None,
    epochs: int | None = None,
    output: str | Path = DEFAULT_OUTPUT,
    *,
    name: str | None = None,
    config: str | Path | None = None,
    until: str | None = None,
    cache: bool = True,
    force_output: bool = False,
    debug: bool = False,
    **settings: Mapping[str, Any],
) -> Run:
    """Runs the pipeline locally, like ``hubpipe run``, and returns its :class:`Run`.

    ``data``, ``backbones``, ``epochs`` and ``name`` are the settings of the flags ``--data``, ``--backbone``,
    ``--epochs`` and ``--name`` (:func:`keyword_settings`; ``name``: the run name, by default the output folder's
    name and the date); ``config`` a YAML file; any other
    setting is given by section, e.g. ``train={"batch_size": 16}, evaluate={"min_accuracy": 0.6}`` (``data``
    takes the source, or a dict of the data section's settings with ``source`` among them). With no
    arguments: the embedded sample dataset and the offline backbone into ``hubpipe-output/``. An ``output``
    folder that is not empty and is not a run folder is refused (UsageError) unless ``force_output`` (the flag
    ``--force-output``). A bad setting raises ConfigError; rejected data raises DataRejected (the Run is then
    ``load(output)``).

    Progress (stage lines, epochs, bars) shows on every call; the libraries' own notices are hidden for the
    length of the call as ``hubpipe run`` hides them, and ``debug=True`` shows them all (``--debug``).
    """
    from hubpipe.pipeline.local_runner import run_pipeline, run_summary

    if isinstance(data, Mapping):  # data={...}: the data section's settings, not the source
        settings = {**settings, "data": data}
        data = None
    shortcuts = {"data": data, "backbones": backbones, "epochs": epochs, "name": name}
    overrides = settings_overrides(shortcuts, settings)
    resolved: PipelineConfig = load_config(config, overrides)
    if not cache:
        resolved = replace(resolved, runner=replace(resolved.runner, cache=False))
    with call_logging(debug):
        report = run_pipeline(resolved, Path(output), until=until, force_output=force_output)
        LOG.info("%s", run_summary(report))
    return Run(report.output_dir, resolved)


def load(run_dir: str | Path) -> Run:
    """The :class:`Run` of a run folder (the ``output`` of ``run`` or ``--output`` of ``hubpipe run``)."""
    folder = Path(run_dir)
    if not (folder / RUN_FILE).is_file():
        raise UsageError(f"{folder} is not a run folder (no {RUN_FILE}); pass the output folder of a run")
    return Run(folder.resolve())


def compare(*runs: Run | str | Path) -> pd.DataFrame:
    """One models table across runs (or run folders), with the run name in a ``run`` column."""
    import pandas as pd

    if not runs:
        raise UsageError("compare needs at least one run")
    tables = []
    for item in runs:
        one = item if isinstance(item, Run) else load(item)
        tables.append(one.models.assign(run=one.name))
    combined = pd.concat(tables, ignore_index=True)
    return combined[["run", *MODEL_COLUMNS]]


def _encoded(image: Any) -> bytes:
    """Encoded image bytes from a path, a PIL image or an array (H x W x 3 RGB, uint8 or floats in [0, 1])."""
    if isinstance(image, (str, Path)):
        return Path(image).read_bytes()
    if isinstance(image, bytes):
        return image
    import numpy as np
    from PIL import Image

    if not isinstance(image, Image.Image):
        array = np.asarray(image)
        if array.dtype != np.uint8:
            array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
        image = Image.fromarray(array)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _prediction_table(model_dir: Path, images: Sequence[Any] | Any, top_k: int, config: PipelineConfig) -> pd.DataFrame:
    """One row per image (image, label, probability, top) by the model in ``model_dir``, rebuilt by hubpipe's
    code; images in any format ingest takes, converted as ingest converts them."""
    import pandas as pd

    from hubpipe.components.train.serving import classify_encoded, load_classifier

    if isinstance(images, (str, Path, bytes)) or not isinstance(images, Sequence):
        images = [images]
    encoded = [_encoded(image) for image in images]
    classifier = load_classifier(model_dir, backbones=config.train.backbones)
    tops = classify_encoded(classifier, encoded, top_k, config.data)
    rows = [
        {
            "image": str(img) if isinstance(img, (str, Path)) else f"#{i}",
            "label": top[0][0],
            "probability": top[0][1],
            "top": top,
        }
        for i, (img, top) in enumerate(zip(images, tops, strict=True))
    ]
    return pd.DataFrame(rows, columns=["image", "label", "probability", "top"])


@dataclass(frozen=True)
class Run:
    """A finished (or failed) run folder, read through what its stages wrote.

    ``config`` is the configuration :func:`run` ran with (None from :func:`load`): ``predict`` takes the backbones
    it may rebuild models on and the image limits from it, else from the defaults.
    """

    output_dir: Path
    config: PipelineConfig | None = field(default=None, compare=False, repr=False)

    def _folder(self) -> RunFolder:
        return RunFolder(Path(self.output_dir))

    @property
    def status(self) -> str:
        """``succeeded``, ``failed`` or ``running`` (run.json)."""
        return str(self._folder().run.get("status"))

    @property
    def name(self) -> str:
        """The run name: its folder in TensorBoard, its MLflow run, its published version's ``run_name``."""
        return self._folder().name

    @property
    def links(self) -> dict[str, str]:
        """Where this run's other records are: run folder, publish root, TensorBoard logs, published version,
        evaluation id and MLflow run (those it has)."""
        return self._folder().links

    @property
    def stages(self) -> pd.DataFrame:
        """One row per stage: status (ran, cached, failed, ...), seconds, error."""
        import pandas as pd

        rows = [
            {"stage": s["name"], "status": s["status"], "seconds": s["duration_s"], "error": s.get("error", "")}
            for s in self._folder().records()
        ]
        return pd.DataFrame(rows, columns=["stage", "status", "seconds", "error"])

    @property
    def blessing(self) -> dict[str, Any]:
        """evaluate's blessing.json: the decision, every check and the reasons (empty before evaluate)."""
        return dict(self._folder().blessing.record)

    @property
    def blessed(self) -> str | None:
        """The name of the blessed model, or None."""
        return self._folder().blessing.blessed

    @property
    def models(self) -> pd.DataFrame:
        """One row per model: model, backbone, accuracy, top-5, macro-F1, training seconds, blessed (bool)."""
        import pandas as pd

        rows = self._folder().model_rows()
        table = pd.DataFrame([{column: row[key] for column, key in MODEL_COLUMNS.items()} for row in rows])
        table = table.reindex(columns=list(MODEL_COLUMNS))
        table["blessed"] = table["blessed"] == BLESSED
        return table

    @property
    def history(self) -> pd.DataFrame:
        """The training curves: one row per model and epoch (epochs counted from 0) with the metrics Keras
        recorded (loss, accuracy, and val_loss, val_accuracy on the test split); empty before train."""
        import pandas as pd

        models = Path(self.output_dir) / train_layout.STAGE / train_layout.MODELS_DIR
        rows = []
        for path in sorted(models.glob(f"*/{train_layout.MODEL_FILE}")):
            info = read_json(path)
            rows += [{"model": info.get("name", path.parent.name), **entry} for entry in info.get("history") or []]
        columns = ["model", "epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
        table = pd.DataFrame(rows)
        return table.reindex(columns=columns + [c for c in table.columns if c not in columns])

    @property
    def tensorboard_logdir(self) -> Path:
        """The published TensorBoard logs of this run (all models, test metrics, confusion matrices), or the
        train stage's logs when publish has not run."""
        publish = self._folder().stage(publish_layout.STAGE)
        published = publish / publish_layout.PUBLISH_FILE if publish else None
        logs_dir = read_json(published).get("logs_dir") if published and published.is_file() else None
        return Path(logs_dir) if logs_dir else Path(self.output_dir) / train_layout.STAGE / train_layout.LOGS_DIR

    def tensorboard(self, port: int = 0) -> None:
        """TensorBoard on :attr:`tensorboard_logdir`, shown below the notebook cell (TensorBoard's notebook
        extension, started with this environment's TensorBoard whatever PATH holds); ``port`` 0: a free one."""
        from hubpipe.pipeline.notebook import show_tensorboard

        show_tensorboard(self.tensorboard_logdir, port)

    def _model_dir(self, model: str | None) -> Path:
        from hubpipe.components.train.serving import resolve_model_dir

        name = model or self.blessed
        if name is None:
            logging.getLogger(__name__).warning("no model is blessed in this run: predicting with the best model")
            return resolve_model_dir(Path(self.output_dir))
        folder = Path(self.output_dir) / train_layout.STAGE / train_layout.MODELS_DIR / name
        if not folder.is_dir():
            known = ", ".join(self.models["model"]) or "none"
            raise UsageError(f"no model {name!r} in this run (models: {known})")
        return resolve_model_dir(folder)

    def keras_model(
        self, model: str | None = None, *, fine_tune_layers: int = 0, learning_rate: float | None = None
    ) -> Any:
        """The trained ``model`` (a model name of this run; default: the blessed one) as a compiled tf_keras
        model, backbone and head, for ``predict`` or for ``fit`` (fine-tuning). Rebuilt by hubpipe's code from
        the weights, as :meth:`predict` does.

        Its input is float32 ``[batch, S, S, 3]`` in [0, 1], S = ``model.input_shape[1]``: images decoded as RGB,
        resized to S x S (bilinear, no crop) and divided by 255, e.g. ``tf.image.resize(image, (S, S)) / 255``.
        Its output: probabilities of the classes in ``labels.txt`` order (the run's ``ingest/labels.txt``). The
        head trains; ``fine_tune_layers=N`` also unfreezes the backbone's top N layers (BatchNorm stays frozen).
        The Keras is tf_keras 2.16 (legacy Keras 2; hubpipe sets ``TF_USE_LEGACY_KERAS=1``): save it with
        ``model.save("folder")`` (SavedModel) and load it with ``tf.keras.models.load_model("folder",
        custom_objects={"KerasLayer": hub.KerasLayer})``, or keep its weights with ``model.save_weights``.
        """
        from hubpipe.components.train.serving import keras_model

        config = self.config or load_config()
        return keras_model(
            self._model_dir(model),
            backbones=config.train.backbones,
            fine_tune_layers=fine_tune_layers,
            learning_rate=learning_rate,
        )

    def predict(self, images: Sequence[Any] | Any, model: str | None = None, top_k: int = 3) -> pd.DataFrame:
        """The top classes of each image (paths, PIL images or RGB arrays) by the blessed model, or by
        ``model`` (a model name of this run). One row per image: image, label, probability, top. The model is
        rebuilt by hubpipe's code from its weights, as ``hubpipe predict`` does."""
        return _prediction_table(self._model_dir(model), images, top_k, self.config or load_config())

    def _repr_html_(self) -> str:
        from hubpipe.pipeline.report.page import render_summary

        return render_summary(Path(self.output_dir))

    def __repr__(self) -> str:
        return f"Run({str(self.output_dir)!r}, status={self.status!r}, blessed={self.blessed!r})"


def load_published(root: str | Path, config: str | Path | None = None) -> Published:
    """The LATEST blessed model of a publish root (the ``publish.root`` of the runs, e.g. ``run.blessing``'s
    root); ``config`` a YAML file whose settings ``predict`` uses (the backbones it may rebuild models on and the
    image limits), else the defaults."""
    from hubpipe.components.train.serving import resolve_model_dir

    folder = Path(root).expanduser()
    return Published(resolve_model_dir(folder).resolve(), load_config(config))


@dataclass(frozen=True)
class Published:
    """A blessed model in a publish root (its version folder), for ``predict`` and ``keras_model``."""

    model_dir: Path
    config: PipelineConfig = field(compare=False, repr=False)

    @property
    def version(self) -> str:
        return self.model_dir.name

    def predict(self, images: Sequence[Any] | Any, top_k: int = 3) -> pd.DataFrame:
        """As :meth:`Run.predict`, by this model."""
        return _prediction_table(self.model_dir, images, top_k, self.config)

    def keras_model(self, *, fine_tune_layers: int = 0, learning_rate: float | None = None) -> Any:
        """As :meth:`Run.keras_model`, for this model."""
        from hubpipe.components.train.serving import keras_model

        return keras_model(
            self.model_dir,
            backbones=self.config.train.backbones,
            fine_tune_layers=fine_tune_layers,
            learning_rate=learning_rate,
        )
