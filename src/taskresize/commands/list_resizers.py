"""List the registered resizers and the arguments each takes.

Pass any of them to --resizer, with arguments through --resizer-args '{"n": 32, "r": 2}'.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    import json

    from ..resizers.registry import list_resizers, resizer_arguments

    names = list_resizers()
    width = max(map(len, names))  # every name fits its column: "learnable-strided" is 17 characters
    for name in names:  # defaults as --resizer-args takes them (JSON)
        arguments = ", ".join(f"{a.name}={json.dumps(a.default)}" for a in resizer_arguments(name).values())
        print(f"{name:{width}s}  {arguments}")
    return 0
