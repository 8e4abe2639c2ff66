"""The system services: mediating actors that run under ``_system``, beside the user's tree.

Services register a factory here (the telemetry package registers the telemetry
actor, and so on), so the supervision core does not import them. The root
starts ``_system`` before the user's tree and stops it after.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .spec import Child, SpecError, Supervisor

SYSTEM_NAME = "_system"
ServiceFactory = Callable[[Any, Supervisor], Child | None]
OptionsCheck = Callable[[Any], None]
_FACTORIES: dict[str, ServiceFactory] = {}
_CHECKS: dict[str, OptionsCheck] = {}


def register_service(name: str, factory: ServiceFactory, check: OptionsCheck | None = None) -> None:
    """``factory(options, tree)`` returns the service's ``Child`` (None: turned off).

    ``check(options)`` validates the service's options when ``start()`` parses
    them (raise ``SpecError`` naming the option).
    """
    _FACTORIES[name] = factory
    if check is not None:
        _CHECKS[name] = check


def check_service_options(options: Any) -> None:
    """Run every service's options check (an error it did not expect is named after it)."""
    for name, check in _CHECKS.items():
        try:
            check(options)
        except ArithmeticError as exc:  # e.g. a number too large to convert
            raise SpecError("start", name, str(exc)) from None


def system_services(options: Any, tree: Supervisor) -> Supervisor | None:
    """The ``_system`` supervisor for ``options`` and the user's ``tree`` (None: no service)."""
    children = [child for factory in _FACTORIES.values() if (child := factory(options, tree))]
    if not children:
        return None
    return Supervisor(
        SYSTEM_NAME,
        strategy="one_for_one",
        max_restarts=10,
        within_s=60,
        children=tuple(children),
    )
