"""Helpers and actors for the tests ported from OTP's supervisor suite."""

from __future__ import annotations

import pytest

from stalwart import ActorStopped, Child, LevelPolicy, Supervisor
from tests.core.otp_actors import Die, OtpChild
from tests.support import Ping, sigkill_actor, wait_for

OTP = LevelPolicy.otp()
PERIOD = 60.0  # a period no test outlives: only the count of restarts matters


def sup(name, children, strategy="one_for_one", max_restarts=3, within_s=PERIOD, **kw):
    """A supervisor with OTP's levels for its children (and for itself in its parent)."""
    return Supervisor(
        name,
        strategy=strategy,
        max_restarts=max_restarts,
        within_s=within_s,
        levels=OTP,
        children=children,
        **kw,
    )


def child(name, journal=None, restart="permanent", **options):
    if journal is not None:
        options["journal"] = str(journal)
    return Child(name, OtpChild, restart=restart, options=options)


def crash(system, base, path):
    """OTP's ``die``: the child exits abnormally (its process dies where it has one)."""
    if base == "multiproc":
        sigkill_actor(system, path)
    else:
        system.tell(path, Die(system.status()[path].incarnation))


def incarnations(system, *paths):
    status = system.status()
    return {p: status[p].incarnation for p in paths}


def running(system, *paths):
    """The incarnations of ``paths`` once all of them run.

    (``start()`` returns once every child has started, but the status of the
    last ones may lag it by a moment.)
    """

    def all_running():
        status = system.status()
        if all(status[p].state == "running" for p in paths):
            return {p: status[p].incarnation for p in paths}
        return None

    return wait_for(all_running)


def wait_restarted(system, before, timeout=10.0):
    """Wait until every path of ``before`` runs an incarnation newer than its own there."""

    def behind(status):
        return {
            p: f"{status[p].state}, incarnation {status[p].incarnation}"
            for p in before
            if not (status[p].incarnation > before[p] and status[p].state == "running")
        }

    def newer():
        status = system.status()
        return None if behind(status) else {p: status[p].incarnation for p in before}

    try:
        return wait_for(newer, timeout=timeout)
    except AssertionError:
        late = behind(system.status())
        raise AssertionError(f"not restarted within {timeout:g}s: {late}") from None


def count_events(system, kind, path, expect=0):
    """How many ``kind`` events ``path`` has had, once ``expect`` have arrived (or after 5 s).

    (One actor's events may reach the root after what another actor's status shows.)
    """

    def count():
        return len([e for e in system.events() if e.kind == kind and e.path == path])

    try:
        wait_for(lambda: count() >= expect, timeout=5)
    except AssertionError:
        pass  # the caller's assertion names the count
    return count()


def gave_up(system, path, expect=0):
    """How often the supervisor at ``path`` exceeded its restart intensity."""
    return count_events(system, "escalate", path, expect)


def kinds(system):
    return [e.kind for e in system.events()]


def start_failures(system, path, expect=0):
    return count_events(system, "start-failure", path, expect)


def assert_stopped_for_good(system, path):
    """It is stopped, and a request to it is answered at once with ActorStopped (not held)."""
    try:
        wait_for(lambda: system.status()[path].state == "stopped", timeout=5)
    except AssertionError:
        state = system.status()[path].state
        raise AssertionError(f"{path} is {state!r}, not stopped for good") from None
    with pytest.raises(ActorStopped):  # held instead, it would end in a Timeout
        system.ask(path, Ping(), timeout=30)


def failing_starts(tmp_path, n=0):
    """A file telling an OtpChild how many of its next starts fail (``supervisor_1``'s
    ``start_child(error)``); write a number to it to arm it."""
    path = tmp_path / "fail-starts"
    path.write_text(str(n))
    return path
