"""The ``taskresize`` command: one subcommand per module in ``taskresize.commands``."""

from __future__ import annotations

import argparse
import ast
import errno
import importlib
import importlib.util
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence

from taskresize.commands.options import renamed_flags
from taskresize.errors import TaskresizeError, did_you_mean
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
    "push": "push",
}


EXIT_STATUS = (
    "Exit status: 0 done; 1 done in part (files skipped or runs failed, each one named); 2 nothing done, the line "
    "says what to change; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM): finished work is kept, no file is left "
    "half written."
)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it ends as on Ctrl-C: temporary files removed, one line."""


def _terminate(signum, frame) -> None:
    raise Terminated("terminated")


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line (not the usage first): ``taskresize train: error: ...``."""

    def error(self, message: str):  # type: ignore[override]
        choice = re.search(r"invalid choice: '(.*?)' \(choose from (.*)\)", message)
        if choice:  # a mistyped subcommand or choice: the closest one
            message += did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def refuse_unknown(self, unknown: list[str]) -> None:
        """Refuse arguments this (sub)command does not take, with the flags they look like."""
        known = [s for a in self._actions if a.help != argparse.SUPPRESS for s in a.option_strings]
        hints = "".join(did_you_mean(u.partition("=")[0], known) for u in unknown if u.startswith("-"))
        self.error(f"unrecognized arguments: {' '.join(unknown)}.{hints}" if hints else
                   f"unrecognized arguments: {' '.join(unknown)}")  # fmt: skip


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
        epilog=EXIT_STATUS,
    )
    parser.add_argument("--version", action="version", version=f"taskresize {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
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
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    argv = renamed_flags(chosen_command(argv), argv)  # old spellings of flags, for one release
    parser = build_parser(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        chosen = command.choices.get(args.command) if command is not None and args.command else None
        (chosen if isinstance(chosen, Parser) else parser).refuse_unknown(unknown)
    if not getattr(args, "command_function", None):
        parser.print_help()
        sys.exit(2)
    handle_term = threading.current_thread() is threading.main_thread()
    handle_term = handle_term and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # not over a caller's own
    if handle_term:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        status = args.command_function(args)
    except TaskresizeError as error:  # every mistake the user can fix: the message says how
        print(f"taskresize {args.command}: error: {error}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt as interrupt:
        print(f"taskresize {args.command}: interrupted{f' ({interrupt})' if str(interrupt) else ''}", file=sys.stderr)
        status = 143 if isinstance(interrupt, Terminated) else 130
    except BrokenPipeError:  # output piped into a reader that stopped early (`| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail again
        status = 0
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {error.filename}" if error.filename else ""
        print(f"taskresize {args.command}: error: no space left on the device{where}: free some space (or write "
              "elsewhere with --output) and run the command again", file=sys.stderr)  # fmt: skip
        status = 2
    finally:
        if handle_term:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.exit(status or 0)
