"""The message types an actor handles, found from the actor itself; ``--json`` decoded
into one of them (``stalwart send``).

An actor handles a type ``T`` when it has a ``receiveMsg_T`` handler. The class ``T`` is
found from that handler: its annotation of the message (``msg: T``), else the name ``T``
in the module that defines the handler, else in the actor's module. ``module:Class``
(or ``module.Class``) names a class directly; a handler of the actor must take it (its
own or one of its bases, as the actor's dispatch does).
"""

from __future__ import annotations

import inspect
import pkgutil
import re
import sys
import typing
from typing import Any

import msgspec
import msgspec.inspect

from ..actors._managed import find_handler
from ..supervisors import Status
from ._common import UsageError

_HANDLER = "receiveMsg_"
_SHOWN_PATHS = 12  # an unknown path: how many of the tree's paths to name


def actor_class(status: Status, path: str) -> type:
    """The class of the actor that messages to ``path`` reach (behind a breaker, the
    actor it protects); UsageError naming the path if there is none."""
    entries = status.by_path()
    entry = entries.get(path)
    if entry is None:
        actors = [s.path for s in status if s.kind != "supervisor"]
        known = ", ".join(actors[:_SHOWN_PATHS]) + (", ..." if len(actors) > _SHOWN_PATHS else "")
        raise UsageError(f"unknown actor path {path!r} (actors: {known})")
    if entry.kind == "breaker":
        entry = entries.get(f"{path}.protected", entry)
    if entry.kind == "supervisor":
        raise UsageError(f"{path} is a supervisor, which handles no messages of yours")
    return import_class(entry.actor_class, f"the class of {path}")


def import_class(name: str, what: str) -> type:
    """The class ``name`` (``module.Class`` or ``module:Class``); UsageError naming it."""
    try:
        found = pkgutil.resolve_name(name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UsageError(
            f"cannot import {what} ({name}): {type(exc).__name__}: {exc} (run the command"
            " from the folder its modules import from)"
        ) from None
    if not isinstance(found, type):
        raise UsageError(f"{what} ({name}) is not a class")
    return found


def handled_types(actor: type) -> dict[str, type | None]:
    """The message types ``actor`` handles, by name: the class, or None if not found."""
    found: dict[str, type | None] = {}
    for attribute in sorted(dir(actor)):
        handler = getattr(actor, attribute, None)
        if attribute.startswith(_HANDLER) and callable(handler):
            name = attribute[len(_HANDLER) :]
            found[name] = _message_class(actor, handler, name)
    return found


def _message_class(actor: type, handler: Any, name: str) -> type | None:
    try:  # (a name imported for type checkers only is not there to evaluate)
        hints = typing.get_type_hints(handler)
    except Exception:
        hints = {}
    try:
        parameters = list(inspect.signature(handler).parameters)
    except (TypeError, ValueError):
        parameters = []
    module = sys.modules.get(actor.__module__)
    candidates = (
        hints.get(parameters[1]) if len(parameters) > 1 else None,  # (self, msg, sender)
        getattr(handler, "__globals__", {}).get(name),
        getattr(module, name, None),
    )
    return next((c for c in candidates if isinstance(c, type) and c.__name__ == name), None)


def message_type(path: str, actor: type, name: str) -> type:
    """The class that ``name`` means for the actor at ``path``; UsageError listing the
    types it handles if it handles no such type."""
    types = handled_types(actor)
    handles = f"it handles {', '.join(types)}" if types else "it has no receiveMsg_ handlers"
    if ":" in name or "." in name:
        named = import_class(name, "the message type")
        if find_handler(actor, named) is None:
            raise UsageError(f"{path} ({actor.__name__}) has no handler for {name}; {handles}")
        return named
    if name not in types:
        raise UsageError(f"{path} ({actor.__name__}) handles no message type {name!r}; {handles}")
    cls = types[name]
    if cls is None:
        raise UsageError(
            f"{path}: the class of {name} (taken by {actor.__name__}.receiveMsg_{name}) is not"
            f" in {actor.__module__}, nor named by the handler's annotation: give it as"
            " module:Class"
        )
    return cls


def decode(cls: type, text: str) -> Any:
    """``text`` (JSON) decoded into ``cls`` by msgspec; UsageError naming the field."""
    try:
        custom = isinstance(msgspec.inspect.type_info(cls), msgspec.inspect.CustomType)
    except (TypeError, ValueError):
        custom = True
    if custom:  # (msgspec would only say "Expected `Cls`, got `dict`")
        raise UsageError(
            f"{cls.__name__} cannot be built from JSON: msgspec builds Structs, dataclasses,"
            " attrs classes, TypedDicts and NamedTuples"
        )
    try:
        return msgspec.json.decode(text.encode(), type=cls)
    except msgspec.ValidationError as exc:
        raise UsageError(f"--json does not fit {_where(cls.__name__, str(exc))}") from None
    except msgspec.DecodeError as exc:
        raise UsageError(f"--json is not JSON: {exc}") from None


def _where(name: str, problem: str) -> str:
    """msgspec's ``Expected `int`, got `str` - at `$.n``` as ``Work.n: expected `int`...``."""
    at = re.search(r" - at `\$(.*)`$", problem)
    if at is None:
        return f"{name}: {problem}"
    return f"{name}{at.group(1)}: {problem[: at.start()]}"


def shown(reply: Any) -> str:
    """A reply as JSON if msgspec can write it, else as Python shows it."""
    try:
        return msgspec.json.encode(reply).decode()
    except Exception:
        return repr(reply)
