"""List the registered resizers: learned or classic, what each is, and the arguments it takes.

Pass any of them to --resizer, with arguments through --resizer-args '{"n": 32, "r": 2}'. Learned resizers are
trained with the model (taskresize train, compare); classic ones are fixed filters (and resize's methods).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    from taskresize.resizers.registry import list_resizers, resizer_arguments, resizer_info

    names = list_resizers()
    width = max(map(len, names))  # every name fits its column: "learnable-strided" is 17 characters
    for learned in (True, False):
        print("learned (trained with the model):" if learned else "\nclassic (fixed filters):")
        for name in list_resizers(learned=learned):
            info = resizer_info(name)
            print(f"  {name:{width}s}  {_plain(info.description)}")
            arguments = ", ".join(_shown(a) for a in resizer_arguments(name).values())  # as --resizer-args takes them
            if arguments:
                print(f"  {'':{width}s}    arguments: {arguments}")
    return 0


def _plain(text: str) -> str:
    """A docstring line without its reStructuredText roles and literals (``:class:`X``` and ````x```` -> X, x)."""
    import re

    return re.sub(r"``([^`]*)``", r"\1", re.sub(r":\w+:`~?([^`]*)`", r"\1", text))


def _shown(argument) -> str:
    """``name=default`` with the default as JSON (as --resizer-args takes it); ``name`` alone when required."""
    import inspect
    import json

    if argument.default is inspect.Parameter.empty:
        return argument.name
    try:
        return f"{argument.name}={json.dumps(argument.default)}"
    except TypeError:
        return f"{argument.name}={argument.default!r}"
