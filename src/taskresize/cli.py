"""The ``taskresize`` command: one subcommand per module in ``taskresize.commands``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__

# Subcommand name -> module in taskresize.commands exposing ``add_arguments(parser)``, ``run(args) -> int``
# and a docstring whose first line is the command's summary.
COMMANDS = {
    "demo": "demo",
    "train": "train",
    "eval": "evaluate",
    "list": "list_resizers",
    "resize": "resize",
    "export": "export",
    "show": "show",
    "info": "info",
    "sweep": "sweep",
}


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit status 2, no traceback."""


def guarded(fn, *args, **kwargs):
    """Call ``fn``; the library's errors about the user's input become :class:`UserError` (one line, no traceback)."""
    from .backbones import BackboneError
    from .data.folder import DataError
    from .data.images import ImageDecodeError
    from .io import ResizerFileError
    from .resizers.registry import ResizerArgumentError, UnknownResizerError
    from .training.config import ConfigError
    from .training.run import RunError

    try:
        return fn(*args, **kwargs)
    except (BackboneError, ConfigError, DataError, ImageDecodeError, ResizerArgumentError, ResizerFileError,
            RunError, UnknownResizerError) as error:  # fmt: skip
        raise UserError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskresize",
        description="Learned image resizers trained jointly with vision models, and Pillow-exact classic resizers.",
    )
    parser.add_argument("--version", action="version", version=f"taskresize {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"taskresize.commands.{module_name}")
        doc = (module.__doc__ or "").strip()
        command = sub.add_parser(
            name, help=doc.splitlines()[0] if doc else None, description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        module.add_arguments(command)
        command.set_defaults(command_function=module.run)  # not `run`: eval has a --run option
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command_function", None):
        parser.print_help()
        sys.exit(2)
    try:
        status = args.command_function(args)
    except UserError as error:
        print(f"taskresize {args.command}: error: {error}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt as interrupt:
        print(f"taskresize {args.command}: interrupted{f' ({interrupt})' if str(interrupt) else ''}", file=sys.stderr)
        status = 130
    except BrokenPipeError:  # output piped into a reader that stopped early (`| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail again
        status = 0
    sys.exit(status or 0)
