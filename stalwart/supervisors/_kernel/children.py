"""Children added and removed at run time, significant children, and idle Pool instances.

**Requests** (OTP's ``start_child`` family). A child started with ``StartChild`` is
added last in start order, so it stops first; from then on it is supervised like a
declared one (restart type, restart set, intensity, the five levels). The answer
comes once it runs; a child whose first start fails is not kept (``StartFailed``).
``TerminateChild`` stops it for good and keeps its spec (a temporary child's, and a
Pool instance's, goes); ``RestartChild`` starts a terminated child again from its
spec; ``DeleteChild`` forgets a terminated one. A spec that goes takes its
checkpoints with it and the root forgets its paths. Children added at run time
belong to this instance of the supervisor: restarted by its parent, a supervisor
starts with its declared children only, as in OTP.

**Significant children** (OTP 24+). A significant child that ends by itself (a
transient one stopping normally, a temporary one ending in any way) makes a
supervisor with ``auto_shutdown="any_significant"`` stop itself in order; with
``all_significant`` once no significant child runs any more. Ends this supervisor
caused (a restart set, ``TerminateChild``, an idle stop) do not count.

**Idle instances.** A Pool with ``idle_timeout_s`` asks its instances every quarter
of it how far they have got through their messages; one that has taken no message
(and is handling none) for ``idle_timeout_s`` is stopped and forgotten.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...actors._children import (
    ActivityCheck,
    ChildCounts,
    ChildInfo,
    CountChildren,
    DeleteChild,
    RestartChild,
    StartChild,
    TerminateChild,
    WhichChildren,
)
from ...actors.errors import (
    ActorStopped,
    AlreadyPresent,
    AlreadyStarted,
    BadMessage,
    ChildRunning,
    PoolFull,
    StalwartError,
    StartFailed,
    UnknownPath,
)
from ...actors.messages import ErrorReply
from .._plan import slots_of
from ..spec import Child, SpecError, Supervisor, check_significant_under, shown
from . import lifecycle, passivation
from .commands import Answer, Forget, Planned, Send, ShutDown, Timer
from .common import Out, note
from .events import ActivityReported, ChildRequested, ChildStarted
from .state import DOWN, REMOVED, STARTING, UP, ChildRecord, SupervisorState

BREAKER_CLASS = "stalwart.supervisors._breaker_actor.BreakerActor"
IDLE_CHECKS = 4  # idle checks per idle_timeout_s


def on_child_requested(s: SupervisorState, e: ChildRequested, out: Out) -> None:
    request, asker = e.request, e.asker
    if s.retiring or s.escalated:
        error = ActorStopped(f"{s.path} is stopping: {type(request).__name__} refused", s.path)
        out.append(Answer(asker, ErrorReply.of(error)))
        return
    try:
        value = _REQUESTS[type(request)](s, request, asker, e.now, out)
    except StalwartError as exc:
        value = ErrorReply.of(exc)
    except SpecError as exc:
        value = ErrorReply.of(
            BadMessage(f"{in_tree(s, exc.path)}: {exc.field}: {exc.problem}", s.path)
        )
    if value is not _LATER:
        out.append(Answer(asker, value))


def in_tree(s: SupervisorState, path: str) -> str:
    """The path in the tree of what a spec error names: from the supervisor's own name
    (a Pool's instance, ``pool/key``), from the child's (a spec given), or whole already."""
    if path == s.path or path.startswith(s.path + "/"):
        return path
    name = s.path.rpartition("/")[2]
    if path == name or path.startswith(name + "/"):
        return s.path + path[len(name) :]
    return f"{s.path}/{path}"


_LATER: Any = object()  # the answer comes later (once the child runs, or has stopped)


# -- the requests -------------------------------------------------------------------------
def start(s: SupervisorState, req: StartChild, asker: Any, now: float, out: Out) -> Any:
    spec = spec_to_start(s, req)
    path = f"{s.path}/{spec.name}"
    kept = records_of(s, spec.name)
    if kept:  # (as OTP: one restarting is present, not started)
        if any(c.phase in (UP, STARTING) and not c.restart_pending for c in kept):
            raise AlreadyStarted(f"{path} is already started", path)
        if any(passivation.is_passivated(c) for c in kept):  # (kept, with its state)
            raise AlreadyStarted(
                f"{path} is already started (passivated: the next message to it brings it"
                " back with its state)",
                path,
            )
        state = "terminated" if all(c.phase == REMOVED for c in kept) else "restarting"
        raise AlreadyPresent(
            f"{path} is already present ({state}): restart_child it once terminated, or"
            " delete_child it",
            path,
        )
    limit = s.pool.max_children if s.pool is not None else None
    if limit is not None and len(s.by_spec) >= limit:  # (a Pool's instances go as they end)
        raise PoolFull(f"{s.path} runs max_children={limit} instances", s.path)
    check_siblings(s, spec)
    for stale in list(s.by_spec.get(spec.name, ())):  # a temporary one that ended
        s.remove(stale)
    public = {dep: public_slots(s, dep) for dep in spec.depends_on}
    for slot in slots_of(spec, public):
        s.add_slot(slot, dynamic=True)
    s.starters[spec.name] = (asker, False)
    # the root learns its paths now: what is sent to them waits until they run (an asker
    # on another process may hear of the path before the root hears it registered)
    out.append(Planned(spec))
    if s.pool is None:  # (a Pool's instances come and go by the thousand: no event each)
        note(s, out, "child-added", None, now, detail=f"{path} ({describe_spec(spec)})")
    lifecycle.reconcile(s, now, out)
    return _LATER


def _what(req: StartChild) -> str:
    """What ``req`` gives to start, in a few words."""
    if isinstance(req.child, (Child, Supervisor)):
        return "a spec"
    return shown(req.child) if req.child is not None else shown(req.key)


def spec_to_start(s: SupervisorState, req: StartChild) -> Child | Supervisor:
    """The spec ``req`` asks for: a Pool's instance by its key, or the spec given."""
    if s.pool is not None:
        if req.child is not None or not isinstance(req.key, str):
            raise BadMessage(
                f"{s.path} is a Pool: start_child takes the key of an instance (a name),"
                f" got {_what(req)}",
                s.path,
            )
        return s.pool.instance(req.key, req.options)
    if req.key is not None:
        raise BadMessage(
            f"{s.path} is not a Pool: start_child takes a Child or Supervisor, not a key", s.path
        )
    spec: Child | Supervisor = req.child
    if not isinstance(spec, (Child, Supervisor)):
        raise BadMessage(f"start_child: expected a Child or Supervisor, got {shown(spec)}", s.path)
    if req.options:
        if not isinstance(spec, Child):
            raise BadMessage(f"{s.path}/{spec.name}: options: a supervisor takes none", s.path)
        options = {**spec.options, **req.options}
        spec = msgspec.structs.replace(spec, options=options)
    return spec


def terminate(s: SupervisorState, req: TerminateChild, asker: Any, now: float, out: Out) -> Any:
    kept = known(s, req.name)
    path = f"{s.path}/{req.name}"
    note(s, out, "child-terminated", None, now, detail=f"{path} (requested)", at=path)
    for c in kept:
        c.stop_for_good, c.stopped_by_us = True, True
        if c.restart == "temporary" or s.pool is not None:
            c.forget = "terminated; a temporary child (or a Pool's instance) keeps no spec"
    if all(c.phase == REMOVED and not c.restart_pending for c in kept):
        if kept[0].forget:
            forget(s, kept, out)
        return None
    s.stoppers.setdefault(req.name, []).append(asker)
    lifecycle.reconcile(s, now, out)
    return _LATER


def restart(s: SupervisorState, req: RestartChild, asker: Any, now: float, out: Out) -> Any:
    kept = known(s, req.name, "restart_child")
    not_terminated(s, kept, "restart_child")
    for c in kept:
        c.phase, c.stop_for_good, c.stopped_by_us, c.waiting = DOWN, False, False, ""
    s.starters[req.name] = (asker, True)
    note(s, out, "child-restarted", None, now, detail=f"{s.path}/{req.name} (requested)")
    lifecycle.reconcile(s, now, out)
    return _LATER


def delete(s: SupervisorState, req: DeleteChild, asker: Any, now: float, out: Out) -> Any:
    if s.pool is not None:  # (what an earlier run stored for a key is deleted before this)
        path = f"{s.path}/{req.name}"
        if isinstance(req.name, str) and "/" in req.name:
            raise BadMessage(f"{s.path}: {req.name!r} is no key (a key has no '/')", s.path)
        if isinstance(req.name, str) and records_of(s, req.name):
            raise BadMessage(
                f"{s.path} is a Pool and its key {req.name!r} was started in this run:"
                " terminate_child it (a terminated instance leaves nothing behind)",
                s.path,
            )
        raise UnknownPath(
            f"{s.path} has no stored state for key {req.name!r}: delete_child of a Pool's key"
            " forgets what an earlier run stored for it, before this run starts it",
            path,
        )
    kept = known(s, req.name, "delete_child")
    not_terminated(s, kept, "delete_child")
    for c in kept:
        c.forget = "deleted"
    forget(s, kept, out)
    path = f"{s.path}/{req.name}"
    note(s, out, "child-deleted", None, now, detail=path, at=path)
    return None


def which(s: SupervisorState, req: WhichChildren, asker: Any, now: float, out: Out) -> Any:
    return tuple(
        ChildInfo(
            c.spec_name,
            c.path if c.phase == UP else None,
            "supervisor" if c.kind == "supervisor" else "worker",
            class_name(c),
        )
        for c in s.order
        if not gone(c)
    )


def count(s: SupervisorState, req: CountChildren, asker: Any, now: float, out: Out) -> Any:
    kept = [c for c in s.order if not gone(c)]
    kinds = {c.spec_name: isinstance(c.spec, Supervisor) for c in kept}
    supervisors = sum(kinds.values())
    specs = 1 if s.pool is not None else len(kinds)
    active = sum(c.phase == UP for c in kept)
    return ChildCounts(specs, active, supervisors, len(kinds) - supervisors)


_REQUESTS: dict[type, Any] = {
    StartChild: start,
    TerminateChild: terminate,
    RestartChild: restart,
    DeleteChild: delete,
    WhichChildren: which,
    CountChildren: count,
}


# -- helpers ------------------------------------------------------------------------------
def gone(c: ChildRecord) -> bool:
    """A temporary child that ended: as in OTP, its spec went with it."""
    return c.phase == REMOVED and (c.restart == "temporary" or bool(c.forget))


def records_of(s: SupervisorState, name: str) -> list[ChildRecord]:
    """The records of the spec ``name`` still kept (none for one gone)."""
    kept = s.by_spec.get(name, [])
    return [] if all(gone(c) for c in kept) else list(kept)


def check_siblings(s: SupervisorState, spec: Child | Supervisor) -> None:
    """Raise SpecError if ``spec`` depends on itself or on a child this supervisor does not
    have, or is significant where its supervisor never shuts down (as validate_children
    and the Supervisor's checks say for declared children)."""
    path = f"{s.path}/{spec.name}"
    for dep in spec.depends_on:
        if dep == spec.name:
            raise SpecError(path, "depends_on", "a child cannot depend on itself")
        if not records_of(s, dep):
            names = list(s.by_spec)
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise SpecError(path, "depends_on", f"unknown sibling {dep!r} (siblings: {shown})")
    check_significant_under(s.spec, spec)


def public_slots(s: SupervisorState, name: str) -> list[str]:
    """The slots a dependency on the child ``name`` means: its breaker, or all its slots."""
    kept = s.by_spec[name]
    return [c.name for c in kept if c.role == "breaker"] or [c.name for c in kept]


def known(s: SupervisorState, name: Any, request: str = "") -> list[ChildRecord]:
    """The records of child ``name``; UnknownPath naming it, BadMessage for a Pool's
    ``request`` that only applies to kept specs."""
    if request and s.pool is not None:
        raise BadMessage(
            f"{s.path} is a Pool: a terminated instance keeps no spec, so {request} does not"
            " apply (start_child it again)",
            s.path,
        )
    kept = records_of(s, name) if isinstance(name, str) else []
    if not kept:
        names = list(dict.fromkeys(c.spec_name for c in s.order if not gone(c)))
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise UnknownPath(
            f"{s.path} has no child {name!r} (children: {shown or 'none'})", f"{s.path}/{name}"
        )
    return kept


def not_terminated(s: SupervisorState, kept: list[ChildRecord], request: str) -> None:
    path = f"{s.path}/{kept[0].spec_name}"
    if any(c.restart_pending for c in kept):
        raise ChildRunning(f"{path} is restarting: terminate_child it before {request}", path)
    if any(c.phase != REMOVED for c in kept):
        raise ChildRunning(f"{path} is running: terminate_child it before {request}", path)


def class_name(c: ChildRecord) -> str:
    if c.kind == "supervisor":
        return type(c.spec).__name__
    if c.role == "breaker":
        return BREAKER_CLASS
    actor = c.spec.actor  # type: ignore[union-attr]
    return f"{actor.__module__}.{actor.__qualname__}"


def describe_spec(spec: Child | Supervisor) -> str:
    if isinstance(spec, Supervisor):
        return f"{type(spec).__name__}, {spec.restart}"
    return f"{spec.actor.__qualname__}, {spec.restart}"


def spec_goes(s: SupervisorState, c: ChildRecord) -> bool:
    """Its spec goes now that it has ended: it was asked to, or it was added at run time and
    is temporary or a Pool's instance (declared ones stay, as stopped)."""
    if not c.forget and c.dynamic and (c.restart == "temporary" or s.pool is not None):
        c.forget = "ended; a temporary child (or a Pool's instance) keeps no spec"
    return bool(c.forget)


def forget(s: SupervisorState, kept: list[ChildRecord], out: Out) -> None:
    """The spec of ``kept`` goes: its records, its checkpoints, its paths at the root."""
    paths = [c.path for c in kept]
    groups = {f"{s.path}/{c.slot.group}" for c in kept if c.slot.group}
    for c in kept:
        s.remove(c)
    reason = kept[0].forget or "deleted"
    out.append(Forget(tuple(c.name for c in kept), (*paths, *sorted(groups)), reason))


# -- what the lifecycle tells this module -------------------------------------------------
def on_up(s: SupervisorState, c: ChildRecord, now: float, out: Out) -> None:
    """``c`` runs: who waited for its spec to run (start_child, restart_child) hears so."""
    c.activity, c.active_at = None, now
    waiting = s.starters.get(c.spec_name)
    if waiting is not None and all(o.phase == UP for o in records_of(s, c.spec_name)):
        del s.starters[c.spec_name]
        out.append(Answer(waiting[0], f"{s.path}/{c.spec_name}"))


def start_failed(s: SupervisorState, c: ChildRecord, e: ChildStarted, out: Out) -> bool:
    """A child someone waits for failed to start: they hear why, and (unless it was
    restart_child's) its spec goes. False if nobody waits for it (recover as usual)."""
    waiting = s.starters.pop(c.spec_name, None)
    if waiting is None:
        return False
    asker, keep = waiting
    path = f"{s.path}/{c.spec_name}"
    why = f"{e.error.error_type}: {e.error.message}" if e.error else "it did not start"
    c.last_error = f"start failed: {why}"[:300]
    c.redeliver.extend(e.held)
    note(s, out, "start-failure", c, e.now, level=3, info=e.error, detail=c.last_error)
    for other in records_of(s, c.spec_name):
        other.stop_for_good, other.stopped_by_us = True, True
        if not keep:
            other.forget = f"failed to start: {why}"[:300]
    answer = StartFailed(f"{path} failed to start: {why}"[:500], path)
    out.append(Answer(asker, ErrorReply.of(answer)))
    return True


def after_removed(s: SupervisorState, removed: list[ChildRecord], now: float, out: Out) -> bool:
    """Children stopped for good: answer who waited, forget specs that go, and see whether
    a significant one ending by itself shuts this supervisor down (True if so)."""
    ended = [c for c in removed if c.spec.significant and not c.stopped_by_us]
    for c in removed:
        c.stopped_by_us = False
    for name in dict.fromkeys(c.spec_name for c in removed):
        kept = list(s.by_spec.get(name, ()))
        if any(c.phase != REMOVED for c in kept):
            continue
        for asker in s.stoppers.pop(name, []):
            out.append(Answer(asker, None))
        if kept and not s.retiring and spec_goes(s, kept[0]):
            forget(s, kept, out)
    if ended and not s.retiring:
        return auto_shutdown(s, ended[0], now, out)
    return False


def auto_shutdown(s: SupervisorState, c: ChildRecord, now: float, out: Out) -> bool:
    """``c``, significant, ended by itself: stop this supervisor if its auto_shutdown says so."""
    mode = s.spec.auto_shutdown
    if mode == "never":
        return False
    if mode == "all_significant" and any(
        o.spec.significant and o.phase != REMOVED for o in s.order
    ):
        return False
    reason = f"{c.path} ended by itself ({mode})"
    note(s, out, "auto-shutdown", None, now, detail=f"{s.path} stops itself: {reason}")
    out.append(ShutDown(reason))
    lifecycle.begin_retiring(s, out)
    return True


def give_up_waiting(s: SupervisorState, out: Out) -> None:
    """This supervisor stops: children it was starting will not run."""
    for name, (asker, _) in s.starters.items():
        error = ActorStopped(f"{s.path} stopped before {s.path}/{name} was running", s.path)
        out.append(Answer(asker, ErrorReply.of(error)))
    s.starters.clear()


# -- idle instances -----------------------------------------------------------------------
def idle_interval(s: SupervisorState) -> float:
    """How often a Pool with ``idle_timeout_s`` checks its instances (0: it does not)."""
    idle = s.pool.idle_timeout_s if s.pool is not None else None
    return max(0.01, idle / IDLE_CHECKS) if idle else 0.0


def on_idle_tick(s: SupervisorState, now: float, out: Out) -> None:
    for c in s.order:
        if c.phase == UP and c.kind == "actor" and not c.stop_for_good:
            out.append(Send(c.name, ActivityCheck()))
    out.append(Timer(idle_interval(s), ("idle",), "idle"))


def on_activity(s: SupervisorState, e: ActivityReported, out: Out) -> None:
    c = s.children.get(e.child)
    if c is None or c.incarnation != e.incarnation or c.phase != UP:
        return
    passivation.on_activity(s, c, e, out)
    if s.pool is None or not s.pool.idle_timeout_s or c.restart_pending or c.stop_for_good:
        return
    if e.busy or c.activity != e.activity:
        c.activity, c.active_at = e.activity, e.now
        return
    idle = s.pool.idle_timeout_s or 0.0
    kept = records_of(s, c.spec_name)
    if c.stop_for_good or not all(
        o.activity is not None and e.now - o.active_at >= idle for o in kept if o.kind == "actor"
    ):
        return
    reason = f"stopped after {idle:g}s without a message (idle_timeout_s of {s.path})"
    note(s, out, "idle-stop", c, e.now, detail=f"{s.path}/{c.spec_name} {reason}")
    for o in kept:
        o.stop_for_good, o.stopped_by_us, o.forget = True, True, reason
    lifecycle.reconcile(s, e.now, out)
