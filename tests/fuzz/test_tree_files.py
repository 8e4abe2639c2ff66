"""Fuzzes the TOML tree-file surface: ``load_tree(path)`` and ``stalwart check FILE``.

Documents come from a grammar of the real keys (``[system]``, ``[supervisor]`` and its
children, their ``levels``, ``breaker``, fallbacks...) with valid values, then with one
setting changed to a value of any TOML type, added under an unknown name, or removed;
with many such changes; or as raw bytes and mangled text. They are written by the small
TOML writer below (``tomllib`` only reads; no ``tomli_w`` here).

Property: ``load_tree`` returns a ``TreeFile`` (always, for a document of valid values) or
raises ``TreeFileError`` (a ``SpecError``) whose message names its field and, when one
setting was changed, that setting; an unknown setting is refused; never another exception,
never a hang. A few documents go through the real command (``python -m stalwart check``):
exit code 0 or 2, and no traceback.
"""

from __future__ import annotations

import copy
import datetime
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stalwart import SpecError, TreeFile, TreeFileError
from stalwart.cluster import ClusterSettings
from stalwart.memory import MemorySettings
from stalwart.supervisors import (
    Alternative,
    Breaker,
    CachedReply,
    Child,
    DefaultReply,
    LevelPolicy,
    Pool,
    QueueForLater,
    ReducedFunctionality,
    Supervisor,
)
from stalwart.supervisors._options import SystemOptions
from stalwart.supervisors._tree_file import load_tree
from stalwart.telemetry import CorrelatorSettings
from stalwart.telemetry._settings import TelemetrySettings
from tests.fuzz import EXAMPLES

FUZZ = settings(max_examples=EXAMPLES, deadline=None)
ROOT = Path(__file__).resolve().parents[2]


# -- a small TOML writer ------------------------------------------------------------------
def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (control characters escaped, as TOML wants)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def toml_value(value: Any) -> str:
    """A value written inline (arrays and inline tables on one line)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else {math.inf: "inf", -math.inf: "-inf"}.get(value, repr(value))
        )
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise TypeError(f"no TOML for {value!r}")


def dump(doc: dict[str, Any]) -> str:
    """A document: its top-level tables as ``[table]``, ``children`` as ``[[...children]]``
    (as tree files are written), everything else inline."""
    lines: list[str] = []
    for key, value in doc.items():
        if not isinstance(value, dict):
            lines.insert(0, f"{toml_key(key)} = {toml_value(value)}")
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"[{toml_key(key)}]")
            _table(lines, toml_key(key), value)
    return "\n".join(lines) + "\n"


def _table(lines: list[str], header: str, table: dict[str, Any]) -> None:
    nested = {}
    for key, value in table.items():
        if key == "children" and as_list(value) and all(isinstance(v, dict) for v in value):
            nested[key] = value
        else:
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    for key, items in nested.items():
        for item in items:
            lines.append(f"[[{header}.{toml_key(key)}]]")
            _table(lines, f"{header}.{toml_key(key)}", item)


# -- values -------------------------------------------------------------------------------
TOML_SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, -(2**63), 10**30, -(10**30)]),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["", "one_for_all", "message", "permanent", "512MiB", "simple", "x/y"]),
    st.dates(),
    st.times(),
)
ANY_TOML = st.recursive(
    TOML_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
# actor references: real classes mostly, else garbage, never a random module name (its
# import could have side effects)
GOOD_ACTORS = st.sampled_from(
    ["tests.support:Worker", "tests.support:Payments", "tests.support:Counter"]
)
BAD_ACTORS = st.sampled_from(
    [
        ".:X",
        "..:X",
        "os:path",
        "nonexistent.module:Y",
        "tests.support:Nope",
        "tests.support:Ping",
        "tests.support",
        ":Worker",
        "a:b:c",
    ]
)
ACTOR_VALUES = BAD_ACTORS | ANY_TOML.filter(lambda v: not isinstance(v, str))
UNKNOWN = st.sampled_from(["replica", "colour", "Name", "child", "actors", "kind"]) | st.from_regex(
    r"[a-z_]{1,10}", fullmatch=True
)
SECONDS = st.floats(0.01, 100)

LEVELS = {
    "basic_attempts": st.integers(0, 5),
    "basic_delay_s": st.floats(0, 1),
    "enhanced_attempts": st.integers(0, 5),
    "backoff": st.sampled_from(
        [{"kind": "fixed", "delay": 0.1}, {"kind": "exponential", "initial": 0.05, "factor": 2.0}]
    ),
    "component_attempts": st.integers(0, 3),
    "quiet_period_s": SECONDS,
    "retry_timeout_s": SECONDS,
    "outage_restarts": st.integers(0, 3),
    "outages_as_faults": st.booleans(),
}
FALLBACK = st.sampled_from(
    [
        {"kind": "cachedreply", "ttl_s": 5.0},
        {"kind": "alternative", "path": "shop/other"},
        {"kind": "defaultreply", "value": "later"},
        {"kind": "reducedfunctionality"},
        {"kind": "queueforlater"},
    ]
)
BREAKER = {
    "failure_threshold": st.integers(1, 100),
    "recovery_timeout": st.floats(0, 100),
    "success_threshold": st.integers(1, 3),
    "failure_rate_threshold": st.floats(0.1, 100),
    "minimum_calls": st.integers(1, 50),
    "window": st.integers(100, 1000),
    "window_s": SECONDS,
    "slow_call_rate_threshold": st.floats(0.1, 100),
    "slow_call_duration_s": SECONDS,
    "half_open_max_calls": st.integers(3, 10),
    "max_wait_in_half_open_s": SECONDS,
    "adaptive": st.booleans(),
    "adaptive_min_threshold": st.integers(1, 5),
    "stable_period_s": SECONDS,
    "call_timeout_s": SECONDS,
    "open_backoff": st.floats(1, 4),
    "max_recovery_timeout": SECONDS,
    "fallback": st.lists(FALLBACK, max_size=2),
}
CHILD = {  # name, actor and depends_on are drawn by the tree
    "restart": st.sampled_from(["permanent", "transient", "temporary"]),
    "replicas": st.integers(1, 3),
    "levels": st.fixed_dictionaries({}, optional=LEVELS),
    "checkpoint": st.just("message"),  # (the only one retry_from_checkpoint takes)
    "fallback": ANY_TOML,
    "start_timeout_s": SECONDS,
    "shutdown_s": SECONDS,
    "durable": st.booleans(),
    "retry_from_checkpoint": st.booleans(),
    "breaker": st.fixed_dictionaries({}, optional=BREAKER),
    "options": st.dictionaries(st.text(max_size=5), ANY_TOML, max_size=3),
    "requires": st.dictionaries(st.sampled_from(["zone", "gpu"]), st.integers(0, 3) | st.text()),
    "significant": st.just(False),  # (true needs a transient child under auto_shutdown)
    "standby": st.just(False),  # (true is refused beside requires)
}
SUPERVISOR = {  # name, children and depends_on are drawn by the tree
    "strategy": st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
    "max_restarts": st.integers(0, 10),
    "within_s": SECONDS,
    "levels": st.fixed_dictionaries({}, optional=LEVELS),
    "restart": st.sampled_from(["permanent", "transient", "temporary"]),
    "start_timeout_s": SECONDS,
    "shutdown_s": SECONDS,
    "health_interval_s": st.floats(0, 10),
    "health_misses": st.integers(1, 5),
    "auto_shutdown": st.sampled_from(["never", "any_significant", "all_significant"]),
    "significant": st.just(False),
}
POOL = {  # name and template are drawn by the tree
    **{k: v for k, v in SUPERVISOR.items() if k not in ("strategy", "auto_shutdown")},
    "auto_shutdown": st.just("never"),
    "max_children": st.integers(1, 10**6),
    "idle_timeout_s": SECONDS,
    "spares": st.integers(0, 3),
}
SYSTEM = {
    "base": st.sampled_from(["simple", "multiproc"]),
    "admin_port": st.integers(1, 65535),
    "start_timeout_s": SECONDS,
    "shutdown_timeout_s": SECONDS,
    "ask_timeout_s": SECONDS,
    "root_max_restarts": st.integers(0, 3),
    "root_within_s": SECONDS,
    "state_dir": st.just("state"),
    "report_path": st.just("report.json"),
    "dead_letter_limit": st.integers(0, 10**6),
    "event_limit": st.integers(0, 10**6),
    "loopback_only": st.booleans(),
    "hang_report_s": SECONDS,
    "lend_cpu": st.booleans(),
    "store": st.just(":memory:"),
    "telemetry": st.fixed_dictionaries({}, optional={"flush_rows": st.integers(1, 1000)}),
    "correlator": st.fixed_dictionaries({}, optional={"capacity": st.integers(1, 99)}),
    "memory": st.fixed_dictionaries({}, optional={"hysteresis": st.floats(0, 10)}),
    "memory_budget": st.sampled_from(["512MiB", "2GB", 10**9]),
    "memory_thresholds": st.sampled_from([[70, 85, 95], [50.5, 60, 99]]),
    "memory_interval_s": SECONDS,
    "hold_limit": st.integers(1, 10**5),
    "chaos": st.booleans(),
    "capabilities": st.dictionaries(st.sampled_from(["zone", "gpu"]), st.integers(0, 4)),
    "cluster": st.fixed_dictionaries({}, optional={"wait_s": SECONDS}),
    "tracing": st.booleans(),
}
NO_TOML = {"node", "listen"}  # (tcp base only; None has no TOML: left out)
assert set(LEVELS) == set(LevelPolicy.__struct_fields__)
assert set(BREAKER) == set(Breaker.__struct_fields__)
# (passivate_after_s needs one replica and no breaker, which the draws above do not keep
# to; test_passivation.py loads it from a file)
assert set(CHILD) | {"name", "actor", "depends_on", "passivate_after_s"} == set(
    Child.__struct_fields__
)
assert set(SUPERVISOR) | {"name", "children", "depends_on"} == set(Supervisor.__struct_fields__)
assert set(POOL) | {"name", "children", "depends_on", "template", "strategy"} == set(
    Pool.__struct_fields__
)
assert set(SYSTEM) | NO_TOML == set(SystemOptions.__struct_fields__)

# the settings each kind of table takes (None: free-form, anything goes)
KEYS: dict[str, frozenset[str] | None] = {
    "document": frozenset({"system", "supervisor"}),
    "system": frozenset(SystemOptions.__struct_fields__),
    "supervisor": frozenset(Supervisor.__struct_fields__),
    "pool": frozenset(Pool.__struct_fields__) - {"children"},
    "child": frozenset(Child.__struct_fields__),
    "levels": frozenset(LevelPolicy.__struct_fields__),
    "breaker": frozenset(Breaker.__struct_fields__),
    "fallback": None,  # (depends on its kind: see known_keys)
    "telemetry": frozenset(TelemetrySettings.__struct_fields__),
    "correlator": frozenset(CorrelatorSettings.__struct_fields__),
    "memory": frozenset(MemorySettings.__struct_fields__),
    "cluster": frozenset(ClusterSettings.__struct_fields__),
}


FALLBACK_KINDS = {
    cls.__name__.lower(): cls
    for cls in (Alternative, CachedReply, DefaultReply, QueueForLater, ReducedFunctionality)
}


def known_keys(table: dict[str, Any], kind: str) -> frozenset[str] | None:
    """The settings a table of ``kind`` takes (None: a fallback of no known kind)."""
    if kind != "fallback":
        return KEYS[kind]
    kind_name = table.get("kind")
    cls = FALLBACK_KINDS.get(kind_name) if isinstance(kind_name, str) else None
    return None if cls is None else frozenset({"kind", *cls.__struct_fields__})


# -- documents ----------------------------------------------------------------------------
@st.composite
def settings_of(draw: Any, good: dict[str, Any]) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(sorted(good)), unique=True, max_size=4))
    return {name: draw(good[name]) for name in names}


@st.composite
def node(draw: Any, depth: int) -> dict[str, Any]:
    """A supervisor (with ``children``, even empty) or, below the top, maybe an actor."""
    children: list[dict[str, Any]] = []
    count = draw(st.integers(0, 3 if depth else 0))
    for name in draw(
        st.lists(st.sampled_from("abcdefg"), min_size=count, max_size=count, unique=True)
    ):
        if depth > 1 and draw(st.booleans()):
            child = draw(node(depth - 1))
        elif draw(st.integers(0, 4)) == 0:  # a Pool of actors, started by key
            template = {"name": "t", "actor": draw(GOOD_ACTORS), **draw(settings_of(CHILD))}
            template.pop("replicas", None)  # (idle_timeout_s takes one replica only)
            template.pop("requires", None)  # (spares are forked where the Pool runs)
            if template.get("retry_from_checkpoint"):
                template["checkpoint"] = "message"
            child = {"template": template, **draw(settings_of(POOL))}
        else:
            child = {"actor": draw(GOOD_ACTORS), **draw(settings_of(CHILD))}
            if child.get("retry_from_checkpoint"):
                child["checkpoint"] = "message"
        earlier = [c["name"] for c in children]
        if earlier:
            child["depends_on"] = draw(st.lists(st.sampled_from(earlier), unique=True))
        children.append({"name": name, **child})
    return {**draw(settings_of(SUPERVISOR)), "children": children}


@st.composite
def documents(draw: Any) -> dict[str, Any]:
    """A tree file of valid settings only."""
    doc: dict[str, Any] = {"supervisor": {"name": "shop", **draw(node(3))}}
    if draw(st.booleans()):
        doc = {"system": draw(settings_of(SYSTEM)), **doc}
    return doc


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def tables(doc: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Every table of a document whose settings are checked, with its kind."""
    found: list[tuple[dict[str, Any], str]] = [(doc, "document")]
    if isinstance(doc.get("system"), dict):
        found.append((doc["system"], "system"))
        found += [
            (doc["system"][k], k)
            for k in ("telemetry", "correlator", "memory", "cluster")
            if isinstance(doc["system"].get(k), dict)
        ]

    def walk(table: dict[str, Any], kind: str) -> None:
        found.append((table, kind))
        for key in ("levels", "breaker"):
            if isinstance(table.get(key), dict):
                found.append((table[key], key))
        breaker = table.get("breaker")
        fallbacks = breaker.get("fallback") if isinstance(breaker, dict) else None
        found.extend((f, "fallback") for f in as_list(fallbacks) if isinstance(f, dict))
        if isinstance(table.get("template"), dict):
            template = table["template"]
            walk(template, "supervisor" if "children" in template else "child")
        for child in as_list(table.get("children")):
            if isinstance(child, dict):
                kind = "pool" if "template" in child else None
                walk(child, kind or ("supervisor" if "children" in child else "child"))

    if isinstance(doc.get("supervisor"), dict):
        walk(doc["supervisor"], "supervisor")
    return found


@st.composite
def one_change(draw: Any) -> tuple[dict[str, Any], str, bool]:
    """``(document, setting, unknown)``: a valid document but for one setting, changed to a
    value of any TOML type, added (``unknown`` if no such setting exists there) or removed."""
    doc = copy.deepcopy(draw(documents()))  # (sampled tables are shared: change a copy)
    table, kind = draw(st.sampled_from(tables(doc)))
    known = known_keys(table, kind)
    names = sorted({*table, *(known or ())})
    key = draw(st.sampled_from(names) | UNKNOWN if names else UNKNOWN)
    if key in ("name", "actor") and key in table and draw(st.booleans()):
        del table[key]  # (a required one, left out)
    else:
        table[key] = draw(ACTOR_VALUES if key == "actor" else ANY_TOML)
    return doc, key, known is not None and key not in known


# -- the property -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-trees")


def load(folder: Path, data: bytes | str) -> TreeFile | TreeFileError:
    """``load_tree`` of a file holding ``data``, or the TreeFileError it raised (any other
    exception fails the test)."""
    path = folder / "tree.toml"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    try:
        return load_tree(path)
    except TreeFileError as exc:
        assert isinstance(exc, SpecError)
        assert str(exc).startswith("tree.toml: ") and exc.problem, str(exc)
        assert exc.field and exc.field in str(exc), f"the message does not name the field: {exc}"
        return exc
    except Exception as exc:  # the property: never anything but TreeFileError
        pytest.fail(f"{type(exc).__name__} instead of TreeFileError: {exc!r}"[:2000])


def named(exc: TreeFileError, setting: str) -> bool:
    """Does the message name ``setting`` (as a whole word; ``""`` if it is empty)?"""
    setting = setting or '""'
    return re.search(rf"(?<!\w){re.escape(setting)}(?!\w)", str(exc)) is not None


@FUZZ
@given(documents())
def test_a_document_of_valid_settings_loads(folder, doc):
    result = load(folder, dump(doc))
    assert isinstance(result, TreeFile), str(result)


def breaker_with(fallback: dict[str, Any]) -> dict[str, Any]:
    child = {"name": "w", "actor": "tests.support:Worker", "breaker": {"fallback": [fallback]}}
    return {"supervisor": {"name": "s", "children": [child]}}


@FUZZ
@given(one_change())
@example((breaker_with({"kind": "cachedreply", "ttl": 5.0}), "ttl", True))  # was accepted
@example(({"system": {"": False}, "supervisor": {"name": "s"}}, "", True))  # was named ""
def test_a_changed_setting_is_accepted_or_named(folder, case):
    doc, setting, unknown = case
    result = load(folder, dump(doc))
    if isinstance(result, TreeFileError):
        # renaming a child breaks a sibling's depends_on: the error is where that names it
        also = ("depends_on",) if setting == "name" else ()
        # a Pool whose instances are told idle needs an actor template of one replica
        also += ("idle_timeout_s",) if setting == "replicas" else ()
        # a Pool with spares needs a template forked where it runs (no requires)
        also += ("spares",) if setting == "requires" else ()
        assert any(named(result, s) for s in (setting, *also)), f"{setting!r}: {result}"
    else:
        assert not unknown, f"the unknown setting {setting!r} was accepted"


@st.composite
def many_changes(draw: Any) -> dict[str, Any]:
    doc = copy.deepcopy(draw(documents()))  # (sampled tables are shared: change a copy)
    for _ in range(draw(st.integers(1, 6))):
        table, _kind = draw(st.sampled_from(tables(doc)))
        key = draw(st.sampled_from(sorted(table)) | UNKNOWN) if table else draw(UNKNOWN)
        table[key] = draw(ACTOR_VALUES if key == "actor" else ANY_TOML)
    return doc


@FUZZ
@given(many_changes())
def test_a_document_of_any_values_is_accepted_or_refused_naming_the_field(folder, doc):
    load(folder, dump(doc))


# -- raw bytes and mangled text -----------------------------------------------------------
GOOD = dump(
    {
        "system": {"base": "simple", "memory_thresholds": [70, 85, 95]},
        "supervisor": {
            "name": "shop",
            "levels": {"basic_attempts": 1},
            "children": [
                {"name": "db", "actor": "tests.support:Worker"},
                {
                    "name": "pay",
                    "actor": "tests.support:Payments",
                    "depends_on": ["db"],
                    "breaker": {"failure_threshold": 2, "fallback": [{"kind": "defaultreply"}]},
                },
                {"name": "w", "children": [{"name": "x", "actor": "tests.support:Worker"}]},
                {
                    "name": "sessions",
                    "max_children": 5,
                    "template": {"name": "s", "actor": "tests.support:Worker"},
                },
            ],
        },
    }
)
DEEP_ARRAY = '[supervisor]\nname = "s"\nx = ' + "[" * 5000 + "]" * 5000 + "\n"
DEEP_TABLE = '[supervisor]\nname = "s"\nx = ' + "{a = " * 5000 + "1" + "}" * 5000 + "\n"
DEEP_NAME = "[supervisor]\nname." + ".".join(["a"] * 5000) + " = 1\n"
DEEP_ACTOR = (
    '[supervisor]\nname = "s"\n[[supervisor.children]]\nname = "w"\nactor.'
    + ".".join(["a"] * 5000)
    + " = 1\n"
)
HUGE_NUMBER = '[supervisor]\nname = "s"\nmax_restarts = ' + "9" * 5000 + "\n"
CHAIN = '[supervisor]\nname = "s"\n' + "".join(
    f'[[supervisor.children]]\nname = "c{i}"\nactor = "tests.support:Worker"\n'
    + (f'depends_on = ["c{i + 1}"]\n' if i < 1099 else "")
    for i in range(1100)
)


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200))
@example(b'[supervisor]\nname = "caf\xe9"\n')  # (not UTF-8)
@example(DEEP_ARRAY)  # was RecursionError (in tomllib)
@example(DEEP_TABLE)  # was RecursionError (in tomllib)
@example(DEEP_NAME)  # was RecursionError (showing the name)
@example(DEEP_ACTOR)  # was RecursionError (showing the actor)
@example(HUGE_NUMBER)  # was ValueError (in tomllib: more than 4300 digits)
@example(CHAIN)  # was RecursionError (a long chain of dependencies)
def test_any_bytes_are_loaded_or_refused(folder, data):
    load(folder, data)


@FUZZ
@given(st.integers(0, len(GOOD)), st.integers(0, 40), st.text(max_size=12))
def test_a_mangled_good_file_is_loaded_or_refused(folder, at, cut, inserted):
    load(folder, GOOD[:at] + inserted + GOOD[at + cut :])


def test_the_grammar_and_the_writer_agree_with_the_real_files(folder):
    assert isinstance(load(folder, GOOD), TreeFile)
    assert isinstance(load(folder, (ROOT / "examples/shop/shop.toml").read_text()), TreeFile)


# -- the command --------------------------------------------------------------------------
COMMAND_CASES = {
    "good": (GOOD, 0),
    "not-utf8": (b'[supervisor]\nname = "caf\xe9"\n', 2),
    "deep-array": (DEEP_ARRAY, 2),
    "huge-number": (HUGE_NUMBER, 2),
    "bad-actor": (GOOD.replace("tests.support:Worker", ".:X", 1), 2),
    "chain": (CHAIN, 0),
}


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``stalwart check`` on each case, run side by side."""
    folder = tmp_path_factory.mktemp("fuzz-check")
    runs = {}
    for name, (data, _code) in COMMAND_CASES.items():
        path = folder / f"{name}.toml"
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        runs[name] = subprocess.Popen(
            [sys.executable, "-m", "stalwart", "check", str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    return {name: (run, *run.communicate(timeout=60)) for name, run in runs.items()}


@pytest.mark.parametrize("case", sorted(COMMAND_CASES))
def test_the_check_command_answers_with_0_or_2_and_no_traceback(checked, case):
    run, out, err = checked[case]
    assert "Traceback" not in err, err[-2000:]
    assert run.returncode == COMMAND_CASES[case][1], (run.returncode, out[-500:], err[-500:])
    if run.returncode == 2:
        assert err.startswith("stalwart: ") and f"{case}.toml: " in err, err[-500:]
