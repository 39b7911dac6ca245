"""List the registered resizers and the arguments each takes.

Pass any of them to --resizer, with arguments through --resizer-args '{"n": 32, "r": 2}'.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    from taskresize.resizers.registry import list_resizers, resizer_arguments

    names = list_resizers()
    width = max(map(len, names))  # every name fits its column: "learnable-strided" is 17 characters
    for name in names:  # defaults as --resizer-args takes them (JSON)
        arguments = ", ".join(_shown(a) for a in resizer_arguments(name).values())
        print(f"{name:{width}s}  {arguments}")
    return 0


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
