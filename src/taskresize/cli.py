"""The ``taskresize`` command: one subcommand per module in ``taskresize.commands``."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from taskresize.errors import TaskresizeError
from taskresize.version import __version__

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
    "compare": "compare",
}


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line (not the usage first): ``taskresize train: error: ...``."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def summary(module_name: str) -> str:
    """The first line of a command module's docstring, read from its source without importing it (the modules
    import torch and the like, which ``taskresize --help`` must not wait for)."""
    spec = importlib.util.find_spec(f"taskresize.commands.{module_name}")
    try:
        source = spec.loader.get_source(spec.name) if spec and spec.loader else None  # type: ignore[attr-defined]
    except (ImportError, OSError):
        source = None
    doc = ast.get_docstring(ast.parse(source)) if source else None
    if doc is None:  # no source at hand (a zip or a frozen build): import it after all
        doc = importlib.import_module(f"taskresize.commands.{module_name}").__doc__
    return (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first argument that is not an option), if any."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; of the subcommands, only the one ``argv`` names is imported and given its options (all of them
    when ``argv`` is None). The others are listed with their summaries, so ``--help`` and ``--version`` stay fast.
    """
    parser = Parser(
        prog="taskresize",
        description="Learned image resizers trained jointly with vision models, and Pillow-exact classic resizers.",
    )
    parser.add_argument("--version", action="version", version=f"taskresize {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = chosen_command(argv) if argv is not None else None
    for name, module_name in COMMANDS.items():
        if argv is not None and name != chosen:
            sub.add_parser(name, help=summary(module_name), add_help=False)
            continue
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
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "command_function", None):
        parser.print_help()
        sys.exit(2)
    try:
        status = args.command_function(args)
    except TaskresizeError as error:  # every mistake the user can fix: the message says how
        print(f"taskresize {args.command}: error: {error}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt as interrupt:
        print(f"taskresize {args.command}: interrupted{f' ({interrupt})' if str(interrupt) else ''}", file=sys.stderr)
        status = 130
    except BrokenPipeError:  # output piped into a reader that stopped early (`| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail again
        status = 0
    sys.exit(status or 0)
