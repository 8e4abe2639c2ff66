"""``Pool``: a supervisor of instances started on demand from one template (OTP's
``simple_one_for_one``), each named by its key.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import msgspec

from .spec import (
    Child,
    SpecError,
    Supervisor,
    _check_name,
    _is_number,
    check_significant_under,
    shown,
)


class Pool(Supervisor, frozen=True, kw_only=True):
    """A supervisor whose children are instances of ``template``, one per key.

    ``Pool("sessions", template=Child("session", Session), max_children=10_000,
    idle_timeout_s=600)`` declares no child: ``System.start_child("app/sessions",
    "alice", {"user": "alice"})`` starts an instance of the template named ``alice``
    (at ``app/sessions/alice``), its ``options`` the template's with the given ones on
    top. Instances are supervised like declared children (the template's restart
    type, levels and breaker; the pool's restart intensity); when the pool stops,
    they stop all at once, in no order (as OTP's ``simple_one_for_one``). A
    terminated instance keeps no spec (start it again by its key).

    - ``max_children``: at most this many instances (``None``: no limit); one more is
      refused with :class:`~stalwart.PoolFull`.
    - ``idle_timeout_s``: an instance that has had no message for that long is stopped
      and forgotten; messages to its key are then refused (``UnknownPath``, saying so)
      until it is started again. Needs an actor template with one replica.
    - ``spares``: keep this many instances of an actor template made ahead (on the
      multi-process bases, forked and waiting) for new keys: a start hands the new
      instance to the oldest ready spare instead of forking then, and the Pool makes
      another in its next turn. Spares count on top of ``max_children``. Not with
      ``requires`` (a spare is forked on the Pool's node).

    The strategy is always ``one_for_one``: instances are independent. As OTP's
    ``simple_one_for_one``, a Pool never shuts itself down (``auto_shutdown="never"``), so
    its template cannot be ``significant``.
    """

    template: Child | Supervisor
    max_children: int | None = None
    idle_timeout_s: float | None = None
    spares: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        path = self.name
        if self.children:
            raise SpecError(
                path, "children", "a Pool declares no children: start_child makes instances"
            )
        if self.strategy != "one_for_one":
            raise SpecError(
                path, "strategy", f"a Pool is always one_for_one, got {shown(self.strategy)}"
            )
        if self.auto_shutdown != "never":  # (as OTP's simple_one_for_one)
            problem = f"a Pool never shuts itself down, got {shown(self.auto_shutdown)}"
            raise SpecError(path, "auto_shutdown", problem)
        template: Any = self.template
        if not isinstance(template, (Child, Supervisor)):
            raise SpecError(
                path, "template", f"expected a Child or Supervisor, got {shown(template)}"
            )
        if template.depends_on:
            raise SpecError(
                f"{path}/{template.name}", "depends_on", "a Pool's instances have no siblings"
            )
        check_significant_under(self, template)
        limit = self.max_children
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
        ):
            raise SpecError(path, "max_children", f"must be an integer >= 1, got {shown(limit)}")
        idle = self.idle_timeout_s
        if idle is not None:
            if not _is_number(idle) or not 0 < idle < math.inf:  # (None: never)
                problem = f"must be a number > 0 or None, got {shown(idle)}"
                raise SpecError(path, "idle_timeout_s", problem)
            if not isinstance(template, Child) or template.replicas != 1:
                raise SpecError(
                    path,
                    "idle_timeout_s",
                    "needs an actor template (a Child) with one replica: only an actor"
                    " can tell how long it has had no message",
                )
        spares = self.spares
        if not isinstance(spares, int) or isinstance(spares, bool) or spares < 0:
            raise SpecError(path, "spares", f"must be an integer >= 0, got {shown(spares)}")
        if spares and not isinstance(template, Child):
            problem = "needs an actor template (a Child): a spare is an actor waiting to start"
            raise SpecError(path, "spares", problem)
        if spares and template.requires:  # (a Child's, then)
            raise SpecError(
                path,
                "spares",
                "not with a template that requires capabilities: a spare is forked on the"
                " Pool's node, and such an instance is placed on a node that offers them",
            )

    def instance(self, key: Any, options: Mapping[str, Any] | None = None) -> Child | Supervisor:
        """The spec of the instance named ``key``: the template renamed, its ``options``
        updated with ``options``. Raises SpecError naming ``key`` or ``options``."""
        if not isinstance(key, str):
            raise SpecError(self.name, "key", f"expected a name, got {shown(key)}")
        _check_name(f"{self.name}/{key}", key)
        template = self.template
        if options is not None:
            if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
                problem = f"expected a table of settings, got {shown(options)}"
                raise SpecError(f"{self.name}/{key}", "options", problem)
            if not isinstance(template, Child):
                problem = "a Pool of supervisors takes no options (only an actor reads them)"
                raise SpecError(f"{self.name}/{key}", "options", problem)
        # the template was checked; only the name and the options differ (checked above):
        # a copy, not a spec built and checked again for every instance
        made = copy.copy(template)
        msgspec.structs.force_setattr(made, "name", key)
        if options is not None and isinstance(made, Child):
            msgspec.structs.force_setattr(made, "options", {**made.options, **options})
        return made
