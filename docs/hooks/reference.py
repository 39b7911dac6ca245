"""MkDocs hook: the command-line reference, generated from ``taskresize``'s own argparse parsers at build time.

``reference/cli.md`` is written from :func:`taskresize.cli.build_parser` (every subcommand's ``--help``, as the
terminal shows it at 100 columns), so the page cannot drift from the flags. ``tests/test_docs.py`` imports
:func:`cli_reference` too, to check that every subcommand gets a section.
"""

from __future__ import annotations

import argparse
import os
from contextlib import contextmanager

CLI_PAGE = "reference/cli.md"
WIDTH = "100"


@contextmanager
def _columns(width: str):
    """argparse wraps help at the terminal's width (``$COLUMNS``): a fixed one while the page is written."""
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = width
    try:
        yield
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, with all its options, in the order ``taskresize --help`` lists them."""
    from taskresize.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def cli_reference() -> str:
    """The markdown of the command-line reference page."""
    from taskresize.cli import build_parser

    with _columns(WIDTH):
        top = build_parser().format_help().rstrip()
        commands = {name: parser.format_help().rstrip() for name, parser in subcommands().items()}
    lines = [
        "# Command line",
        "",
        "Every subcommand's `--help`, generated from the command's own parser when this site is built. The same "
        "text is one `taskresize COMMAND --help` away. Errors are one line, `taskresize COMMAND: error: ...`, "
        "with exit status 2.",
        "",
        "```text",
        top,
        "```",
        "",
    ]
    for name, text in commands.items():
        lines += [f"## taskresize {name}", "", "```text", text, "```", ""]
    return "\n".join(lines)


def on_files(files, config):  # MkDocs calls it with the files it found and the config
    from mkdocs.structure.files import File

    files.append(File.generated(config, CLI_PAGE, content=cli_reference()))
    return files
