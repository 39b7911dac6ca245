"""List the registered resizers and the arguments each takes.

Pass any of them to --resizer, with arguments through --resizer-args '{"n": 32, "r": 2}'.
"""

from __future__ import annotations

import argparse
import inspect

from ..resizers.registry import list_resizers, resizer_factory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    for name in list_resizers():
        signature = inspect.signature(resizer_factory(name))
        arguments = ", ".join(f"{p.name}={p.default!r}" for p in signature.parameters.values() if p.name != "self")
        print(f"{name:12s} {arguments}")
    return 0
