"""Tree specs are validated when declared; errors name the path and the field."""

import inspect
import math
import pickle
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart import (
    Asks,
    Breaker,
    Child,
    LevelPolicy,
    ManagedActor,
    Pool,
    SpecError,
    Supervisor,
    start,
)
from stalwart.supervisors import CachedReply, DefaultReply, SystemOptions
from stalwart.supervisors.spec import shown
from tests.support import Worker


def test_duplicate_sibling_names():
    with pytest.raises(SpecError, match=r"^shop/db: name: duplicate sibling name 'db'"):
        Supervisor("shop", children=[Child("db", Worker), Child("db", Worker)])


def test_unknown_dependency_names_the_sibling():
    with pytest.raises(SpecError, match=r"shop/api: depends_on: unknown sibling 'dbx'"):
        Supervisor("shop", children=[Child("db", Worker), Child("api", Worker, depends_on=["dbx"])])


def test_dependency_cycle_is_shown():
    with pytest.raises(SpecError, match=r"depends_on: cycle a -> b -> a"):
        Supervisor(
            "s",
            children=[Child("a", Worker, depends_on=["b"]), Child("b", Worker, depends_on=["a"])],
        )


def test_self_dependency():
    with pytest.raises(SpecError, match="cannot depend on itself"):
        Supervisor("s", children=[Child("a", Worker, depends_on=["a"])])


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Supervisor("s", strategy="one_for_some"), "strategy"),
        (lambda: Supervisor("s", max_restarts=-1), "max_restarts"),
        (lambda: Supervisor("s", within_s=0), "within_s"),
        (lambda: Child("w", Worker, restart="always"), "restart"),
        (lambda: Child("w", Worker, replicas=0), "replicas"),
        (lambda: Child("w", Worker, checkpoint="sometimes"), "checkpoint"),
        (lambda: Child("w", Worker, start_timeout_s=0), "start_timeout_s"),
        (lambda: Child("w", dict), "actor"),
        (lambda: Child("w", "tests.support:Nope"), "actor"),
        (lambda: Child("w", "no_such_module_x:Worker"), "actor"),
        (
            lambda: Child("w", Worker, levels=LevelPolicy(basic_attempts=-1)),
            "levels.basic_attempts",
        ),
        (lambda: Child("bad name", Worker), "name"),
        (lambda: Child("w", Worker, depends_on="db"), "depends_on"),
        (lambda: Pool("p", template=Child("w", Worker), idle_timeout_s=math.inf), "idle_timeout_s"),
        (lambda: Child("w", Worker, passivate_after_s=math.inf), "passivate_after_s"),
    ],
)
def test_bad_values_name_the_field(make, field):
    with pytest.raises(SpecError) as info:
        make()
    assert info.value.field == field


def test_actor_classes_can_be_named_as_module_and_class():
    assert Child("w", "tests.support:Worker").actor is Worker


def test_unknown_start_option_is_named():
    with pytest.raises(TypeError, match="'colour'"):  # (a keyword start() does not have)
        start(Supervisor("s"), colour="blue")
    with pytest.raises(SpecError, match="start: base"):
        start(Supervisor("s"), base="quantum")
    with pytest.raises(SpecError, match="start: tree"):
        start("not a tree")
    with pytest.raises(SpecError, match="start: dead_letter_limit: must be >= 0, got -1"):
        start(Supervisor("s"), dead_letter_limit=-1)


@given(st.text(max_size=12))
def test_any_name_is_accepted_or_refused_with_a_spec_error(name):
    try:
        child = Child(name, Worker)
    except SpecError as exc:
        # (named as error messages show values: a long escaped repr is shortened)
        assert exc.field == "name" and shown(name) in str(exc)
    else:
        assert child.name == name
        assert name[0].isalpha() or name[0] == "_"


@given(
    st.dictionaries(
        st.sampled_from(
            ["strategy", "max_restarts", "within_s", "restart", "shutdown_s", "levels"]
        ),
        st.one_of(
            st.integers(-3, 3), st.text(max_size=5), st.floats(-1, 1), st.none(), st.booleans()
        ),
    )
)
def test_random_supervisor_settings_are_accepted_or_refused_naming_the_field(settings):
    try:
        Supervisor("s", **settings)
    except SpecError as exc:
        assert exc.field in settings


@pytest.mark.parametrize(
    ("make", "field", "expected"),
    [
        (lambda: Child("w", Worker, levels="x"), "levels", "expected LevelPolicy | None, got 'x'"),
        (lambda: Child("w", Worker, options=None), "options", "expected dict[str, Any]"),
        (lambda: Child("w", Worker, durable=[]), "durable", "expected bool, got []"),
        (
            lambda: Supervisor("s", auto_shutdown="bogus"),
            "auto_shutdown",
            "expected one of 'never', 'any_significant', 'all_significant', got 'bogus'",
        ),
        (
            lambda: Child("w", Worker, restart=3),
            "restart",
            "expected one of 'permanent', 'transient', 'temporary', got 3",
        ),
        (lambda: Supervisor("s", children=5), "children", "expected a list of Child"),
        (
            lambda: Child("w", Worker, breaker=Breaker(call_timeout_s=None)),
            "breaker.call_timeout_s",
            "expected float, got None",
        ),
        (lambda: Child("w", Worker, breaker=Breaker(window="x")), "breaker.window", "expected int"),
        (
            lambda: Child("w", Worker, breaker=Breaker(success_threshold=4.0)),
            "breaker.success_threshold",
            "expected int, got 4.0",
        ),
        (
            lambda: Child("w", Worker, breaker=Breaker(fallback=[1])),
            "breaker.fallback[0]",
            "got [1]",
        ),
        (
            lambda: Child("w", Worker, levels=LevelPolicy(backoff="x")),
            "levels.backoff",
            "expected Fixed | Linear | Exponential",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_named_with_what_was_expected(make, field, expected):
    with pytest.raises(SpecError) as info:
        make()
    assert info.value.field == field and expected in info.value.problem


def test_telemetry_settings_are_checked_when_declared():
    tree = Supervisor("s", children=[Child("w", Worker)])
    for settings, message in (
        ({"flush_rows": "x"}, "telemetry.flush_rows: Expected `int`, got `str`"),
        ({"flush_rowz": 3}, "telemetry.flush_rowz: unknown setting (known: flush_rows,"),
        ({"timeout_percentile": 150}, "telemetry.timeout_percentile: Expected `float` <= 100"),
        ({"retention_rows": -1}, "telemetry.retention_rows: Expected `int` >= 0"),
        ({"timeout_min_s": 5, "timeout_max_s": 2}, "telemetry.timeout_min_s: must be at most"),
        ({"timeout_min_s": 40}, "telemetry.timeout_min_s: must be at most timeout_max_s (40 > 30)"),
    ):
        with pytest.raises(SpecError) as info:
            start(tree, telemetry=settings)  # refused before anything starts
        assert message in str(info.value)


# -- the typed API: sequences, start()'s keywords, typed replies -------------------------------


def test_specs_take_any_sequence_and_keep_a_tuple():
    child = Child("api", Worker, depends_on=["db"])
    tree = Supervisor("s", children=[Child("db", Worker), child], depends_on=[])
    assert type(tree.children) is tuple and type(tree.depends_on) is tuple
    assert child.depends_on == ("db",)
    from_list = Breaker(fallback=[CachedReply(ttl_s=5), DefaultReply("later")])
    from_tuple = Breaker(fallback=(CachedReply(ttl_s=5), DefaultReply("later")))
    assert from_list == from_tuple and hash(from_list) == hash(from_tuple)
    assert Breaker(fallback=DefaultReply(1)).fallback == (DefaultReply(1),)


def test_start_takes_every_system_option_as_a_keyword_of_the_same_type_and_default():
    parameters = list(inspect.signature(start).parameters.values())[1:]
    assert [p.name for p in parameters] == list(SystemOptions.__struct_fields__)
    assert parameters[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD  # start(tree, "tcp")
    assert {p.kind for p in parameters[1:]} == {inspect.Parameter.KEYWORD_ONLY}
    hints, types = typing.get_type_hints(start), typing.get_type_hints(SystemOptions)
    for parameter, field in zip(parameters, msgspec.structs.fields(SystemOptions)):
        assert hints[parameter.name] == types[field.name], field.name
        default = field.default
        if default is msgspec.NODEFAULT:
            default = field.default_factory()
        assert parameter.default == default, field.name


def test_each_option_is_described_in_starts_docstring_and_in_system_options():
    for name in SystemOptions.__struct_fields__:
        assert f"``{name}``" in (start.__doc__ or ""), name
        assert f"``{name}``" in (SystemOptions.__doc__ or ""), name
    # (docs/configuration.md is generated from SystemOptions: tests/test_docs.py)


def test_a_message_that_declares_its_reply_type_is_still_a_plain_message(make_system, base):
    assert pickle.loads(pickle.dumps(Balance("a"))) == Balance("a")
    assert pickle.loads(pickle.dumps(Plain(2))).n == 2
    assert Balance.__struct_fields__ == ("account",)  # (Asks adds no field)
    system = make_system(Supervisor("s", children=[Child("teller", Teller)]), base=base)
    assert system.ask("s/teller", Balance("a"), timeout=10) == 100
    assert system.ask("s/teller", Plain(2), timeout=10) == "2"


def test_type_checkers_see_the_reply_type_a_message_declares(tmp_path):
    code = """
from typing import Any, assert_type

import msgspec
from stalwart import Asks, Child, ManagedActor, Supervisor, System, start


class Balance(msgspec.Struct, Asks[int], frozen=True):
    account: str


class Plain(Asks[str]):
    pass


class Untyped(msgspec.Struct, frozen=True):
    pass


def check(system: System) -> None:
    assert_type(system.ask("s/teller", Balance("a")), int)
    assert_type(system.ask("s/teller", Plain(), timeout=1), str)
    assert_type(system.ask("s/teller", Untyped()), Any)


async def check_async(system: System, actor: ManagedActor) -> None:
    assert_type(await system.ask_async("s/teller", Balance("a")), int)
    assert_type(await system.ask_async("s/teller", Untyped(), timeout=1), Any)
    assert_type(await actor.ask("s/teller", Plain()), str)
    assert_type(await actor.ask("s/teller", Balance("a")), str)  # E: the reply is an int


def check_start(system: System) -> None:
    tree = Supervisor("s", children=[Child("t", ManagedActor, depends_on=["u"])])
    start(tree, "multiproc", memory_thresholds=(60, 80, 90), correlator=None).shutdown()
    start(tree, base="threads")  # E: base
    start(tree, colour="blue")  # E: colour
    start(tree, ask_timeout_s="5")  # E: ask_timeout_s
"""
    (tmp_path / "typed.py").write_text(code)
    out = _mypy(tmp_path / "typed.py")
    errors = [line for line in out.splitlines() if ": error:" in line]
    lines = code.splitlines()
    flagged = sorted({int(line.split(":")[1]) for line in errors})
    expected = [n for n, text in enumerate(lines, 1) if "# E:" in text]
    assert flagged == expected, out


def _mypy(*files: Path) -> str:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-warn-unused-ignores"]
        + ["--follow-imports=silent", "--cache-dir", str(root / ".mypy_cache" / "samples")]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=root,
        check=False,
    )
    return out.stdout + out.stderr


class Balance(msgspec.Struct, Asks[int], frozen=True):
    account: str


class Plain(Asks[str]):
    def __init__(self, n: int) -> None:
        self.n = n


class Teller(ManagedActor):
    def receiveMsg_Balance(self, msg: Balance, sender: Any) -> None:
        self.reply(sender, 100)

    def receiveMsg_Plain(self, msg: Plain, sender: Any) -> None:
        self.reply(sender, str(msg.n))
