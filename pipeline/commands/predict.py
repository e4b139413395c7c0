"""``hubpipe predict``: classify image files with a trained model."""

from __future__ import annotations

from pathlib import Path

import click

from hubpipe.pipeline.commands.options import config_flags
from hubpipe.pipeline.core.config import PipelineConfig
from hubpipe.pipeline.core.errors import DataError, UsageError


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@config_flags("train.backbones")
@click.option("--top-k", type=click.IntRange(1, 1000), default=3, show_default=True, help="Classes shown per image.")
@click.option(
    "--batch-size", type=click.IntRange(1, 4096), default=32, show_default=True, help="Images per model call."
)
@click.option(
    "--trust-saved-model",
    is_flag=True,
    help="Run a SavedModel that hubpipe did not write (no model.json beside it): its graph can read and write "
    "files as you.",
)
def predict(
    *,
    config: PipelineConfig,
    model: Path,
    images: tuple[Path, ...],
    top_k: int,
    batch_size: int,
    trust_saved_model: bool,
) -> None:
    """Print the top classes of IMAGES (files or directories) by MODEL.

    MODEL is a model folder (train/models/<name>, or a version in the publish root), its serving folder,
    or a run folder (its best model by train/summary.json). One line per image: the path, then class and
    probability pairs. An unreadable image, a file over data.max_file_bytes or an image over
    data.max_pixels (hubpipe's configuration: --config, --set) gets one line on stderr and makes the
    command exit with status 1 at the end.

    No code from the model folder runs: hubpipe rebuilds the model with its own code and reads only the
    weights. A transfer model's backbone is a preset, or one that --backbone (train.backbones) names with
    the fingerprint model.json records.

    \b
    A SavedModel on its own (no model.json) is a graph whose operations can
    read and write files as you, chosen by whoever wrote it: it is refused,
    and runs only with --trust-saved-model.
    """
    from hubpipe.components.train.serving import classify_files, collect_images, load_classifier, resolve_model_dir

    model_dir = resolve_model_dir(model)
    files = collect_images(images)
    if not files:
        raise UsageError(f"no image files in {', '.join(str(path) for path in images)}")
    classifier = load_classifier(model_dir, backbones=config.train.backbones, trust_saved_model=trust_saved_model)
    failures = 0
    for prediction in classify_files(classifier, files, top_k, config.data, batch_size):
        if prediction.error:
            failures += 1
            click.echo(f"{prediction.path}: cannot classify: {prediction.error}", err=True)
        else:
            shown = "  ".join(f"{label} {probability:.3f}" for label, probability in prediction.top)
            click.echo(f"{prediction.path}  {shown}")
    if failures:
        raise DataError(f"{failures} of {len(files)} images could not be classified")
