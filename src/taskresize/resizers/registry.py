"""One registry for every resizer, classic and learned: ``register_resizer``, ``create_resizer``, ``list_resizers``.

Every argument of a registered resizer is checked before it is built, by one rule derived from the factory's
signature: its type hint (``int``, ``float``, ``bool``, ``str``, ``tuple[int, int]``, unions, ``Literal``) and the
constraints in its ``typing.Annotated`` metadata (:class:`Range`, :class:`OneOf`, :class:`Odd`), e.g.
``n: Annotated[int, Range(ge=1)] = 16``. :func:`check_resizer_args` is that check; ``create_resizer`` and the
training configuration call it, so a bad value is refused with one line naming it and what is accepted.
"""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from taskresize.errors import TaskresizeError, did_you_mean
from taskresize.resizers.base import Resizer

Factory = Callable[..., Resizer]
F = TypeVar("F", bound=Factory)

_REGISTRY: dict[str, Factory] = {}
_LEARNED: dict[str, bool] = {}


class UnknownResizerError(TaskresizeError):
    """A resizer name that is not registered (or not usable where it was given).

    The message suggests close matches ("did you mean") and lists the known names; every caller that reports an
    unknown name raises this, so every command says the same.

    Args:
        name: the name given.
        known: the names accepted there (default: every registered resizer).
        what: how to call the accepted names in the message.
        prefix: what to say first (default ``unknown resizer 'NAME'``).
    """

    def __init__(
        self, name: str, known: Iterable[str] | None = None, what: str = "Known resizers", prefix: str | None = None
    ) -> None:
        known = sorted(_REGISTRY) if known is None else list(known)
        hint = did_you_mean(name, known, n=3)
        super().__init__(f"{prefix or f'unknown resizer {name!r}'}.{hint} {what}: {', '.join(known)}")
        self.name = name


class ResizerArgumentError(TaskresizeError, TypeError):
    """An argument a resizer does not take, or a value of the wrong type or out of range; the message names the
    argument, the value and what is accepted. (A ``TypeError`` and a ``ValueError``, as Python raises either.)"""


# ---- constraints, as typing.Annotated metadata ------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """The number (each number of a tuple) is ``>= ge``, ``> gt`` and ``<= le`` (those given)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None

    def accepts(self, value: Any) -> bool:
        numbers = value if isinstance(value, list | tuple) else [value]
        return all(
            (self.ge is None or v >= self.ge) and (self.gt is None or v > self.gt) and (self.le is None or v <= self.le)
            for v in numbers
        )

    def describe(self) -> str:
        parts = [f">= {self.ge:g}" if self.ge is not None else "", f"> {self.gt:g}" if self.gt is not None else "",
                 f"<= {self.le:g}" if self.le is not None else ""]  # fmt: skip
        return " and ".join(p for p in parts if p)


@dataclass(frozen=True)
class OneOf:
    """The value is one of ``choices``."""

    choices: tuple[Any, ...]

    def accepts(self, value: Any) -> bool:
        return any(value == c and type(value) is type(c) for c in self.choices)

    def describe(self) -> str:
        return "one of " + ", ".join(json.dumps(c) for c in self.choices)


@dataclass(frozen=True)
class Odd:
    """The integer is odd."""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, int) and value % 2 == 1

    def describe(self) -> str:
        return "odd"


Constraint = Range | OneOf | Odd

# The output size every resizer takes: N or (H, W) (a list from JSON), each at least 1.
OutputSize = Annotated[int | tuple[int, int], Range(ge=1)]


@dataclass(frozen=True)
class Argument:
    """One argument of a resizer factory: its name, type hint, constraints and default."""

    name: str
    hint: Any  # the type hint without Annotated; inspect.Parameter.empty when there is none
    constraints: tuple[Constraint, ...]
    default: Any

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is refused (what is accepted), or None when it is accepted."""
        if self.hint is not inspect.Parameter.empty and not _matches(value, self.hint):
            return f"expected {self.describe()}"
        for constraint in self.constraints:
            if not constraint.accepts(value):
                return f"expected {self.describe()}"
        return None

    def describe(self) -> str:
        """What is accepted, in words: ``an integer >= 1``, ``one of "paper", "identity"``, ``true or false``."""
        choices = [c for c in self.constraints if isinstance(c, OneOf)]
        if choices:
            text = choices[0].describe()
        else:
            text = _describe_type(self.hint) if self.hint is not inspect.Parameter.empty else "any value"
            checks = [c.describe() for c in self.constraints]
            if checks:
                each = ", each" if "list" in text else ""
                text += f"{each} {' and '.join(checks)}"
        default = "" if self.default is inspect.Parameter.empty else f" (default {_show(self.default)})"
        return text + default


def _show(value: Any) -> str:
    """A value as the user typed it: JSON where it can be (``true``, ``"many"``, ``[224, 224]``)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of type ``hint``; JSON's forms count (a list for a tuple, an integer for a float),
    but a bool is not a number and a number is not a bool."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin is Annotated:
        return _matches(value, typing.get_args(hint)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, option) for option in typing.get_args(hint))
    if origin is typing.Literal:
        return OneOf(typing.get_args(hint)).accepts(value)
    if origin is tuple:
        items = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            return False
        if len(items) == 2 and items[1] is Ellipsis:
            return all(_matches(v, items[0]) for v in value)
        return len(value) == len(items) and all(_matches(v, t) for v, t in zip(value, items, strict=True))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a hint this check does not understand: the factory decides


def _describe_type(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _describe_type(typing.get_args(hint)[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe_type(option) for option in typing.get_args(hint))
    if origin is typing.Literal:
        return OneOf(typing.get_args(hint)).describe()
    if origin is tuple:
        items = typing.get_args(hint)
        if len(items) == 2 and items[1] is Ellipsis:
            return f"a list of {_plural(items[0])}"
        if len(set(items)) == 1:
            return f"a list of {len(items)} {_plural(items[0])}"
        return "a list of " + ", ".join(_describe_type(t) for t in items)
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string", type(None): "null"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _plural(hint: Any) -> str:
    return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(hint, _describe_type(hint))


_ARGUMENTS: dict[Factory, dict[str, Argument]] = {}


def resizer_arguments(name: str) -> dict[str, Argument]:
    """The arguments of the resizer registered under ``name``, from its factory's signature, in order.

    Raises:
        UnknownResizerError: no such name.
    """
    factory = resizer_factory(name)
    if factory not in _ARGUMENTS:
        function = factory.__init__ if isinstance(factory, type) else factory
        try:
            hints = typing.get_type_hints(function, include_extras=True)
        except (NameError, TypeError):  # hints naming what is imported only for type checkers: unchecked
            hints = {}
        arguments = {}
        for p in inspect.signature(factory).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            hint = hints.get(p.name, inspect.Parameter.empty)
            constraints: tuple[Constraint, ...] = ()
            if typing.get_origin(hint) is Annotated:
                hint, *metadata = typing.get_args(hint)
                constraints = tuple(m for m in metadata if isinstance(m, Range | OneOf | Odd))
            arguments[p.name] = Argument(p.name, hint, constraints, p.default)
        _ARGUMENTS[factory] = arguments
    return _ARGUMENTS[factory]


def check_resizer_args(name: str, kwargs: Mapping[str, Any], *, set_elsewhere: Mapping[str, str] | None = None) -> None:
    """Refuse arguments the resizer ``name`` does not take and values of the wrong type or out of range.

    Args:
        name: a registered resizer.
        kwargs: its keyword arguments (as ``create_resizer`` would get them; JSON forms accepted).
        set_elsewhere: arguments the caller sets itself, refused in ``kwargs`` with where they are set
            (e.g. ``{"output_size": "--out-size"}``).

    Raises:
        UnknownResizerError: ``name`` is not registered.
        ResizerArgumentError: the first argument that is refused; the message names it, its value and what is
            accepted, or for an unknown name the close matches and every argument the resizer takes.
    """
    arguments = resizer_arguments(name)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(resizer_factory(name)).parameters.values())
    for key, value in kwargs.items():
        if set_elsewhere and key in set_elsewhere:
            raise ResizerArgumentError(
                f"resizer {name!r}: {key} is set by {set_elsewhere[key]}, not among the resizer's arguments"
            )
        if key not in arguments:
            if takes_any:
                continue
            hint = did_you_mean(key, arguments, n=2)
            raise ResizerArgumentError(f"resizer {name!r} does not take {key}.{hint} It takes: {', '.join(arguments)}")
        problem = arguments[key].problem(value)
        if problem:
            raise ResizerArgumentError(f"resizer {name!r}: {key} = {_show(value)} is refused: {problem}")


def register_resizer(name: str, *, learned: bool = True) -> Callable[[F], F]:
    """Class or factory decorator: make ``create_resizer(name, **kwargs)`` build it.

    Args:
        name: the name it is built by.
        learned: whether it has weights that training fits (``False`` for a fixed filter); ``compare`` pits the
            learned resizers against the classic ones, and ``list`` marks which is which.

    Raises:
        ValueError: ``name`` is already registered.
    """

    def decorator(factory: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"a resizer named {name!r} is already registered ({_REGISTRY[name]!r})")
        _REGISTRY[name] = factory
        _LEARNED[name] = learned
        if isinstance(factory, type):
            factory.resizer_name = name
        return factory

    return decorator


def list_resizers(learned: bool | None = None) -> list[str]:
    """Names of the registered resizers, sorted: all of them, or only the learned (``learned=True``) or only the
    classic ones (``learned=False``)."""
    return sorted(name for name in _REGISTRY if learned is None or _LEARNED[name] == learned)


@dataclass(frozen=True)
class ResizerInfo:
    """What the registry knows of a resizer without building it."""

    name: str
    learned: bool
    description: str  # the first line of its docstring


def resizer_info(name: str) -> ResizerInfo:
    """:class:`ResizerInfo` of the resizer registered under ``name``.

    Raises:
        UnknownResizerError: no such name.
    """
    factory = resizer_factory(name)
    doc = inspect.getdoc(factory) or ""
    return ResizerInfo(name, _LEARNED[name], doc.strip().splitlines()[0] if doc.strip() else "")


def resizer_factory(name: str) -> Factory:
    """The class or factory registered under ``name``.

    Raises:
        UnknownResizerError: no such name; the message suggests close matches and lists every name.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):  # TypeError: an unhashable "name" (from JSON or YAML)
        raise UnknownResizerError(name) from None


def create_resizer(name: str, **kwargs: Any) -> Resizer:
    """Build the resizer registered under ``name`` with keyword arguments ``kwargs``.

    Every argument is checked first (:func:`check_resizer_args`): its name, its type and its range, as the
    factory's signature declares them.

    Raises:
        UnknownResizerError: ``name`` is not registered.
        ResizerArgumentError: an argument the resizer does not take, or a value of the wrong type or out of range;
            the message names it and what is accepted.
    """
    factory = resizer_factory(name)
    check_resizer_args(name, kwargs)
    return factory(**kwargs)
