"""Fuzz: the message surface of a running system, ``System.ask`` and ``System.tell``.

Hypothesis sends well-formed and malformed msgspec Structs, plain values, objects of
local classes, Thespian's and Stalwart's own messages to real (actors, supervisors,
services), unknown and malformed paths, on the in-process base. Property: ``ask``
answers, or raises a :class:`StalwartError` (UnknownPath, BadMessage, UnknownMessage;
never a Timeout: no handler here is slow) whose text names the path, the type or the
field; ``tell`` returns or raises one; afterwards every actor still runs, none has
restarted, and the workers still answer. On the multi-process base, a fixed list of the
nastiest inputs (types the actors' processes cannot import among them) gets the same.
"""

from __future__ import annotations

import math
import pickle
import sys
import threading
import types
from datetime import timedelta

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from thespian.actors import (
    ActorExitRequest,
    ActorSystemMessage,
    ChildActorExited,
    DeadEnvelope,
    PoisonMessage,
    ThespianWatch,
    WakeupMessage,
    WatchMessage,
)

from stalwart import (
    BadMessage,
    Child,
    StalwartError,
    Supervisor,
    UnknownMessage,
    UnknownPath,
    start,
)
from stalwart.actors.messages import (
    Batch,
    Chaos,
    ErrorReply,
    Forwarded,
    HealthCheck,
    MemoryPressure,
    RecoveryRequest,
    Release,
    Retire,
    RunHooks,
    Told,
)
from tests.fuzz import EXAMPLES
from tests.support import Done, GetLog, Ping, Pong, Work, Worker

TREE = Supervisor(
    "s", children=[Child("w", Worker), Supervisor("inner", children=[Child("w2", Worker)])]
)
WORKERS = ("s/w", "s/inner/w2")
SUPERVISORS = ("s", "s/inner", "_system")
SERVICES = ("_system/telemetry", "_system/correlator", "_system/memory")
ASK_S = 5.0  # nothing here is slow: running into it is a failure


# -- message types made for the fuzz (no actor handles them) --------------------------------


class Tag(msgspec.Struct, frozen=True):
    label: str
    weight: float = 0.0


class Order(msgspec.Struct, frozen=True):
    id: int
    name: str
    blob: bytes
    items: list[int]
    tag: Tag
    note: str | None = None


class Opaque:
    """A plain object of a class of the test's own."""

    def __repr__(self) -> str:
        return "Opaque()"


def _local_types() -> tuple[type, type]:
    class LocalStruct(msgspec.Struct, frozen=True):
        n: int

    class LocalPlain:
        pass

    return LocalStruct, LocalPlain


LocalStruct, LocalPlain = _local_types()

# -- what each field takes, and values that are clearly of another type ----------------------

TEXT = st.text(max_size=20) | st.text(st.characters(codec=None), max_size=5)  # (surrogates too)
SMALL = st.integers(-(2**53), 2**53)
GOOD_TAG = st.builds(Tag, TEXT, st.floats() | SMALL)
GOOD = {
    "id": st.integers(),  # (any size)
    "name": TEXT,
    "blob": st.binary(max_size=20) | st.binary(max_size=5).map(bytearray),
    "items": st.lists(st.integers(), max_size=5),
    "tag": GOOD_TAG,
    "note": st.none() | TEXT,
}
WRONG = {
    "id": TEXT | st.binary(max_size=5) | st.floats() | st.booleans() | st.none(),
    "name": st.integers() | st.binary(max_size=5) | st.none() | st.lists(TEXT, max_size=2),
    # base64 text must not pass for bytes, nor a list of byte values
    "blob": TEXT | st.integers() | st.none() | st.lists(st.integers(0, 255), max_size=3),
    "items": TEXT
    | st.binary(max_size=5)
    | st.integers()
    | st.dictionaries(TEXT, st.integers(), min_size=1, max_size=2)
    | st.lists(TEXT | st.floats() | st.none(), min_size=1, max_size=3),
    "tag": st.integers() | TEXT | st.none() | st.lists(st.integers(), max_size=2),
    "note": st.integers() | st.binary(max_size=5) | st.floats() | st.lists(TEXT, max_size=2),
}
WRONG_TAG = {  # fields of the nested Struct, given wrong: named as tag.<field>
    "label": st.integers() | st.binary(max_size=5) | st.none(),
    "weight": TEXT | st.none() | st.booleans() | st.integers(min_value=2**1100),
}


@st.composite
def orders(draw):
    """``(message, fields given a wrong type)``: an Order built without any check (a Struct's
    ``__init__`` checks nothing), changed with ``msgspec.structs.replace``, or converted
    leniently from loose input (``strict=False``: always well-formed)."""
    how = draw(st.sampled_from(["init", "replace", "lenient"]))
    if how == "lenient":
        loose = {
            "id": draw(st.integers().map(str)),
            "name": draw(TEXT),
            "blob": b"",
            "items": draw(st.lists(st.integers().map(str), max_size=3)),
            "tag": {"label": draw(TEXT), "weight": str(draw(st.integers(0, 10)))},
        }
        return msgspec.convert(loose, Order, strict=False), set()
    wrong = set(draw(st.lists(st.sampled_from(sorted(GOOD)), unique=True, max_size=3)))
    fields = {name: draw(WRONG[name] if name in wrong else GOOD[name]) for name in GOOD}
    if "tag" not in wrong and draw(st.booleans()):  # wrong one level down
        bad = draw(st.sampled_from(sorted(WRONG_TAG)))
        fields["tag"] = msgspec.structs.replace(fields["tag"], **{bad: draw(WRONG_TAG[bad])})
        wrong.add(f"tag.{bad}")
    if how == "replace":
        base = Order(1, "a", b"", [], Tag("t"))
        return msgspec.structs.replace(base, **fields), wrong
    return Order(**fields), wrong


def _cycle() -> list:
    loop: list = [1]
    loop.append(loop)
    return loop


PLAIN = (
    TEXT
    | st.binary(max_size=50)
    | st.none()
    | st.integers(min_value=2**64)
    | st.integers(max_value=-(2**200))
    | st.floats()
    | st.complex_numbers()
    | st.dictionaries(TEXT | st.integers(), TEXT | st.integers(), max_size=3)
    | st.tuples(st.integers(), TEXT, st.none())
    | st.frozensets(st.integers(), max_size=3)
    | st.sampled_from(
        [
            Opaque(),
            LocalPlain(),
            LocalStruct(1),
            LocalStruct("one"),  # (its field is wrong: named like any other)
            ThespianWatch([]),  # (not one of Thespian's messages: an ordinary object)
            Ellipsis,
            int,
            msgspec.UNSET,
            ValueError("a value error as the message"),
            _cycle(),
            "x" * 100_000,
            lambda: None,
        ]
    )
)
THESPIANS = st.sampled_from(
    [
        ActorExitRequest(),
        ActorExitRequest(recursive=False),
        WakeupMessage(timedelta(0), "payload"),
        ChildActorExited(None),
        PoisonMessage(Ping(1)),
        DeadEnvelope(None, Ping(1)),
        WatchMessage([]),
    ]
)
INSTRUCTIONS = st.sampled_from(  # Stalwart's own, for one instance of an actor
    [
        Batch((ActorExitRequest(),)),
        Batch((Ping(3),)),
        Batch((Chaos("raise", 5),)),
        Retire(False),
        Release(),
        HealthCheck(1),
        MemoryPressure(1, 3),
        RunHooks(1, 3, "fuzz"),
        # what Told and Forwarded carry is handled as if sent alone
        Told(Retire(False), "fuzz.", 1, 1, None),
        Forwarded(Told(ActorExitRequest(), "fuzz.", 1, 1, None), None),
        Forwarded(Chaos("raise", 5), None),  # (Chaos alone: refused by the root, as a rule)
    ]
)
OTHERS = st.sampled_from(  # Stalwart's messages meant for no actor of this tree
    [
        RecoveryRequest("s/w", 3),
        ErrorReply("BadMessage", "from outside"),
        Chaos("raise", 3),  # (told: refused, the system was not started for chaos)
        Pong(1, "s/w", 1, 1),
    ]
)
ANSWERED = st.builds(Ping, st.integers()) | st.builds(Work, st.integers()) | st.just(GetLog())
MESSAGES = (
    orders()
    | (PLAIN | THESPIANS | INSTRUCTIONS | OTHERS | ANSWERED).map(lambda m: (m, set()))
    | st.builds(Ping, TEXT | st.floats() | st.none()).map(lambda m: (m, {"n"}))
)
PATHS = (
    st.sampled_from([*WORKERS, *SUPERVISORS, *SERVICES])
    | st.sampled_from(
        [
            "",
            "/",
            "//",
            "a//b",
            "s//w",
            "/s/w",
            "s/w/",
            "s/w ",
            "S/W",
            "s/nope",
            "s/w/deeper",
            "_system/",
            "s/\u00e9",
            "s/w\x00",
            "\ud800",
            "s/" + "x" * 10_000,
            None,
            7,
            b"s/w",
            ("s", "w"),
        ]
    )
    | TEXT
)


# -- the property --------------------------------------------------------------------------------


def expected(path, msg, wrong):
    """What ``ask(path, msg)`` must do: ``("answer", None)`` or ``(error type, text)``, the
    text being what the error must name."""
    if not isinstance(path, str) or path not in (*WORKERS, *SUPERVISORS, *SERVICES):
        return UnknownPath, repr(path)
    inner = msg
    while isinstance(inner, (Told, Forwarded)):
        inner = inner.message
    if isinstance(inner, ActorSystemMessage):
        return BadMessage, f"{type(inner).__name__} is one of Thespian's own"
    instructions = (Batch, Retire, Release, HealthCheck, MemoryPressure, RunHooks)
    if isinstance(inner, instructions) or (inner is not msg and isinstance(inner, Chaos)):
        return BadMessage, f"{type(inner).__name__} is one of Stalwart's own instructions"
    name = type(msg).__name__
    if wrong:
        return BadMessage, f"{name}: "
    if isinstance(msg, LocalStruct) and not isinstance(msg.n, int):
        return BadMessage, "LocalStruct: Expected `int`, got"
    if path in SUPERVISORS:
        return UnknownMessage, f"{path} is a supervisor: it has no handler for message type"
    if path in WORKERS and isinstance(msg, (Ping, Work, GetLog)):
        return "answer", None
    return UnknownMessage, f"no handler for message type {name!r}"


def check_ask(system, path, msg, wrong):
    kind, text = expected(path, msg, wrong)
    try:
        value = system.ask(path, msg, timeout=ASK_S)
    except StalwartError as exc:
        assert type(exc) is kind, f"{type(exc).__name__}: {exc} (expected {kind})"
        assert text in str(exc), f"{text!r} not in {str(exc)[:300]!r}"
        if wrong and kind is BadMessage:  # the field at fault is named
            assert any(f"`$.{field}" in str(exc) for field in wrong), str(exc)
        return
    assert kind == "answer", f"answered {value!r:.200}, expected {kind.__name__}: {text}"
    if isinstance(msg, Ping):
        assert isinstance(value, Pong) and value.n == msg.n and value.path == path
    elif isinstance(msg, Work):
        assert isinstance(value, Done) and value.id == msg.id
    else:
        assert isinstance(value, list)


def check_tell(system, path, msg, wrong):
    kind, text = expected(path, msg, wrong)
    try:
        system.tell(path, msg)
    except StalwartError as exc:
        # refused up front (the path, or a message that cannot be sent); the actor's own
        # refusal (UnknownMessage) has no one to go to
        assert kind in (UnknownPath, BadMessage), f"{type(exc).__name__}: {exc}"
        assert type(exc) is kind and text in str(exc), f"{exc} (expected {kind.__name__})"
        return
    assert kind not in (UnknownPath, BadMessage), f"told, expected {kind.__name__}: {text}"


def healthy(system, restarts):
    """Every actor runs, none restarted, and the workers answer."""
    status = system.status()
    assert all(s.state == "running" for s in status), str(status)
    assert {s.path: s.restarts for s in status} == restarts, str(status)
    for path in WORKERS:
        assert system.ask(path, Ping(7), timeout=ASK_S).n == 7


def test_asks_and_tells_get_a_reply_or_an_error_naming_the_fault():
    with start(TREE) as system:
        restarts = {s.path: s.restarts for s in system.status()}

        @settings(max_examples=EXAMPLES, deadline=None)
        @given(PATHS, MESSAGES, st.booleans())
        # base64 text (even "") passed for bytes (and ISO text for a datetime, and so on)
        @example("s/w", (Order(1, "a", "", [], Tag("t")), {"blob"}), False)
        @example("s/w", (Order(1, "a", "aGVsbG8=", [], Tag("t")), {"blob"}), True)
        # Stalwart's own instructions went to the actor: it stopped (asks then timed out),
        # or restarted
        @example("s/w", (Batch((ActorExitRequest(),)), set()), True)
        @example("s/w", (Retire(False), set()), True)
        @example("s/w", (Release(), set()), True)
        # a supervisor took none: asks timed out; Retire stopped its whole subtree
        @example("s", (Ping(1), set()), False)
        @example("_system", (Retire(False), set()), True)
        @example("s/w", (Told(Retire(False), "fuzz.", 1, 1, None), set()), True)
        # values msgspec cannot check raised TypeError/RecursionError from validation
        @example("s/w", (Order(1, "a", b"", _cycle(), Tag("t")), set()), False)
        def one_message(path, message, told):
            msg, wrong = message
            if told:
                check_tell(system, path, msg, wrong)
            else:
                check_ask(system, path, msg, wrong)
            healthy(system, restarts)

        one_message()
        assert system.ask("s/w", Ping(1), timeout=ASK_S).n == 1


class Untagged(msgspec.Struct, frozen=True):
    """A union of Structs without tags: msgspec cannot check it, but it can be sent."""

    choice: Tag | Order | None = None


def test_messages_msgspec_cannot_check_are_passed_on_unchecked():
    with start(TREE) as system:
        # validation raised msgspec's TypeError for the type (every such message refused)
        for msg in (Untagged(), Untagged(Tag("t")), Order(1, "a", b"", [], Tag("t"), _cycle())):
            with pytest.raises(UnknownMessage, match=type(msg).__name__):
                system.ask("s/w", msg, timeout=ASK_S)


# -- the multi-process base: messages that cannot cross to the actors' processes ----------------


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("this object refuses to be pickled")


class UnreadableThere:
    """Pickles here; fails to unpickle anywhere."""

    def __reduce__(self):
        return (int, ("not a number",))


def test_on_the_multiprocess_base_the_nastiest_messages_get_errors_naming_the_type():
    class DefinedInAFunction(msgspec.Struct, frozen=True):
        n: int

    main = sys.modules["__main__"]

    class FuzzMainStruct(msgspec.Struct, frozen=True):  # as if written in the program's __main__
        n: int

    FuzzMainStruct.__module__, FuzzMainStruct.__qualname__ = "__main__", "FuzzMainStruct"
    main.FuzzMainStruct = FuzzMainStruct  # there before start(): the forked processes have it
    late = types.ModuleType("stalwart_fuzz_late")  # made after start(): only here
    try:
        with start(TREE, base="multiproc") as system:
            restarts = {s.path: s.restarts for s in system.status()}

            class LateStruct(msgspec.Struct, frozen=True):
                n: int

            LateStruct.__module__, LateStruct.__qualname__ = late.__name__, "LateStruct"
            late.LateStruct = LateStruct
            sys.modules[late.__name__] = late
            pickle.dumps(LateStruct(1))  # (it pickles here)
            cannot_send = "cannot be sent to another process"
            cases = [
                # a type defined in a function: its name leads nowhere
                (DefinedInAFunction(1), BadMessage, "DefinedInAFunction " + cannot_send),
                (LocalPlain(), BadMessage, "LocalPlain " + cannot_send),
                ([threading.Lock()], BadMessage, "builtins.list " + cannot_send),
                (Unpicklable(), BadMessage, "refuses to be pickled"),
                (Tag(memoryview(b"x")), BadMessage, "Tag"),  # (well-formed, but memoryview)
                (lambda: None, BadMessage, cannot_send),
                # pickled here, unreadable there: the runtime dropped them (asks timed out)
                (LateStruct(1), BadMessage, "stalwart_fuzz_late.LateStruct cannot be read"),
                (UnreadableThere(), BadMessage, "UnreadableThere cannot be read"),
                # __main__'s types reach the actors' processes (forked after it was made)
                (FuzzMainStruct(1), UnknownMessage, "no handler for message type 'FuzzMainStruct'"),
                (Order("1", "a", b"", [], Tag("t")), BadMessage, "Order: Expected `int`"),
                (Order(1, "a", "aGVsbG8=", [], Tag("t")), BadMessage, "at `$.blob`"),
                (Batch((ActorExitRequest(),)), BadMessage, "one of Stalwart's own"),
                (ActorExitRequest(), BadMessage, "one of Thespian's own"),
                (_cycle(), UnknownMessage, "'list'"),
                (-(2**4000), UnknownMessage, "'int'"),
                (b"\xff" * 2**20, UnknownMessage, "'bytes'"),
                (Opaque(), UnknownMessage, "'Opaque'"),
                (math.nan, UnknownMessage, "'float'"),
            ]
            for msg, kind, text in cases:
                with pytest.raises(kind) as info:
                    system.ask("s/w", msg, timeout=ASK_S)
                assert text in str(info.value), str(info.value)
                if kind is BadMessage:
                    before = len(system.dead_letters())
                    try:
                        system.tell("s/w", msg)  # refused here, or kept as a dead letter there
                    except BadMessage as exc:
                        assert text in str(exc)
                    else:
                        letters = wait_for_letters(system, before + 1)
                        assert text in letters[-1].error
            for path in ("s", "s/inner", "_system"):
                with pytest.raises(UnknownMessage, match=f"{path} is a supervisor"):
                    system.ask(path, Ping(1), timeout=ASK_S)
            for path in ("", "/", "a//b", "s/\u00e9" * 1000, "\ud800"):
                with pytest.raises(UnknownPath):
                    system.ask(path, Ping(1), timeout=ASK_S)
            healthy(system, restarts)
    finally:
        del main.FuzzMainStruct
        sys.modules.pop(late.__name__, None)


def wait_for_letters(system, count):
    """The dead letters, once there are ``count`` (a tell is kept as one by the root; asked
    after it on the same channel, the root has handled the tell)."""
    system.ask("s/w", Ping(0), timeout=ASK_S)
    letters = system.dead_letters()
    assert len(letters) >= count, letters
    return letters
