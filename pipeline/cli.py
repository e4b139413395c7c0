"""The ``hubpipe`` command line.

Subcommands live in :mod:`hubpipe.pipeline.commands` and are imported only when used, so ``hubpipe --help``
answers at once; TensorFlow, Beam, TFDV and kfp are imported inside the commands that need them.

Exit codes: 0 success, 1 anything else, 2 bad input (see errors.py for the rule), 3 data rejected by the
validation policy, 4 publishing lost a race with another run, 5 the publish root names a blessed model that
cannot be read. A user mistake prints one line; ``--debug`` shows tracebacks and debug logs.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from hubpipe.pipeline.core.errors import HubpipeError
from hubpipe.pipeline.core.log_setup import configure_logging
from hubpipe.pipeline.core.version import __version__

#: Command name -> "module:attribute" of its click command. Names are a contract that docs rely on.
COMMANDS: dict[str, str] = {
    "run": "hubpipe.pipeline.commands.run:run",
    "data": "hubpipe.pipeline.commands.data:data",
    "config": "hubpipe.pipeline.commands.config:config",
    "models": "hubpipe.pipeline.commands.models:models",
    "predict": "hubpipe.pipeline.commands.predict:predict",
    "compile": "hubpipe.pipeline.commands.kubeflow:compile_command",
    "submit": "hubpipe.pipeline.commands.kubeflow:submit_command",
    "tensorboard": "hubpipe.pipeline.commands.tensorboard:tensorboard",
    "report": "hubpipe.pipeline.commands.report:report",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args: Any, lazy_commands: dict[str, str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            module_name, _, attribute = self.lazy_commands[cmd_name].partition(":")
            return getattr(importlib.import_module(module_name), attribute)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(__version__, prog_name="hubpipe")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def cli(debug: bool) -> None:
    """Transfer learning for image classification with TF Hub feature extractors.

    A pipeline of five stages (ingest, validate, train, evaluate, publish) that runs locally on Apache
    Beam's DirectRunner or on Kubeflow Pipelines. Start with `hubpipe run`.
    """
    configure_logging(debug)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: runs the CLI and maps errors to one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args)
    finally:
        _collect_garbage()


def _collect_garbage() -> None:
    """Frees the garbage cycles of TensorFlow objects while their modules still exist. Left to the interpreter's
    shutdown, a cycle holding a traced function was sometimes freed after TensorFlow's modules were cleared, and
    its ``__del__`` printed "Exception ignored in: <function AtomicFunction.__del__ ...>" with a traceback
    after a successful three-backbone run."""
    if "tensorflow" in sys.modules:
        gc.collect()


def _run(args: list[str]) -> int:
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="hubpipe", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:  # usage errors: click prints its own message
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except HubpipeError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:  # a bug: one line unless --debug
        if debug:
            raise
        click.echo(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
