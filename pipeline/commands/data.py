"""``hubpipe data``: datasets the pipeline can use."""

from __future__ import annotations

from pathlib import Path

import click

from hubpipe.pipeline.core.errors import UsageError


@click.group()
def data() -> None:
    """Create and inspect datasets."""


@data.command("sample")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--train-per-class", type=click.IntRange(1, 10_000), default=75, show_default=True)
@click.option("--test-per-class", type=click.IntRange(1, 10_000), default=25, show_default=True)
def sample(directory: Path, seed: int, train_per_class: int, test_per_class: int) -> None:
    """Write the embedded sample dataset (10 classes, train/<class>/*.jpg and test/<class>/*.jpg) to DIRECTORY."""
    from hubpipe.data.sample import CLASSES, SampleSpec, generate

    if directory.exists() and any(directory.iterdir()):
        raise UsageError(f"{directory} is not empty; choose a new or empty directory")
    spec = SampleSpec(seed=seed, train_per_class=train_per_class, test_per_class=test_per_class)
    generate(directory, spec)
    total = len(CLASSES) * (train_per_class + test_per_class)
    click.echo(f"wrote {total} images in {len(CLASSES)} classes to {directory}")
