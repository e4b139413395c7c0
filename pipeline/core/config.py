"""The pipeline's configuration: one tree of frozen dataclasses.

A configuration is built from defaults, then a YAML file, then command-line overrides, and is validated
once (:func:`load_config`). Every run writes the resolved tree as ``resolved_config.yaml`` beside its
outputs, so that it can be reproduced with ``hubpipe run --config resolved_config.yaml``.

Nothing here imports TensorFlow or reads the environment.
"""

from __future__ import annotations

import functools
import re
import reprlib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from hubpipe.pipeline.core.errors import ConfigError

#: Data source used when none is given: the embedded, generated sample dataset.
SAMPLE_SOURCE = "sample"

DUPLICATE_POLICIES = ("keep", "drop", "fail")
VALIDATION_POLICIES = ("fail", "warn")
LAYOUTS = ("auto", "split", "flat")
PRECISIONS = ("auto", "float32", "mixed_float16")
ENGINES = ("auto", "tensorflow", "tflite")
GATE_RULES = ("interval", "point")
K8S_NAME = r"(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?"  # a DNS-1123 label: namespaces, Tensorboard names
EXPERIMENT_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"  # a folder name: publish.experiment, run.name
K8S_VOLUME_CLAIM = r"(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?"  # a DNS-1123 subdomain
#: A configuration holds about a hundred values; YAML aliases can make a file of a few hundred bytes stand for
#: billions (an "alias bomb"). A file whose values, aliases expanded, number more than this is refused.
MAX_CONFIG_VALUES = 10_000
#: The longest form of a value an error message shows (see :func:`shown`).
MAX_SHOWN_CHARS = 80


def setting(
    default: Any, help: str, *, flag: str = "", metavar: str = "", keyword: str = "", parameter: str = ""
) -> Any:
    """A configuration field with its help text and public names, declared once (``dataclasses.field``
    metadata): ``flag`` is its command-line option (``--epochs``), ``keyword`` the Python API's shortcut
    argument (``hubpipe.run(epochs=...)``), ``parameter`` its Kubeflow pipeline parameter. The CLI options, the
    API, the pipeline's parameters and the components' docstrings are generated from these (:func:`settings`).
    """
    names = {"help": help, "flag": flag, "metavar": metavar, "keyword": keyword, "parameter": parameter}
    return field(default=default, metadata=names)


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they become train/test examples."""

    source: str = setting(
        SAMPLE_SOURCE,
        "Images: a directory, a .zip/.tar[.gz] path or URL, a gs:// path, a preset (food101_10pct) or 'sample' "
        "(the embedded default).",
        flag="--data",
        metavar="SOURCE",
        keyword="data",
        parameter="data_source",
    )
    layout: str = setting("auto", "'split': train/<class>/ and test/<class>/; 'flat': <class>/, split by hash.")
    test_fraction: float = setting(0.25, "Share of each class sent to test in the flat layout.")
    percent: float = setting(
        100.0,
        "Keep this percentage of each class's training images (the same ones every run).",
        flag="--percent",
        parameter="percent",
    )
    sample_seed: int = setting(0, "Seed of the embedded sample dataset.")
    image_size: int = setting(224, "Side of the square images fed to the models.")
    max_file_bytes: int = setting(20 * 1024 * 1024, "Larger image files are quarantined.")
    max_pixels: int = setting(40_000_000, "Decompression-bomb guard: images with more pixels are quarantined.")
    max_extract_bytes: int = setting(32 * 1024**3, "Total size an archive may extract to.")
    duplicates_in_class: str = setting("drop", "Identical files inside one class: keep, drop or fail.")
    duplicates_across_classes: str = setting(
        "drop", "Identical content with conflicting labels (all copies dropped): keep, drop or fail."
    )
    leakage: str = setting(
        "drop", "Identical content in train and test (the training copy is dropped): keep, drop or fail."
    )
    num_shards: int = setting(0, "TFRecord shards per split; 0 lets the runner choose.")
    download_sha256: str = setting("", "Expected sha256 of a downloaded archive, when known.")


@dataclass(frozen=True)
class ValidateConfig:
    """Data validation with tensorflow-data-validation."""

    policy: str = setting(
        "fail",
        "'fail' stops the run before training on an error anomaly; 'warn' only reports it.",
        parameter="validation_policy",
    )
    schema: str = setting("", "A curated schema (.pbtxt); empty: inferred on the first run.")
    drift_threshold: float = setting(
        0.2,
        "L-infinity distance allowed between the class distributions of this run and the previous one.",
        parameter="drift_threshold",
    )
    min_images_per_class: int = setting(10, "Warn below this many training images in a class.")


@dataclass(frozen=True)
class TrainConfig:
    """Training of one classifier head per backbone, and of the from-scratch baseline."""

    backbones: tuple[str, ...] = setting(
        ("efficientnet_lite0",),
        "Backbones to train a head on, one or more: presets, TF Hub handles or SavedModel paths.",
        flag="--backbone",
        metavar="NAME",
        keyword="backbones",
        parameter="backbones",
    )
    epochs: int = setting(
        5, "Training epochs of each classifier head.", flag="--epochs", keyword="epochs", parameter="epochs"
    )
    batch_size: int = setting(32, "Training batch size.", parameter="batch_size")
    learning_rate: float = setting(1e-3, "Learning rate of the classifier heads.", parameter="learning_rate")
    seed: int = setting(42, "Seed of weight initialisation and shuffling.")
    augment: bool = setting(
        False,
        "Random flips, rotations and zooms of the training images (the heads then train end to end, not on "
        "cached feature vectors).",
    )
    fine_tune_layers: int = setting(
        0,
        "Top backbone layers to unfreeze and fine-tune after feature extraction (0: off).",
        parameter="fine_tune_layers",
    )
    fine_tune_epochs: int = setting(5, "Epochs of fine-tuning.")
    fine_tune_learning_rate: float = setting(1e-4, "Learning rate of fine-tuning.")
    baseline: bool = setting(True, "Also train the from-scratch CNN, the baseline candidates must beat.")
    baseline_epochs: int = setting(5, "Training epochs of the from-scratch CNN.")
    precision: str = setting("auto", "'auto' (mixed_float16 on a GPU, float32 otherwise), float32 or mixed_float16.")
    export_tflite: bool = setting(False, "Also export each serving model as TensorFlow Lite.")
    engine: str = setting(
        "auto", "Feature extraction: 'auto' (TFLite on a CPU when it matches TensorFlow), tensorflow or tflite."
    )
    decode_cache: bool = setting(True, "End-to-end fits decode each image once per run, not once per epoch.")
    decode_cache_mb: int = setting(2048, "Decoded images kept in memory up to this size; above it, a snapshot on disk.")
    vector_store: str = setting(
        "",
        "The content-addressed store of feature vectors (a path, or a gs:// URI a cluster's workers can reach); "
        "empty: vectors/ in hubpipe's cache folder.",
    )


@dataclass(frozen=True)
class EvaluateConfig:
    """The gate a candidate must pass to be blessed."""

    min_accuracy: float = setting(0.5, "Test accuracy a candidate needs to be blessed.", parameter="min_accuracy")
    min_margin_over_baseline: float = setting(
        0.1, "Accuracy points a candidate needs over the from-scratch CNN.", parameter="min_margin_over_baseline"
    )
    max_drop_vs_blessed: float = setting(
        0.02, "Accuracy drop allowed against the last blessed model.", parameter="max_drop_vs_blessed"
    )
    rule: str = setting(
        "interval",
        "How the thresholds decide: 'interval' (about the 95% intervals of the paired differences: a candidate is "
        "refused against the blessed model only when the data show it worse) or 'point' (about point estimates).",
        parameter="gate_rule",
    )


@dataclass(frozen=True)
class PublishConfig:
    """Where TensorBoard logs and blessed models are published."""

    root: str = setting(
        "",
        "Where logs and blessed models are published: a directory, a gs:// path or a mounted PVC path (empty: "
        "published/ in hubpipe's cache folder).",
        parameter="publish_root",
    )
    experiment: str = setting(
        "",
        "Names the default publish root, published/<experiment> in hubpipe's cache folder: runs compare with the "
        "blessed model of their own experiment only (empty: the run folder's name).",
    )
    pvc_name: str = setting("", "When set, the Kubeflow Tensorboard resource reads pvc://<pvc_name>/<pvc_path>.")
    pvc_path: str = setting("tensorboard", "The publish root's tensorboard/ folder as seen inside the PVC.")
    tensorboard_name: str = setting("hubpipe", "Name of the Kubeflow Tensorboard resource.")
    namespace: str = setting("kubeflow-user", "Namespace of the Kubeflow Tensorboard resource.")


@dataclass(frozen=True)
class RunnerConfig:
    """How the local runner executes the stages."""

    beam_args: tuple[str, ...] = setting(
        (),
        "Beam pipeline option, e.g. --beam-arg=--direct_num_workers=2 (several: repeat the flag).",
        flag="--beam-arg",
        metavar="ARG",
    )
    cache: bool = setting(True, "Skip the stages whose fingerprint is unchanged.")


@dataclass(frozen=True)
class TrackConfig:
    """Experiment tracking in MLflow (needs the ``mlflow`` extra). No stage reads it: it never reruns a stage."""

    mlflow_uri: str = setting(
        "",
        parameter="mlflow_uri",
        help="MLflow tracking server or local folder (empty: $MLFLOW_TRACKING_URI; no tracking when that is unset).",
    )
    experiment: str = setting("hubpipe", "MLflow experiment of the runs.")
    registered_model: str = setting(
        "hubpipe-classifier", "Name the blessed model is registered under in MLflow (empty: not registered)."
    )
    alias: str = setting(
        "champion", "MLflow alias moved to the registered version of each blessed model (empty: no alias)."
    )


@dataclass(frozen=True)
class RunConfig:
    """What people know a run by. No stage's parameters hold it (it never reruns training or evaluation); the
    publish stage names the run's TensorBoard folder after it."""

    name: str = setting(
        "",
        "The run's name in TensorBoard (<name>/<model>/...), MLflow, the published version and the report (empty: "
        "the run folder's name and the date it was first run; on Kubeflow, publish.experiment or 'hubpipe' and "
        "the evaluation's date).",
        flag="--name",
        keyword="name",
        parameter="run_name",
    )


@dataclass(frozen=True)
class PipelineConfig:
    """The whole configuration of a run."""

    data: DataConfig = field(default_factory=DataConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    run: RunConfig = field(default_factory=RunConfig)


@dataclass(frozen=True)
class Setting:
    """One setting of the tree, with what :func:`setting` declared for it."""

    key: str  # dotted, e.g. "train.epochs"
    type: Any  # the annotation: str, int, float, bool or tuple[str, ...]
    default: Any
    help: str
    flag: str = ""
    metavar: str = ""
    keyword: str = ""
    parameter: str = ""


@functools.cache
def settings() -> tuple[Setting, ...]:
    """Every setting of :class:`PipelineConfig`, in the tree's order."""
    found = []
    for section in fields(PipelineConfig):
        cls = typing.get_type_hints(PipelineConfig)[section.name]
        hints = typing.get_type_hints(cls)
        for item in fields(cls):
            names = {key: item.metadata.get(key, "") for key in ("help", "flag", "metavar", "keyword", "parameter")}
            found.append(Setting(f"{section.name}.{item.name}", hints[item.name], item.default, **names))
    return tuple(found)


def setting_of(key: str) -> Setting:
    """The setting named by its dotted ``key``; ConfigError for an unknown one."""
    for item in settings():
        if item.key == key:
            return item
    raise ConfigError(f"unknown setting {key}")


# ---------------------------------------------------------------------------------------------------------------
# Building a config from plain data


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother, short.maxlong = 3, 60, 60, 40
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 5
    return short


_SHORT_REPR = _short_repr()


def shown(value: Any) -> str:
    """``value`` as an error message shows it: its repr, at most :data:`MAX_SHOWN_CHARS` characters.

    The work is bounded too: nested lists (as YAML aliases make them) are not walked beyond a few items and
    levels, and an integer too long for ``repr`` is described by its size.
    """
    try:
        text = _SHORT_REPR.repr(value)
    except ValueError:  # an int over Python's digit limit for str()
        text = f"<an integer of {value.bit_length()} bits>" if isinstance(value, int) else f"<a {type(value).__name__}>"
    return text if len(text) <= MAX_SHOWN_CHARS else f"{text[: MAX_SHOWN_CHARS - 3]}..."


def shown_text(text: str) -> str:
    """``text`` cut to :data:`MAX_SHOWN_CHARS` characters (a parser's message can quote a long line)."""
    return text if len(text) <= MAX_SHOWN_CHARS else f"{text[: MAX_SHOWN_CHARS - 3]}..."


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Converts a YAML/CLI value to the annotated type, or raises ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in (part.strip() for part in value.split(",")) if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {shown(value)}")
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{where}: expected true or false, got {shown(value)}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {shown(value)}")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {shown(value)}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {shown(value)}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {shown(value)}") from None
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {shown(value)}")
        return str(value)
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")  # pragma: no cover - a programming error


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {shown(data)}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted((key for key in data if key not in known), key=str)
    if unknown:
        prefix = f"{where}." if where else ""
        name = unknown[0] if isinstance(unknown[0], str) and len(unknown[0]) <= MAX_SHOWN_CHARS else shown(unknown[0])
        raise ConfigError(
            f"unknown setting {prefix}{name} (known in {where or 'the top level'}: {', '.join(sorted(known))})"
        )
    values: dict[str, Any] = {}
    for name, raw in data.items():
        tp = hints[name]
        path = f"{where}.{name}" if where else name
        if isinstance(tp, type) and is_dataclass(tp):
            values[name] = _build(tp, raw or {}, path)
        else:
            values[name] = _coerce(raw, tp, path)
    return cls(**values)


def from_dict(data: Mapping[str, Any]) -> PipelineConfig:
    """Builds a config from nested plain data (as read from YAML); unknown keys are errors."""
    return validate(_build(PipelineConfig, data or {}, ""))


def to_dict(config: Any) -> dict[str, Any]:
    """Nested plain data (lists instead of tuples), suitable for YAML and JSON."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    return {
        f.name: (
            to_dict(getattr(config, f.name))
            if is_dataclass(getattr(config, f.name))
            else plain(getattr(config, f.name))
        )
        for f in fields(config)
    }


def to_yaml(config: PipelineConfig) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)


def apply_overrides(config: PipelineConfig, overrides: Mapping[str, Any]) -> PipelineConfig:
    """Returns ``config`` with dotted settings replaced, e.g. ``{"train.epochs": 3}``; validates the result."""
    data = to_dict(config)
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise unknown_setting(dotted, data)
            node = node[part]
        if leaf not in node:
            raise unknown_setting(dotted, data)
        node[leaf] = value
    return from_dict(data)


def unknown_setting(dotted: str, data: Mapping[str, Any]) -> ConfigError:
    """The error for an override of a setting that does not exist, with the closest existing names."""
    import difflib

    section, _, leaf = dotted.rpartition(".")
    sections = [name for name, values in data.items() if isinstance(values, dict)]
    if section not in sections:  # a misspelled section: the closest one
        section = next(iter(difflib.get_close_matches(section, sections, n=1, cutoff=0.6)), "")
    keys = list(data[section]) if section else []
    close = [f"{section}.{key}" for key in ([leaf] if leaf in keys else difflib.get_close_matches(leaf, keys, n=3))]
    hint = f"did you mean {' or '.join(close)}?" if close else "`hubpipe config show` lists every setting"
    name = dotted if len(dotted) <= MAX_SHOWN_CHARS else shown(dotted)
    return ConfigError(f"unknown setting {name}; {hint}")


def read_yaml(text: str, what: str) -> Any:
    """The plain data of one YAML document; ConfigError (one line naming ``what``) when it is not valid YAML,
    nests too deeply, or stands for more than :data:`MAX_CONFIG_VALUES` values once its aliases are expanded.

    The size is counted on the composed node graph before anything is built, so an alias bomb costs nothing.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and expanded_size(node) > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"{what} stands for more than {MAX_CONFIG_VALUES:,} values once its YAML aliases are expanded; "
                "a configuration needs far fewer"
            )
        return loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or ""
        context = getattr(exc, "context", None) or ""
        reason = ": " + ", ".join(part for part in (problem, context) if part) if problem or context else ""
        raise ConfigError(f"{what} is not valid YAML{at}{shown_text(reason)}") from None
    except RecursionError:
        raise ConfigError(f"{what} nests its values too deeply") from None
    except ValueError as exc:  # e.g. an integer over Python's digit limit
        raise ConfigError(f"{what} holds a value that cannot be read: {shown(str(exc))}") from None
    finally:
        loader.dispose()


def expanded_size(root: yaml.Node) -> int:
    """The number of nodes under ``root`` with every alias expanded, counted without expanding them: an alias
    is the node it names, whose count is computed once. A node that contains itself counts as unbounded."""
    counts: dict[int, int] = {}
    open_nodes: set[int] = set()

    def count(node: yaml.Node) -> int:
        key = id(node)
        if key in counts:
            return counts[key]
        if key in open_nodes:
            raise _Unbounded
        open_nodes.add(key)
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        counts[key] = 1 + sum(count(child) for child in children)
        open_nodes.discard(key)
        return counts[key]

    try:
        return count(root)
    except _Unbounded:
        return MAX_CONFIG_VALUES + 1


class _Unbounded(Exception):
    """A YAML node that contains itself through an alias."""


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """Defaults, then the YAML file at ``path`` (if any), then ``overrides``; validated once."""
    data: dict[str, Any] = {}
    if path:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        data = read_yaml(text, f"config file {path}") or {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(data).__name__}")
    config = from_dict(data)
    if overrides:
        config = apply_overrides(config, overrides)
    return config


# ---------------------------------------------------------------------------------------------------------------
# Validation


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _check_choice(value: str, choices: tuple[str, ...], where: str) -> None:
    _check(value in choices, f"{where} must be one of {', '.join(choices)}, got {shown(value)}")


def validate(config: PipelineConfig) -> PipelineConfig:
    """Checks every value's range and choices; raises ConfigError with one readable line."""
    d, v, t, e = config.data, config.validate, config.train, config.evaluate
    _check(bool(d.source.strip()), "data.source must not be empty")
    _check_choice(d.layout, LAYOUTS, "data.layout")
    _check(0.0 < d.test_fraction < 1.0, f"data.test_fraction must be between 0 and 1, got {shown(d.test_fraction)}")
    _check(0.0 < d.percent <= 100.0, f"data.percent must be in (0, 100], got {shown(d.percent)}")
    _check(32 <= d.image_size <= 1024, f"data.image_size must be between 32 and 1024, got {shown(d.image_size)}")
    _check(d.max_file_bytes > 0, "data.max_file_bytes must be positive")
    _check(d.max_pixels > 0, "data.max_pixels must be positive")
    _check(d.max_extract_bytes > 0, "data.max_extract_bytes must be positive")
    for name in ("duplicates_in_class", "duplicates_across_classes", "leakage"):
        _check_choice(getattr(d, name), DUPLICATE_POLICIES, f"data.{name}")
    _check(d.num_shards >= 0, "data.num_shards must be 0 (automatic) or positive")
    _check_choice(v.policy, VALIDATION_POLICIES, "validate.policy")
    drift = v.drift_threshold
    _check(0.0 < drift <= 1.0, f"validate.drift_threshold must be in (0, 1], got {shown(drift)}")
    _check(v.min_images_per_class >= 0, "validate.min_images_per_class must not be negative")
    _check(len(t.backbones) > 0, "train.backbones must name at least one backbone")
    _check(len(set(t.backbones)) == len(t.backbones), "train.backbones lists a backbone twice")
    _check(all(b.strip() for b in t.backbones), "train.backbones has an empty name")
    _check(1 <= t.epochs <= 1000, f"train.epochs must be between 1 and 1000, got {shown(t.epochs)}")
    _check(1 <= t.batch_size <= 4096, f"train.batch_size must be between 1 and 4096, got {shown(t.batch_size)}")
    _check(0.0 < t.learning_rate < 10.0, f"train.learning_rate must be positive, got {shown(t.learning_rate)}")
    _check(0.0 < t.fine_tune_learning_rate < 10.0, "train.fine_tune_learning_rate must be positive")
    _check(t.fine_tune_layers >= 0, "train.fine_tune_layers must not be negative")
    _check(t.fine_tune_epochs >= 0, "train.fine_tune_epochs must not be negative")
    _check(t.baseline_epochs >= 1, "train.baseline_epochs must be at least 1")
    _check_choice(t.precision, PRECISIONS, "train.precision")
    _check_choice(t.engine, ENGINES, "train.engine")
    _check(t.decode_cache_mb >= 0, "train.decode_cache_mb must not be negative")
    _check(0.0 <= e.min_accuracy <= 1.0, f"evaluate.min_accuracy must be in [0, 1], got {shown(e.min_accuracy)}")
    _check(-1.0 <= e.min_margin_over_baseline <= 1.0, "evaluate.min_margin_over_baseline must be in [-1, 1]")
    _check(0.0 <= e.max_drop_vs_blessed <= 1.0, "evaluate.max_drop_vs_blessed must be in [0, 1]")
    _check_choice(e.rule, GATE_RULES, "evaluate.rule")
    for name in ("tensorboard_name", "namespace"):
        value = getattr(config.publish, name)
        _check(
            bool(re.fullmatch(K8S_NAME, value)),
            f"publish.{name} must be a Kubernetes name (lowercase letters, digits and '-', at most 63), "
            f"got {shown(value)}",
        )
    experiment = config.publish.experiment
    _check(
        not experiment or bool(re.fullmatch(EXPERIMENT_NAME, experiment)),
        "publish.experiment must be letters, digits, '.', '_' and '-' (at most 100, starting with a letter or "
        f"digit), got {shown(experiment)}",
    )
    pvc = config.publish.pvc_name
    _check(
        not pvc or bool(re.fullmatch(K8S_VOLUME_CLAIM, pvc)),
        f"publish.pvc_name is not a valid claim name: {shown(pvc)}",
    )
    _check(bool(config.track.experiment.strip()), "track.experiment must not be empty")
    name = config.run.name
    _check(
        not name or bool(re.fullmatch(EXPERIMENT_NAME, name)),
        "run.name (--name) must be letters, digits, '.', '_' and '-' (at most 100, starting with a letter or "
        f"digit), got {shown(name)}",
    )
    return config


def section_dict(config: PipelineConfig, *sections: str) -> dict[str, Any]:
    """The named sections as plain data, e.g. for a stage fingerprint."""
    full = to_dict(config)
    return {name: full[name] for name in sections}


__all__ = [
    "DataConfig",
    "EvaluateConfig",
    "PipelineConfig",
    "PublishConfig",
    "RunConfig",
    "RunnerConfig",
    "Setting",
    "TrackConfig",
    "TrainConfig",
    "ValidateConfig",
    "apply_overrides",
    "from_dict",
    "load_config",
    "replace",
    "section_dict",
    "setting",
    "setting_of",
    "settings",
    "shown",
    "to_dict",
    "to_yaml",
    "validate",
]
