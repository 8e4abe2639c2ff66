"""Fuzz: the children calls of a running system (``start_child``, ``terminate_child``,
``restart_child``, ``delete_child``, ``which_children``, ``count_children``).

Hypothesis calls them with supervisors, actors, Pools and unknown or malformed paths,
child specs, keys, names and options of any kind, on the in-process base. Property: a
call answers or raises a :class:`StalwartError` whose text names what is wrong (the
path, the name, the key, the setting), never another exception and never a Timeout; and
afterwards the declared tree still runs and answers. An actor's calls, with the arguments
of a System call refused for them, are refused with the same error and text.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stalwart import (
    AlreadyPresent,
    AlreadyStarted,
    BadMessage,
    Child,
    ChildRunning,
    Pool,
    StalwartError,
    Supervisor,
    Timeout,
    UnknownPath,
    start,
)
from tests.fuzz import EXAMPLES
from tests.support import Ping, Worker

TREE = Supervisor(
    "s",
    children=[
        Child("w", Worker),
        Supervisor("inner", children=[Child("w2", Worker)]),
        Pool("pool", template=Child("session", Worker), max_children=3),
    ],
)
SUPERVISORS = ["s", "s/inner", "s/pool"]
PATHS = st.sampled_from([*SUPERVISORS, "s/w", "s/inner/w2", "nope", "s/nope", "", "s/"]) | st.text(
    max_size=12
)
ODD = st.none() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=4)
NAMES = st.sampled_from(["w", "w2", "inner", "pool", "x", "y", "k1"]) | st.text(max_size=10) | ODD
SPECS = (
    st.builds(Child, st.sampled_from(["x", "y", "w"]), st.just(Worker))
    | st.builds(
        Child,
        st.sampled_from(["x", "y"]),
        st.just(Worker),
        depends_on=st.lists(st.sampled_from(["w", "zz", "x"]), max_size=2),
        restart=st.sampled_from(["permanent", "transient", "temporary"]),
    )
    | st.builds(Supervisor, st.sampled_from(["sub", "w"]))
    | ODD
)
OPTIONS = st.none() | st.dictionaries(st.text(max_size=4), ODD, max_size=2) | ODD
CALLS = st.sampled_from(["start", "terminate", "restart", "delete", "which", "count"])
EXPECTED = (UnknownPath, BadMessage, AlreadyStarted, AlreadyPresent, ChildRunning, StalwartError)


def call(system, kind, path, name, spec, options):
    if kind == "start":
        return system.start_child(path, spec if spec is not None else name, options, timeout=15)
    if kind == "which":
        return system.which_children(path, timeout=15)
    if kind == "count":
        return system.count_children(path, timeout=15)
    return getattr(system, f"{kind}_child")(path, name, timeout=15)


def healthy(system):
    for path in ("s/w", "s/inner/w2"):
        assert system.ask(path, Ping(7), timeout=10).n == 7
    status = system.status()
    assert status["s"].state == "running" and status["s/pool"].state == "running"


def test_children_calls_answer_or_name_what_is_wrong():
    with start(TREE) as system:

        @settings(max_examples=EXAMPLES, deadline=None)
        @given(CALLS, PATHS, NAMES, SPECS, OPTIONS)
        @example("start", "s/pool", "k1", None, {"a": 1})
        @example("start", "s/pool", "bad/key", None, None)
        @example("start", "s", "x", Child("x", Worker, depends_on=["zz"]), None)
        @example("start", "s", "x", Child("x", Worker), {"": b"x"})
        @example("terminate", "s", "inner", None, None)
        @example("delete", "s/w", "x", None, None)
        def one_call(kind, path, name, spec, options):
            try:
                call(system, kind, path, name, spec, options)
            except Timeout as exc:
                pytest.fail(f"{kind} on {path!r} timed out: {exc}")
            except EXPECTED as exc:
                text = str(exc)
                assert text, f"{type(exc).__name__} without a message"
                if isinstance(exc, UnknownPath):  # it names the path, or the child's name
                    named = [repr(exc.path), repr(name), repr(path)]
                    assert any(n in text for n in named) or (exc.path and exc.path in text), text
            if kind in ("terminate", "delete") and path == "s" and name in ("w", "inner", "pool"):
                system.restart_child("s", name) if kind == "terminate" else None

        one_call()
        restore_declared(system)


def restore_declared(system):
    """The declared children a call terminated run again (``inner``'s ``w2`` too), and answer."""
    for supervisor, name in (("s", "w"), ("s", "inner"), ("s", "pool"), ("s/inner", "w2")):
        try:
            system.restart_child(supervisor, name, timeout=15)
        except ChildRunning:
            pass
        except UnknownPath:  # deleted (or its supervisor is): declared again
            pass
    wait_declared(system)


def wait_declared(system):
    """The declared children still there run and answer."""
    names = {i.name for i in system.which_children("s")}
    if "w" in names:
        assert system.ask("s/w", Ping(7), timeout=10).n == 7
    if "inner" in names and "w2" in {i.name for i in system.which_children("s/inner")}:
        assert system.ask("s/inner/w2", Ping(7), timeout=10).n == 7


ACTOR_CALLS = st.sampled_from(["start_child", "terminate_child", "restart_child", "delete_child"])


def outcome(run):
    """``("ok", value)``, or the error ``run`` raised as ``("error", type name, text)``."""
    try:
        return ("ok", run())
    except StalwartError as exc:
        return ("error", type(exc).__name__, str(exc))


def test_an_actors_children_calls_are_refused_as_the_systems_are():
    """An actor's calls (``self.start_child``...) with the same arguments as a System call
    refused for its arguments (``BadMessage``) are refused with the same error and text;
    for any other refusal, the actor's call is answered too (never a Timeout)."""
    from tests.core.dynamic_actors import Calls, ChildCall

    tree = Supervisor("s", children=[*TREE.children, Child("calls", Calls)])
    with start(tree) as system:

        @settings(max_examples=EXAMPLES, deadline=None)
        @given(ACTOR_CALLS, PATHS, NAMES, SPECS, OPTIONS)
        @example("start_child", "s/pool", 42, None, None)
        @example("start_child", "s/w", "x", Child("x", Worker), None)
        @example("terminate_child", "s", None, None, None)
        @example("start_child", "_system", "x", Child("x", Worker), None)
        def same_refusal(kind, path, name, spec, options):
            started = kind == "start_child"
            args = (spec if spec is not None else name, options) if started else (name,)
            ours = outcome(lambda: getattr(system, kind)(path, *args, timeout=15))
            if ours[0] == "ok":
                return  # (it changed the tree: the actor's call would meet another one)
            theirs = system.ask("s/calls", ChildCall(kind, path, args), timeout=30)
            if ours[1] == "BadMessage":  # what is wrong with the arguments: said the same
                assert theirs == ours, (kind, path, args)
            else:  # (what the tree said may differ: the two calls see it at two moments,
                # and an actor may know a path's state before the root says it)
                assert theirs[0] == "ok" or (theirs[1] != "Timeout" and theirs[2]), theirs

        same_refusal()
        restore_declared(system)
