"""``hubpipe tensorboard``: serve the published TensorBoard logs (every run, every model)."""

from __future__ import annotations

import time

import click

from hubpipe.pipeline.core.errors import UsageError


def default_logdir() -> str:
    """The folder of the default publish roots (where ``hubpipe run`` publishes without publish.root): every
    experiment's logs, as ``<experiment>/tensorboard/<run>/<model>`` runs."""
    from hubpipe.components.common.publish_root import published_dir

    return published_dir()


def start_tensorboard(logdir: str, port: int, host: str) -> str:
    """Starts TensorBoard in a background thread of this process; returns its URL."""
    from tensorboard import program

    from hubpipe.pipeline.core.runtime import import_tensorflow

    import_tensorflow()  # TensorBoard reads gs:// logs through TensorFlow's file systems
    server = program.TensorBoard()
    server.configure(logdir=logdir, port=port, host=host)
    try:
        return server.launch()
    except program.TensorBoardServerException as exc:
        raise UsageError(f"cannot start TensorBoard: {exc.msg}") from None


@click.command()
@click.option(
    "--logdir",
    metavar="DIR",
    help="Logs to serve (a folder or gs:// path). Default: the default publish roots of every experiment.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=6006, show_default=True, help="0 picks a free port.")
@click.option("--host", default="localhost", show_default=True, help="Interface to listen on (0.0.0.0 for all).")
def tensorboard(logdir: str | None, port: int, host: str) -> None:
    """Start TensorBoard on the published logs: scalars, HParams, images, projector of every run.

    Runs until interrupted (Ctrl+C). With publish.root set in your configuration, pass
    --logdir ROOT/tensorboard.
    """
    from hubpipe.components.common import storage

    logdir = logdir or default_logdir()
    if not storage.is_remote(logdir) and not storage.exists(logdir):
        raise UsageError(f"no published logs at {logdir}; run `hubpipe run` first or pass --logdir")
    url = start_tensorboard(logdir, port, host)
    click.echo(f"TensorBoard at {url} serving {logdir} (Ctrl+C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopped")
