"""What ``handle_error`` is told about the failed operation, checked up front."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Hook = Callable[..., Any]
_HOOKS = ("retry", "fallback", "reset", "reconnect", "refresh_token")


@dataclass(frozen=True)
class Context:
    """The failed operation: where it ran, how to run it again, and the hooks that help.

    ``service`` names the component (recorded as its path; one breaker per
    service), ``operation`` the call. ``retry`` runs the operation again (it
    receives ``timeout=`` when the timeout remedy adapted it and it accepts
    one); ``fallback`` gives a degraded answer; ``reset`` resets the component
    (level 3); ``reconnect`` and ``refresh_token`` are the remedies' hooks.
    ``target`` is the tree path a running Stalwart system restarts at levels 4-5.
    ``timeout`` is the operation's current timeout in seconds.
    """

    service: str = "default"
    operation: str = ""
    retry: Hook | None = None
    fallback: Hook | None = None
    reset: Hook | None = None
    reconnect: Hook | None = None
    refresh_token: Hook | None = None
    target: str | None = None
    timeout: float | None = None

    @classmethod
    def of(cls, context: Context | Mapping[str, Any] | None) -> Context:
        """A context from a dict; an unknown key or bad value raises ``ValueError`` naming it."""
        if context is None:
            return cls()
        if isinstance(context, Context):
            return context
        if not isinstance(context, Mapping):
            raise ValueError(f"context must be a dict, got {type(context).__name__}")
        known = cls.__dataclass_fields__
        for key in context:
            if key not in known:
                raise ValueError(f"context: unknown key {key!r} (known: {', '.join(known)})")
        for key in ("service", "operation"):
            value = context.get(key, "x")
            if not isinstance(value, str) or (key == "service" and not value):
                raise ValueError(f"context[{key!r}] must be a non-empty string, got {value!r}")
        for key in _HOOKS:
            value = context.get(key)
            if value is not None and not callable(value):
                raise ValueError(f"context[{key!r}] must be callable, got {value!r}")
        target = context.get("target")
        if target is not None and (not isinstance(target, str) or not target):
            raise ValueError(f"context['target'] must be an actor path, got {target!r}")
        timeout = context.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise ValueError(f"context['timeout'] must be a positive number, got {timeout!r}")
        return cls(**context)
