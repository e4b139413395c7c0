"""The container image's entry point: ``hubpipe`` for its own arguments, any other command as it is.

The image must work both ways it is started:

* ``podman run IMAGE run --until validate`` (or a Kubernetes Job with only ``args``): the arguments are a hubpipe
  command line, so they go to ``hubpipe``;
* ``kfp.local.DockerRunner`` and Docker pass a component's command (``sh -c ...``) as the container's command,
  behind the image's ENTRYPOINT (Kubernetes replaces the entry point instead): a command that is not one of
  hubpipe's runs as it is.

Only the CLI's table of subcommand names is imported, so deciding costs no TensorFlow import.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from hubpipe.pipeline.cli import COMMANDS
from hubpipe.pipeline.cli import main as hubpipe_main


def is_hubpipe_command_line(args: Sequence[str]) -> bool:
    """No arguments, an option (``--help``, ``--debug``) or a hubpipe subcommand first."""
    return not args or args[0].startswith("-") or args[0] in COMMANDS


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if is_hubpipe_command_line(args):
        return hubpipe_main(args)
    try:
        os.execvp(args[0], args)
    except OSError as exc:  # not found or not executable: say so in one line, as a shell would
        print(f"hubpipe-entrypoint: {args[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # pragma: no cover (execvp does not return)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
