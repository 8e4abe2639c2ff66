"""Tree specs are validated when declared; errors name the path and the field."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart import Breaker, Child, LevelPolicy, SpecError, Supervisor, start
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
    ],
)
def test_bad_values_name_the_field(make, field):
    with pytest.raises(SpecError) as info:
        make()
    assert info.value.field == field


def test_actor_classes_can_be_named_as_module_and_class():
    assert Child("w", "tests.support:Worker").actor is Worker


def test_unknown_start_option_is_named():
    with pytest.raises(SpecError, match="start: colour: unknown option"):
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
        assert exc.field == "name" and repr(name) in str(exc)
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
        ({"retention_rows": 0}, "telemetry.retention_rows: Expected `int` >= 1"),
    ):
        with pytest.raises(SpecError) as info:
            start(tree, telemetry=settings)  # refused before anything starts
        assert message in str(info.value)
