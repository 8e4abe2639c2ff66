"""Tree specs: :class:`Supervisor` and :class:`Child` are plain data, validated once.

Specs are frozen msgspec Structs. They are checked when constructed: a mistake
raises :class:`SpecError` naming the path in the tree and the field. The
supervisor actor is the only code that interprets them.
"""

from __future__ import annotations

import functools
import importlib
import math
import re
import reprlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Literal, Union, get_args, get_origin

import msgspec

from ..strategies import (
    AnyBackoff,
    Capped,
    CircuitBreaker,
    CountWindow,
    Exponential,
    Jitter,
    TimeWindow,
)

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
RestartType = Literal["permanent", "transient", "temporary"]
AutoShutdown = Literal["never", "any_significant", "all_significant"]
STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")
RESTART_TYPES = ("permanent", "transient", "temporary")
AUTO_SHUTDOWNS = ("never", "any_significant", "all_significant")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class SpecError(ValueError):
    """A tree spec is invalid; the message names the path in the tree and the field."""

    def __init__(self, path: str, field: str, problem: str) -> None:
        field = field or '""'  # (a setting named "": TOML allows it)
        super().__init__(f"{path}: {field}: {problem}")
        self.path = path
        self.field = field
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:
        return (SpecError, (self.path, self.field, self.problem))


class _Shown(reprlib.Repr):
    """``repr`` for error messages: short, whatever the value (deep, huge, or unprintable)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlong = 4, 80, 80, 40
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = 10

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:  # (past 4300 digits Python refuses to print one)
            return f"{'-' if x < 0 else ''}<a {x.bit_length()}-bit integer>"
        return repr(x)


shown = _Shown().repr


class _Spec(msgspec.StructMeta):
    """The specs' type: a wrong argument is a SpecError naming it, as a wrong value is."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        _check_arguments(cls, args, kwargs)
        return super().__call__(*args, **kwargs)


def _check_arguments(cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    fields, defaults = cls.__struct_fields__, cls.__struct_defaults__
    name = args[0] if args else kwargs.get("name")
    path = name if fields[:1] == ("name",) and isinstance(name, str) else cls.__name__
    known = f"(known: {', '.join(fields)})"
    if len(args) > len(fields):
        raise SpecError(path, "arguments", f"{len(args)} given by position {known}")
    for key in kwargs:
        if key not in fields:
            raise SpecError(path, key, f"unknown setting {known}")
        if key in fields[: len(args)]:
            raise SpecError(path, key, "given by position and by name")
    first_default = len(fields) - len(defaults)
    for i, key in enumerate(fields[len(args) :], len(args)):
        required = i < first_default or defaults[i - first_default] is msgspec.NODEFAULT
        if required and key not in kwargs:  # (a keyword-only field may come after defaults)
            raise SpecError(path, key, "missing: it has no default")


def _default_backoff() -> AnyBackoff:
    return Jitter(Capped(Exponential(0.05, 2.0), 2.0), "full")


class LevelPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, metaclass=_Spec):
    """How many attempts each recovery level gets, and how levels 1-2 wait.

    Defaults: level 1 retries twice after ``basic_delay_s``; level 2 retries three
    times on an exponential backoff with full jitter (50 ms doubling, capped at
    2 s); level 3 restarts the actor once; after that every further failure of
    the same kind restarts the restart set (level 4), as often as the
    supervisor's restart intensity allows. A failure-free ``quiet_period_s``
    resets the ladder to level 1. A count of 0 skips that level. A level 1-2
    retry that gets no answer within the timeout learned for that actor and message
    type (from its handler's and its retries' successful durations; never above
    ``retry_timeout_s``, which is the wait while nothing is learned) counts as failed.

    ``outage_restarts``: restarts tried against an outage (a failure whose cause
    is outside the actor: connection refused, timeouts, ``DownstreamError``, a
    hang...), per child, before the tree stops restarting for it until a message
    goes through or it has been quiet; its messages are then answered with
    ``DownstreamError`` after their retries.
    ``outages_as_faults``: no outage policy; an outage is a failure like any other
    (restarted until the restart intensity is exceeded, as OTP does).
    """

    basic_attempts: int = 2
    basic_delay_s: float = 0.01
    enhanced_attempts: int = 3
    backoff: AnyBackoff = msgspec.field(default_factory=_default_backoff)
    component_attempts: int = 1
    quiet_period_s: float = 30.0
    retry_timeout_s: float = 30.0
    outage_restarts: int = 1
    outages_as_faults: bool = False

    @classmethod
    def otp(cls, **overrides: Any) -> LevelPolicy:
        """Erlang/OTP's supervisor: no retries; every failure, outages included, restarts
        the restart set per the strategy, bounded only by restart intensity.

        Unlike OTP, the failed message is not lost: it goes to the new instance, and if it
        fails there too it is set aside as a poison message.
        """
        settings: dict[str, Any] = {
            "basic_attempts": 0,
            "enhanced_attempts": 0,
            "component_attempts": 0,
            "outages_as_faults": True,
            **overrides,
        }
        return cls(**settings)

    def budget(self, level: int) -> int:
        """Attempts at ``level`` before the ladder moves up (level 4, the top, repeats)."""
        return {
            1: self.basic_attempts,
            2: self.enhanced_attempts,
            3: self.component_attempts,
        }.get(level, 1)

    def check(self, path: str) -> None:
        """Raise SpecError if a setting has the wrong type or a number is out of range."""
        check_types(path, self, "levels.")
        for field in (
            "basic_attempts",
            "enhanced_attempts",
            "component_attempts",
            "outage_restarts",
        ):
            _integer(path, f"levels.{field}", getattr(self, field), 0)
        value = self.basic_delay_s
        if not _is_number(value) or not value >= 0:
            raise SpecError(
                path, "levels.basic_delay_s", f"must be a number >= 0, got {shown(value)}"
            )
        for field in ("quiet_period_s", "retry_timeout_s"):
            _positive(path, f"levels.{field}", getattr(self, field))


def resolve_actor_class(path: str, actor: Any) -> type:
    """The actor class for a ``Child``: a class, or a ``"module:Class"`` string."""
    from ..actors import ManagedActor

    if isinstance(actor, str):
        module_name, _, attr = actor.partition(":")
        if not module_name or not attr:
            raise SpecError(path, "actor", f'expected "module:Class", got {shown(actor)}')
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # not found, a relative name, or the module itself failed
            raise SpecError(
                path, "actor", f"cannot import {shown(module_name)}: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            actor = getattr(module, attr)
        except AttributeError as exc:
            raise SpecError(path, "actor", f"{shown(module_name)} has no {shown(attr)}") from exc
    if not (isinstance(actor, type) and issubclass(actor, ManagedActor)):
        raise SpecError(path, "actor", f"expected a ManagedActor subclass, got {shown(actor)}")
    return actor


class Fallback(
    msgspec.Struct,
    frozen=True,
    forbid_unknown_fields=True,
    tag_field="kind",
    tag=str.lower,
    metaclass=_Spec,
):
    """Base of the answers a breaker can give instead of the protected actor's."""


class CachedReply(Fallback, frozen=True):
    """The last good reply to an equal message, if it is younger than ``ttl_s``."""

    ttl_s: float = 60.0


class Alternative(Fallback, frozen=True):
    """Ask another actor (``path``) instead."""

    path: str


class DefaultReply(Fallback, frozen=True):
    """Answer with ``value``."""

    value: Any = None


class ReducedFunctionality(Fallback, frozen=True):
    """No substitute answer: callers see the breaker open (``self.degraded``) and do less."""


class QueueForLater(Fallback, frozen=True):
    """Store requests durably and replay them, in order, once the breaker closes.

    ``file`` is the SQLite file of the queue (default: ``queues/`` in the system's
    private ``state_dir``). Messages are stored as MessagePack, never pickled: msgspec
    Structs and plain data can be queued, anything else goes on to the next fallback
    (or the caller gets ``BadMessage``). Callers get ``QueuedForLater(id)`` at once;
    the real reply follows the replay if the breaker that queued it still runs.
    """

    file: str | None = None


AnyFallback = Union[CachedReply, Alternative, DefaultReply, ReducedFunctionality, QueueForLater]  # noqa: UP007


class Breaker(msgspec.Struct, frozen=True, forbid_unknown_fields=True, metaclass=_Spec):
    """A circuit breaker in front of a child: ``Child("pay", Pay, breaker=Breaker(...))``.

    Calls to the child's path go through a breaker actor that hosts a
    :class:`~stalwart.strategies.CircuitBreaker` with these settings, gives each
    call ``call_timeout_s``, and, while open, answers with the first fallback that
    can answer (or ``CircuitOpenError``). Callers learn of state changes by
    message, so while it is open and has no fallback they fail without a hop.
    The settings mean what they mean on ``CircuitBreaker``; ``window`` counts the
    last calls, or ``window_s`` (when set) keeps the calls of the last seconds.
    """

    failure_threshold: int | None = 5
    recovery_timeout: float = 30.0
    success_threshold: int = 2
    failure_rate_threshold: float | None = None
    minimum_calls: int = 10
    window: int = 100
    window_s: float | None = None
    slow_call_rate_threshold: float | None = None
    slow_call_duration_s: float | None = None
    half_open_max_calls: int | None = None
    max_wait_in_half_open_s: float | None = None
    adaptive: bool = False
    adaptive_min_threshold: int = 1
    stable_period_s: float = 300.0
    call_timeout_s: float = 5.0
    open_backoff: float = 1.0
    max_recovery_timeout: float | None = None
    fallback: Sequence[AnyFallback] = ()

    def __post_init__(self) -> None:
        # kept as a tuple, so the spec stays hashable whatever sequence held the fallbacks;
        # anything else stays as given, for check() to name
        fallback: Any = self.fallback
        if isinstance(fallback, Fallback):
            msgspec.structs.force_setattr(self, "fallback", (fallback,))
        elif isinstance(fallback, (list, tuple)) and all(isinstance(f, Fallback) for f in fallback):
            msgspec.structs.force_setattr(self, "fallback", tuple(fallback))

    def build(self, name: str = "breaker", **extra: Any) -> CircuitBreaker:
        """The :class:`~stalwart.strategies.CircuitBreaker` these settings describe."""
        window: CountWindow | TimeWindow = CountWindow(self.window)
        if self.window_s is not None:
            window = TimeWindow(self.window_s)
        return CircuitBreaker(
            self.failure_threshold,
            self.recovery_timeout,
            self.success_threshold,
            name=name,
            window=window,
            failure_rate_threshold=self.failure_rate_threshold,
            slow_call_rate_threshold=self.slow_call_rate_threshold,
            slow_call_duration_s=self.slow_call_duration_s,
            minimum_calls=self.minimum_calls,
            half_open_max_calls=self.half_open_max_calls,
            max_wait_in_half_open_s=self.max_wait_in_half_open_s,
            open_backoff=self.open_backoff,
            max_recovery_timeout=self.max_recovery_timeout,
            adaptive=self.adaptive,
            adaptive_min_threshold=self.adaptive_min_threshold,
            stable_period_s=self.stable_period_s,
            **extra,
        )

    def check(self, path: str) -> None:
        """Raise SpecError (naming ``breaker.<field>``) if a setting is wrong or out of range."""
        check_types(path, self, "breaker.")
        for field, value in (("call_timeout_s", self.call_timeout_s), ("window_s", self.window_s)):
            if value is not None and not value > 0:
                raise SpecError(path, f"breaker.{field}", f"must be > 0, got {shown(value)}")
        for field in self.__struct_fields__:  # (a larger one overflows, or cannot be shown)
            value = getattr(self, field)
            if isinstance(value, int) and not -sys.maxsize <= value <= sys.maxsize:
                problem = f"must be within ±{sys.maxsize}, got {shown(value)}"
                raise SpecError(path, f"breaker.{field}", problem)
        try:
            self.build()
        except (ValueError, TypeError) as exc:
            field = str(exc).split(":", 1)[0].replace("CircuitBreaker.", "")
            raise SpecError(path, f"breaker.{field}", str(exc).split(": ", 1)[-1]) from None


class Child(msgspec.Struct, frozen=True, kw_only=False, metaclass=_Spec):
    """One supervised actor: ``Child("db", Database, depends_on=["cache"])``.

    - ``restart``: ``permanent`` (always restarted), ``transient`` (restarted only
      after a failure, not after it stops itself), ``temporary`` (never restarted:
      it is retried in place at levels 1-2 and stopped instead of restarted).
    - ``replicas``: that many instances, ``name.0`` ... ``name.N-1``; messages to
      ``name`` go to them in turn and level 3 may reassign work to a healthy one.
    - ``levels``: this child's :class:`LevelPolicy` (default: its supervisor's).
    - ``checkpoint``: ``"message"`` (the default: after each handled message, if
      the actor defines ``snapshot``; an answer leaves only once the state it
      reflects is kept, so a crash right after it loses nothing acknowledged), a
      number of seconds between checkpoints (cheaper: answers do not wait, and a
      crash loses what changed since the last one), or ``"off"``.
    - ``retry_from_checkpoint``: when a message fails, the actor is put back to its
      last checkpoint (its ``restore``) before it handles anything else, and again
      before each level 1-2 retry: neither the retry nor the messages in between
      build on what the failed attempt half changed. Off by default (retries run
      on the state the failure left); needs ``checkpoint="message"``.
    - ``fallback``: a reply the tree may send instead when the message keeps failing.
    - ``durable``: keep its checkpoints in the recovery store, so its state survives a
      restart of the whole system (needs ``start(..., store=...)`` with a file).
    - ``breaker``: put a :class:`Breaker` in front of it; its path then reaches the
      breaker, and the actor itself runs as ``<name>.protected``.
    - ``options``: free-form settings the actor reads as ``self.options``.
    - ``requires``: capabilities a node must offer to run it, on a cluster
      (``{"gpu": 1, "zone": "b"}``: a number is met by one at least as large,
      anything else by an equal one). See the distribution guide.
    - ``significant``: its ending by itself (a normal stop of a transient child, any
      end of a temporary one) can shut its supervisor down, per the supervisor's
      ``auto_shutdown`` (as in OTP 24+). Never on a permanent child.
    - ``passivate_after_s``: after that many seconds without a message it is
      *passivated*: its ``snapshot()`` is kept and its instance stops; the next message
      to its path starts it again from that state (``restored_state``), the messages
      meanwhile held in order. At the memory warning tier it may be passivated sooner,
      longest idle first. Not a failure: no level, no restart counted. ``None`` (the
      default): never. One replica, no breaker. See the memory guide.
    - ``standby``: keep a warm spare of each of its instances (a process forked and
      its actor created, not yet addressed by the path) that takes over at once when
      the instance is restarted (level 3, and its part of a level 4 restart): no
      process to create on the way back to serving. Not with ``requires`` or
      ``passivate_after_s``.
    """

    name: str
    actor: Any
    restart: RestartType = "permanent"
    depends_on: Sequence[str] = ()
    replicas: int = 1
    levels: LevelPolicy | None = None
    checkpoint: Literal["message", "off"] | float = "message"
    fallback: Any = None
    start_timeout_s: float = 10.0
    shutdown_s: float = 5.0
    durable: bool = False
    retry_from_checkpoint: bool = False
    breaker: Breaker | None = None
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    requires: dict[str, str | int | float | bool] = msgspec.field(default_factory=dict)
    significant: bool = False
    passivate_after_s: float | None = None
    standby: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name, self.name)
        msgspec.structs.force_setattr(self, "depends_on", _names(self.name, self.depends_on))
        check_types(self.name, self, skip=("requires",))  # (checked below, with its rules)
        from ..actors._placement import check_requires

        try:
            msgspec.structs.force_setattr(self, "requires", check_requires(self.requires))
        except ValueError as exc:
            raise SpecError(self.name, "requires", str(exc)) from None
        except RecursionError:  # (its message could not show a value nested that deep)
            problem = f"expected a table of capability = value, got {shown(self.requires)}"
            raise SpecError(self.name, "requires", problem) from None
        if self.breaker is not None:
            if not isinstance(self.breaker, Breaker):
                raise SpecError(
                    self.name, "breaker", f"expected a Breaker, got {shown(self.breaker)}"
                )
            self.breaker.check(self.name)
        msgspec.structs.force_setattr(self, "actor", resolve_actor_class(self.name, self.actor))
        if self.restart not in RESTART_TYPES:
            raise SpecError(
                self.name,
                "restart",
                f"expected one of {', '.join(RESTART_TYPES)}, got {shown(self.restart)}",
            )
        _integer(self.name, "replicas", self.replicas, 1)
        checkpoint: Any = self.checkpoint
        if checkpoint not in ("message", "off") and not (_is_number(checkpoint) and checkpoint > 0):
            raise SpecError(
                self.name,
                "checkpoint",
                f'expected "message", "off" or seconds > 0, got {shown(self.checkpoint)}',
            )
        if self.retry_from_checkpoint and self.checkpoint != "message":
            raise SpecError(
                self.name,
                "retry_from_checkpoint",
                f'needs checkpoint="message" (a checkpoint after each message), got'
                f" checkpoint={shown(self.checkpoint)}",
            )
        for field in ("start_timeout_s", "shutdown_s"):
            _positive(self.name, field, getattr(self, field))
        if self.levels is not None:
            self.levels.check(self.name)
        _check_significant(self.name, self)
        _check_passivation(self)
        if self.standby and self.requires:
            raise SpecError(
                self.name,
                "standby",
                "not with requires: a spare is forked on its supervisor's node, and a"
                " child that needs capabilities is placed on a node that offers them",
            )
        if self.standby and self.passivate_after_s is not None:
            raise SpecError(
                self.name,
                "standby",
                "not with passivate_after_s: a passivated actor gives its memory back, and"
                " a spare would keep it",
            )


class Supervisor(msgspec.Struct, frozen=True, kw_only=False, metaclass=_Spec):
    """A supervisor and its children (actors or nested supervisors).

    Children start one after another in start order (``depends_on`` first, then
    declaration order; the replicas of one child together) and stop in reverse.
    ``strategy`` decides which siblings a level-4 recovery restarts, as in
    Erlang/OTP: ``one_for_one`` (the failing child and those that depend on it),
    ``one_for_all`` (every child), ``rest_for_one`` (the failing child and the
    children started after it). Restart intensity is OTP's: a restart is allowed
    while the restarts within the last ``within_s`` seconds, this one included,
    number at most ``max_restarts``; past that the supervisor gives up and fails
    to its parent. Every ``health_interval_s`` (0: never) it asks its actors
    whether they are well; one that misses ``health_misses`` checks in a row is
    hung: on the multi-process bases its process is killed once and it is
    restarted (level 3). Sequences given (``children``, ``depends_on``, a breaker's
    ``fallback``: a list, say) are kept as tuples.

    ``auto_shutdown`` (OTP 24+): ``never`` (the default); ``any_significant``: the
    supervisor stops itself, in order, as soon as one of its ``significant``
    children ends by itself; ``all_significant``: once the last of them has. Ends
    the supervisor causes (a restart set's restart, ``terminate_child``) do not
    count. To its parent that is a normal stop (a permanent supervisor is started
    again); at the top of the tree the system stops. ``significant``: this
    supervisor's own such stop counts in its parent's ``auto_shutdown``.
    """

    name: str
    strategy: Strategy = "one_for_one"
    max_restarts: int = 3
    within_s: float = 5.0
    children: Sequence[Child | Supervisor] = ()
    levels: LevelPolicy = msgspec.field(default_factory=LevelPolicy)
    restart: RestartType = "permanent"
    depends_on: Sequence[str] = ()
    start_timeout_s: float = 30.0
    shutdown_s: float = 10.0
    health_interval_s: float = 5.0
    health_misses: int = 3
    auto_shutdown: AutoShutdown = "never"
    significant: bool = False

    def __post_init__(self) -> None:
        path = self.name
        _check_name(path, self.name)
        _check_sequence(path, self.children)
        msgspec.structs.force_setattr(self, "children", tuple(self.children))
        msgspec.structs.force_setattr(self, "depends_on", _names(path, self.depends_on))
        # (each child checks itself; a Pool checks its template)
        check_types(path, self, skip=("children", "template"))
        if self.strategy not in STRATEGIES:
            raise SpecError(
                path,
                "strategy",
                f"expected one of {', '.join(STRATEGIES)}, got {shown(self.strategy)}",
            )
        if self.restart not in RESTART_TYPES:
            raise SpecError(
                path,
                "restart",
                f"expected one of {', '.join(RESTART_TYPES)}, got {shown(self.restart)}",
            )
        _integer(path, "max_restarts", self.max_restarts, 0)
        for field in ("within_s", "start_timeout_s", "shutdown_s"):
            _positive(path, field, getattr(self, field))
        if not _is_number(self.health_interval_s) or not self.health_interval_s >= 0:
            raise SpecError(
                path,
                "health_interval_s",
                f"must be a number >= 0, got {shown(self.health_interval_s)}",
            )
        _integer(path, "health_misses", self.health_misses, 1)
        if not isinstance(self.levels, LevelPolicy):
            raise SpecError(path, "levels", f"expected a LevelPolicy, got {shown(self.levels)}")
        self.levels.check(path)
        if self.auto_shutdown not in AUTO_SHUTDOWNS:
            raise SpecError(
                path,
                "auto_shutdown",
                f"expected one of {', '.join(AUTO_SHUTDOWNS)}, got {shown(self.auto_shutdown)}",
            )
        _check_significant(path, self)
        validate_children(path, self.children)
        for child in self.children:
            check_significant_under(self, child)

    def walk(self, prefix: str = "") -> Iterator[tuple[str, Child | Supervisor]]:
        """Every node below this supervisor with its path, in declaration order."""
        base = f"{prefix}/{self.name}" if prefix else self.name
        for child in self.children:
            yield f"{base}/{child.name}", child
            if isinstance(child, Supervisor):
                yield from child.walk(base)


def check_range(
    owner: str,
    obj: Any,
    names: Sequence[str],
    *,
    above: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    prefix: str = "",
) -> None:
    """Raise SpecError(owner, prefix + name, ...) for the first field out of range."""
    for name in names:
        value = getattr(obj, name)
        problem = None
        if not _is_number(value):
            problem = "expected a number"
        elif above is not None and not value > above:
            problem = f"must be > {above:g}"
        elif at_least is not None and not value >= at_least:
            problem = f"must be >= {at_least:g}"
        elif at_most is not None and not value <= at_most:
            problem = f"must be <= {at_most:g}"
        if problem:
            raise SpecError(owner, prefix + name, f"{problem}, got {shown(value)}")


def check_types(owner: str, obj: Any, prefix: str = "", skip: Sequence[str] = ()) -> None:
    """Raise SpecError(owner, prefix + field, ...) for the first field of the wrong type."""
    kind: Any = type(obj)
    for f in _fields(kind):
        if f.name in skip or f.type is Any:
            continue
        value = getattr(obj, f.name)
        try:
            converted = msgspec.convert(value, f.type, strict=True)
        except (msgspec.ValidationError, TypeError) as exc:
            text, where = str(exc), ""
            if " - at `$" in text:
                where = text.rsplit(" - at `$", 1)[1].rstrip("`")
            choices = _choices(f.type) if not where else ()
            if choices and text.startswith(("Invalid enum value", "Expected `")):
                text = f"expected one of {', '.join(map(repr, choices))}"
            elif text.startswith("Expected `") and "` >= " not in text and "` <= " not in text:
                text = f"expected {type_name(f.type)}"  # ("object" is how msgspec says a Struct)
            raise SpecError(owner, prefix + f.name + where, f"{text}, got {shown(value)}") from None
        if isinstance(value, float) and math.isnan(value):
            raise SpecError(owner, prefix + f.name, "must be a number, got nan")
        _check_structs(owner, value, converted, prefix + f.name)


@functools.cache
def _fields(cls: Any) -> tuple[Any, ...]:
    """The fields of a Struct type (read once: msgspec evaluates the annotations each time)."""
    return tuple(msgspec.structs.fields(cls))


def _check_structs(owner: str, value: Any, converted: Any, field: str) -> None:
    """A Struct setting must be given as one (convert turns a dict into one), and a Struct
    given as such passes convert unchecked: check a fallback's or a backoff's fields too
    (levels, breaker and children are checked by their own checks)."""
    many = isinstance(value, (list, tuple))
    for i, (given, made) in enumerate(zip(value, converted) if many else [(value, converted)]):
        place = f"{field}[{i}]" if many else field
        if isinstance(made, msgspec.Struct) and not isinstance(given, msgspec.Struct):
            problem = f"expected a {type(made).__name__}, got {shown(given)}"
            raise SpecError(owner, place, problem)
        if isinstance(given, msgspec.Struct) and not isinstance(given, _CHECKED_ALONE):
            check_types(owner, given, f"{place}.")


_CHECKED_ALONE = (Child, Supervisor, LevelPolicy, Breaker)


def _choices(tp: Any) -> tuple[Any, ...]:
    """The values a ``Literal[...]`` type (or a union holding one) allows."""
    if get_origin(tp) is Literal:
        return get_args(tp)
    return tuple(v for arg in get_args(tp) for v in _choices(arg))


def type_name(tp: Any) -> str:
    """``tp`` as a reader would write it: ``LevelPolicy | None``, ``tuple[str, ...]``."""
    text = tp.__name__ if isinstance(tp, type) and not getattr(tp, "__args__", None) else str(tp)
    text = re.sub(r"typing\.Union\[(.*)\]$", lambda m: m.group(1).replace(", ", " | "), text)
    text = text.replace("NoneType", "None")
    return re.sub(r"\b(?:[a-z_][\w]*\.)+(\w+)", r"\1", text)


def spec_error_in(text: str) -> SpecError | None:
    """The SpecError a message carries (msgspec wraps those raised while converting)."""
    if "`$." in text or text.count(": ") < 2:
        return None
    path, field, problem = text.split(": ", 2)
    return SpecError(path, field, problem)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(path: str, field: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SpecError(path, field, f"must be an integer >= {minimum}, got {shown(value)}")


def _positive(path: str, field: str, value: Any) -> None:
    if not _is_number(value) or not value > 0:
        raise SpecError(path, field, f"must be a number > 0, got {shown(value)}")


def _check_passivation(child: Child) -> None:
    after = child.passivate_after_s
    if after is None:
        return
    if not _is_number(after) or not 0 < after < math.inf:
        raise SpecError(
            child.name, "passivate_after_s", f"must be a number > 0 or None, got {shown(after)}"
        )
    if child.replicas != 1 or child.breaker is not None:
        raise SpecError(
            child.name,
            "passivate_after_s",
            "needs one replica and no breaker (a passivated actor's path must have no other"
            " instance to serve it)",
        )


def _check_significant(path: str, spec: Child | Supervisor) -> None:
    if spec.significant and spec.restart == "permanent":
        raise SpecError(
            path,
            "significant",
            "a permanent child cannot be significant (a normal stop restarts it):"
            " make it transient or temporary",
        )


def check_significant_under(parent: Supervisor, child: Child | Supervisor) -> None:
    """Raise SpecError if ``child`` is significant and ``parent`` never shuts down for it."""
    if child.significant and parent.auto_shutdown == "never":
        raise SpecError(
            f"{parent.name}/{child.name}",
            "significant",
            f"needs auto_shutdown any_significant or all_significant on {parent.name}"
            " (it is never)",
        )


def _check_name(path: Any, name: Any) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(
            path if isinstance(path, str) else shown(path),
            "name",
            f"must be letters, digits, '_' or '-' (starting with a letter), got {shown(name)}",
        )


def _names(path: str, names: Any) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise SpecError(path, "depends_on", f"expected a list of sibling names, got {shown(names)}")
    for n in names:
        if not isinstance(n, str):
            raise SpecError(path, "depends_on", f"expected sibling names, got {shown(n)}")
    return tuple(names)


def _check_sequence(path: str, children: Any) -> None:
    if isinstance(children, (str, bytes)) or not isinstance(children, Sequence):
        problem = f"expected a list of Child and Supervisor, got {shown(children)}"
        raise SpecError(path, "children", problem)


def validate_children(path: str, children: Sequence[Any]) -> None:
    """Check sibling names are unique and ``depends_on`` names existing siblings, without cycles."""
    _check_sequence(path, children)
    seen: dict[str, Any] = {}
    for child in children:
        if not isinstance(child, (Child, Supervisor)):
            raise SpecError(path, "children", f"expected Child or Supervisor, got {shown(child)}")
        if child.name in seen:
            raise SpecError(
                f"{path}/{child.name}", "name", f"duplicate sibling name {shown(child.name)}"
            )
        seen[child.name] = child
    for child in children:
        for dep in child.depends_on:
            if dep == child.name:
                raise SpecError(
                    f"{path}/{child.name}", "depends_on", "a child cannot depend on itself"
                )
            if dep not in seen:
                raise SpecError(
                    f"{path}/{child.name}",
                    "depends_on",
                    f"unknown sibling {shown(dep)} (siblings: {', '.join(seen)})",
                )
    cycle = find_cycle({c.name: c.depends_on for c in children})
    if cycle:
        raise SpecError(f"{path}/{cycle[0]}", "depends_on", f"cycle {' -> '.join(cycle)}")


def find_cycle(graph: dict[str, tuple[str, ...]]) -> list[str] | None:
    """A dependency cycle in ``graph`` as a list of names (first repeated last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph:
        if root in state:
            continue
        state[root] = 1
        path, pending = [root], [iter(graph.get(root, ()))]  # (no recursion: chains are long)
        while pending:
            dep = next(pending[-1], None)
            if dep is None:
                state[path.pop()] = 2
                pending.pop()
            elif state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            elif dep not in state:
                state[dep] = 1
                path.append(dep)
                pending.append(iter(graph.get(dep, ())))
    return None
