"""The validate executor over real ingest output: first run, changed data against the previous run (fail and
warn), a curated schema, and the artifacts the runner keeps."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from validate_data import jpeg, split_dataset

from hubpipe.components.ingest.executor import run as run_ingest
from hubpipe.components.validate import schema as schemas
from hubpipe.components.validate.executor import run as run_validate
from hubpipe.pipeline.core.artifacts import read_json
from hubpipe.pipeline.core.config import load_config
from hubpipe.pipeline.core.stage import StageContext, StageResult

FIRST = {"birds": (12, 4), "cats": (12, 4), "dogs": (12, 4)}
CHANGED = {"cats": (3, 2), "dogs": (14, 4), "owls": (12, 4)}  # birds gone, owls new, cats nearly gone


class Runs:
    """Runs ingest and validate over one dataset folder (the same source for every run)."""

    def __init__(self, tmp: Path):
        self.tmp, self.data, self.count = tmp, tmp / "dataset", 0

    def ingest(self, classes: dict, seed: int) -> Path:
        shutil.rmtree(self.data, ignore_errors=True)
        split_dataset(self.data, classes, seed=seed)
        ctx = self._context("ingest", {})
        run_ingest(ctx)
        return ctx.output_dir

    def validate(self, ingest_dir: Path, previous: Path | None = None, **settings) -> tuple[StageContext, StageResult]:
        ctx = self._context("validate", {"ingest": ingest_dir}, previous, settings)
        return ctx, run_validate(ctx)

    def _context(self, name: str, inputs: dict, previous: Path | None = None, settings: dict | None = None):
        self.count += 1
        output = self.tmp / f"{name}-{self.count}"
        output.mkdir()
        config = load_config(overrides={"data.source": str(self.data), **(settings or {})})
        return StageContext(
            name, config, inputs, output, self.tmp / "cache", self.tmp / "hubpipe-cache", "test", previous_dir=previous
        )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(tmp_path_factory.mktemp("validate"))


@pytest.fixture(scope="module")
def first(runs: Runs) -> tuple[Path, StageContext, StageResult]:
    ingest_dir = runs.ingest(FIRST, seed=1)
    return (ingest_dir, *runs.validate(ingest_dir))


@pytest.fixture(scope="module")
def changed(runs: Runs, first) -> Path:
    return runs.ingest(CHANGED, seed=2)


def kinds(result: StageResult) -> set[str]:
    return {line.split(": ", 1)[1].split(" ", 1)[0] for line in result.results["anomaly_list"]}


def test_first_run_infers_a_schema_and_passes(first) -> None:
    _, ctx, result = first
    assert result.rejected is None
    assert result.results["verdict"] == "passed"
    assert result.results["schema"] == "inferred"
    assert result.results["class_drift_linf"] is None
    assert (result.results["train_examples"], result.results["test_examples"]) == (36, 12)
    for artifact in ("statistics/train.pb", "statistics/test.pb", "schema.pbtxt", "anomalies.json", "report.html"):
        assert (ctx.output_dir / artifact).is_file(), artifact
    schema = schemas.load_schema(ctx.output_dir / "schema.pbtxt")
    assert schemas.string_domain(schema, "label/text") == ["birds", "cats", "dogs"]
    page = (ctx.output_dir / "report.html").read_text(encoding="utf-8")
    assert "Class balance" in page and "image_format_histogram" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"<(script|link|iframe)\b|(src|href)=\S*https?://", page, re.IGNORECASE)  # works offline


def test_changed_classes_and_drift_reject_the_run_with_a_readable_list(runs: Runs, first, changed: Path) -> None:
    _, first_ctx, _ = first
    ctx, result = runs.validate(changed, previous=first_ctx.output_dir)
    assert result.results["schema"] == "previous run"
    assert {"unexpected_classes", "missing_classes", "class_distribution_drift", "few_images_per_class"} <= kinds(
        result
    )
    assert result.results["class_drift_linf"] > 0.2
    assert result.rejected is not None
    assert "owls" in result.rejected and "birds" in result.rejected
    assert "few_images_per_class" not in result.rejected  # a warning never rejects
    assert read_json(ctx.output_dir / "anomalies.json")
    schema = schemas.load_schema(ctx.output_dir / "schema.pbtxt")
    assert schemas.string_domain(schema, "label/text") == ["birds", "cats", "dogs"]  # not accepted
    assert read_json(ctx.output_dir / "baseline.json")["train_statistics"] == "baseline/train.pb"
    _, again = runs.validate(changed, previous=ctx.output_dir)  # still compared with the accepted first run
    assert again.results["class_drift_linf"] == result.results["class_drift_linf"]
    assert again.rejected is not None


def test_policy_warn_reports_and_accepts_the_new_classes(runs: Runs, first, changed: Path) -> None:
    _, first_ctx, _ = first
    ctx, result = runs.validate(changed, previous=first_ctx.output_dir, **{"validate.policy": "warn"})
    assert result.rejected is None
    assert result.results["verdict"] == "warned"
    assert result.results["anomalies"] >= 3
    schema = schemas.load_schema(ctx.output_dir / "schema.pbtxt")
    assert schemas.string_domain(schema, "label/text") == ["cats", "dogs", "owls"]


def test_curated_schema_and_byte_limit(runs: Runs, first, tmp_path: Path) -> None:
    ingest_dir, first_ctx, _ = first
    schema = schemas.load_schema(first_ctx.output_dir / "schema.pbtxt")
    schemas.set_string_domain(schema, "label/text", ["birds", "cats"])
    next(f for f in schema.feature if f.name == "image/encoded").ClearField("domain_info")
    schemas.write_schema(schema, tmp_path / "curated.pbtxt")
    settings = {"validate.schema": str(tmp_path / "curated.pbtxt"), "data.max_file_bytes": 500}
    _, result = runs.validate(ingest_dir, **settings)
    assert result.results["schema"].startswith("curated")
    assert {"unexpected_classes", "image_over_byte_limit"} <= kinds(result)
    assert "dogs" in result.rejected


def _hand_made_ingest_output(folder: Path) -> Path:
    """An ingest-shaped folder whose examples include a WebP image (which ingest itself would transcode)."""
    import hashlib
    import io

    from PIL import Image

    from hubpipe.components.common import features as f
    from hubpipe.pipeline.core.runtime import import_tensorflow

    tf = import_tensorflow()
    (folder / f.EXAMPLES_DIR).mkdir(parents=True)
    f.write_labels(folder, ["cats", "dogs"])
    webp = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(webp, format="WEBP")
    images = [(jpeg(i), "jpeg") for i in range(20)] + [(webp.getvalue(), "webp")]
    for split in f.SPLITS:
        with tf.io.TFRecordWriter(str(folder / f.EXAMPLES_DIR / f"{split}-00000-of-00001.tfrecord")) as writer:
            for i, (data, fmt) in enumerate(images):
                values = {
                    **dict.fromkeys((f.HEIGHT, f.WIDTH, f.TRANSCODED), 1),
                    f.IMAGE: data,
                    f.FORMAT: fmt,
                    f.SHA256: hashlib.sha256(data).hexdigest(),
                    f.LABEL: i % 2,
                    f.LABEL_TEXT: ["cats", "dogs"][i % 2],
                    f.ID: f"{split}{i}",
                    f.SPLIT: split,
                    f.SOURCE_PATH: f"{split}/{i}",
                }
                writer.write(f.make_example(values))
    return folder


def test_unsupported_image_formats_are_anomalies(runs: Runs, tmp_path: Path) -> None:
    _, result = runs.validate(_hand_made_ingest_output(tmp_path / "ingest"))
    assert "unsupported_image_format" in kinds(result)
    assert any("webp" in line for line in result.results["anomaly_list"])
    assert result.rejected is not None
