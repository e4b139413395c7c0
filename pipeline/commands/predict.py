"""``hubpipe predict``: classify image files with a trained model."""

from __future__ import annotations

from pathlib import Path

import click

from hubpipe.pipeline.errors import DataError, UsageError


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top-k", type=click.IntRange(1, 1000), default=3, show_default=True, help="Classes shown per image.")
@click.option(
    "--batch-size", type=click.IntRange(1, 4096), default=32, show_default=True, help="Images per model call."
)
def predict(model: Path, images: tuple[Path, ...], top_k: int, batch_size: int) -> None:
    """Print the top classes of IMAGES (files or directories) by MODEL.

    MODEL is a serving SavedModel folder, a model folder (train/models/<name>) or a run folder (its best
    model by train/summary.json). One line per image: the path, then class and probability pairs. An
    unreadable image gets one line on stderr and makes the command exit with status 1 at the end.
    """
    from hubpipe.components.train.serving import classify_files, collect_images, resolve_serving_dir

    serving_dir = resolve_serving_dir(model)
    files = collect_images(images)
    if not files:
        raise UsageError(f"no image files in {', '.join(str(path) for path in images)}")
    failures = 0
    for prediction in classify_files(serving_dir, files, top_k, batch_size):
        if prediction.error:
            failures += 1
            click.echo(f"{prediction.path}: cannot classify: {prediction.error}", err=True)
        else:
            shown = "  ".join(f"{label} {probability:.3f}" for label, probability in prediction.top)
            click.echo(f"{prediction.path}  {shown}")
    if failures:
        raise DataError(f"{failures} of {len(files)} images could not be classified")
