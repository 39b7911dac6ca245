"""One registry for every resizer, classic and learned: ``register_resizer``, ``create_resizer``, ``list_resizers``."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from .base import Resizer

Factory = Callable[..., Resizer]
F = TypeVar("F", bound=Factory)

_REGISTRY: dict[str, Factory] = {}


class UnknownResizerError(ValueError):
    """A resizer name that is not registered; the message lists the known names."""


class ResizerArgumentError(TypeError):
    """Keyword arguments a resizer does not take; the message lists those it takes."""


def register_resizer(name: str) -> Callable[[F], F]:
    """Class or factory decorator: make ``create_resizer(name, **kwargs)`` build it.

    Raises:
        ValueError: ``name`` is already registered.
    """

    def decorator(factory: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"a resizer named {name!r} is already registered ({_REGISTRY[name]!r})")
        _REGISTRY[name] = factory
        if isinstance(factory, type):
            factory.resizer_name = name
        return factory

    return decorator


def list_resizers() -> list[str]:
    """Names of all registered resizers, sorted."""
    return sorted(_REGISTRY)


def resizer_factory(name: str) -> Factory:
    """The class or factory registered under ``name``.

    Raises:
        UnknownResizerError: no such name; the message suggests close matches and lists every name.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise UnknownResizerError(
            f"unknown resizer {name!r}.{hint} Known resizers: {', '.join(list_resizers())}"
        ) from None


def create_resizer(name: str, **kwargs: Any) -> Resizer:
    """Build the resizer registered under ``name`` with keyword arguments ``kwargs``.

    Raises:
        UnknownResizerError: ``name`` is not registered.
        ResizerArgumentError: ``kwargs`` holds an argument the resizer does not take; the message lists those it takes.
    """
    factory = resizer_factory(name)
    try:
        return factory(**kwargs)
    except TypeError:
        accepted = accepted_arguments(factory)
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ResizerArgumentError(
                f"resizer {name!r} does not take {', '.join(unknown)}; it takes: {', '.join(accepted)}"
            ) from None
        raise


def accepted_arguments(factory: Factory) -> list[str]:
    """The keyword arguments a resizer factory takes."""
    params = inspect.signature(factory).parameters.values()
    return [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
