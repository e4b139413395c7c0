"""``hubpipe models``: list backbone presets and stage backbones for clusters without internet."""

from __future__ import annotations

import click

from hubpipe.components.backbones.offline import NAMES as OFFLINE_BACKBONES


@click.group()
def models() -> None:
    """Backbones: list presets, stage them for machines without internet.

    Any TF Hub handle, Kaggle model URL, SavedModel directory or gs:// path can be used as a backbone.
    A cluster without internet uses a staged copy: `hubpipe models pull HANDLE --to DIR` on a machine with
    network access, then `--backbone DIR`.
    """


@models.command("list")
def list_models() -> None:
    """Show the presets: input size, output size, where each resolves from and whether it works offline."""
    from hubpipe.components.backbones.registry import DEFAULT_BACKBONE, availability, list_backbones

    rows = [("NAME", "INPUT", "OUTPUT", "AVAILABLE", "SOURCE")]
    for spec in list_backbones():
        name = f"{spec.name} (default)" if spec.name == DEFAULT_BACKBONE else spec.name
        output = str(spec.output_dim) if spec.output_dim else "?"
        rows.append((name, str(spec.input_size), output, availability(spec), spec.handle))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


@models.command("pull")
@click.argument("handle")
@click.option("--to", "dest", required=True, help="Directory or gs:// path that receives the SavedModel.")
@click.option("--force", is_flag=True, help="Replace a non-empty destination.")
def pull(handle: str, dest: str, force: bool) -> None:
    """Download HANDLE (a preset name or any handle) once and store it as a SavedModel at --to.

    Needs network access to the model host. The copy keeps the source's fingerprint, so embeddings cached
    for the URL stay valid for the directory.
    """
    from hubpipe.components.backbones.staging import pull as pull_backbone

    staged = pull_backbone(handle, dest, force=force)
    click.echo(f"staged {handle} at {staged}; use it with --backbone {staged}")


@models.command("import")
@click.argument("name", type=click.Choice(OFFLINE_BACKBONES))
@click.option("--to", "dest", required=True, help="Directory or gs:// path that receives the SavedModel.")
@click.option("--force", is_flag=True, help="Replace a non-empty destination.")
def import_model(name: str, dest: str, force: bool) -> None:
    """Build the offline backbone NAME into --to (e.g. to bake it into an image or a PVC); no network needed."""
    from hubpipe.components.backbones.staging import import_offline

    staged = import_offline(dest, force=force, name=name)
    click.echo(f"built {name} at {staged}; use it with --backbone {staged}")
