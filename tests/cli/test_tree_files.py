"""Tree files: the shop in TOML is the shop in Python; every mistake is named precisely."""

import os

import pytest

from examples.shop.tree import shop_tree
from stalwart.supervisors._tree_file import MAX_FILE_BYTES, TreeFileError, load_tree

GOOD = """
[system]
base = "simple"

[supervisor]
name = "shop"

[[supervisor.children]]
name = "db"
actor = "tests.support:Worker"

[[supervisor.children]]
name = "workers"
depends_on = ["db"]
  [[supervisor.children.children]]
  name = "w"
  actor = "tests.support:Worker"
  replicas = 2
  [[supervisor.children.children]]
  name = "pay"
  actor = "tests.support:Payments"
  breaker = { failure_threshold = 2, fallback = [{ kind = "defaultreply", value = "later" }] }
"""

W = "supervisor.children[1].children[0]"  # where shop/workers/w is in the file
P = "supervisor.children[1].children[1]"  # and shop/workers/pay

MISTAKES = [
    (
        ('restart = "always"', W),
        f"shop/workers/w ({W}): restart: expected one of permanent, temporary, transient,"
        " got 'always'",
    ),
    (("replica = 2", W), f"shop/workers/w ({W}): replica: unknown child setting"),
    (('checkpoint = "sometimes"', W), f"shop/workers/w ({W}): checkpoint:"),
    (("levels = { basic_attempts = -1 }", W), f"shop/workers/w ({W}): levels.basic_attempts:"),
    (("levels = { basic_tries = 1 }", W), f"shop/workers/w ({W}): levels.basic_tries: unknown"),
    (
        ("levels = { basic_attemps = 1 }", W),
        f"shop/workers/w ({W}): levels.basic_attemps: unknown setting (known: basic_attempts,"
        " basic_delay_s, enhanced_attempts, backoff, component_attempts, quiet_period_s,"
        " retry_timeout_s, outage_restarts, outages_as_faults)",
    ),
    (
        ('levels = { backoff = { kind = "exponental" } }', "supervisor"),
        "shop (supervisor): levels.backoff.kind: expected one of capped, chain, exponential,"
        " fibonacci, fixed, jitter, linear, random, sum, got 'exponental'",
    ),
    (
        ('levels = { backoff = { kind = "exponential", factr = 3 } }', W),
        f"shop/workers/w ({W}): levels.backoff.factr: unknown setting (known: initial, factor)",
    ),
    (
        ("breaker = { failure_treshold = 2 }", W),
        f"shop/workers/w ({W}): breaker.failure_treshold: unknown setting (known:"
        " failure_threshold, recovery_timeout,",
    ),
    (("restart = 1", W), f"shop/workers/w ({W}): restart: expected one of permanent,"),
    (
        ('depends_on = ["cache"]', W),
        "shop/workers (supervisor.children[1]): depends_on: unknown sibling 'cache'",
    ),
    (
        ('strategy = "all_for_one"', "supervisor.children[1]"),
        "shop/workers (supervisor.children[1]): strategy: expected one of one_for_all,"
        " one_for_one, rest_for_one, got 'all_for_one'",
    ),
    (("max_restarts = -1", "supervisor"), "shop (supervisor): max_restarts: must be"),
    (
        ('within_s = "a minute"', "supervisor"),
        "shop (supervisor): within_s: Expected `float`, got `str`",
    ),
]


def with_line(text, line, where):
    """``text`` with ``line`` added to the table at ``where``."""
    anchors = {
        "supervisor": 'name = "shop"\n',
        "supervisor.children[1]": 'name = "workers"\n',
        W: 'name = "w"\n',
        P: 'name = "pay"\n',
    }
    anchor = anchors[where]
    return text.replace(anchor, anchor + line + "\n", 1)


def write(tmp_path, text, name="shop.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_good_file_gives_the_tree_and_its_options(tmp_path):
    tree_file = load_tree(write(tmp_path, GOOD))
    assert tree_file.options == {"base": "simple"}
    workers = tree_file.tree.children[1]
    assert [c.name for c in workers.children] == ["w", "pay"]
    assert workers.children[1].breaker.fallback[0].value == "later"


def test_the_shop_in_toml_is_the_shop_in_python():
    assert load_tree("examples/shop/shop.toml").tree == shop_tree("shop-backend.json")


@pytest.mark.parametrize(("change", "message"), MISTAKES, ids=[m[0][0] for m in MISTAKES])
def test_a_mistake_in_the_tree_is_named(tmp_path, change, message):
    path = write(tmp_path, with_line(GOOD, *change))
    with pytest.raises(TreeFileError) as info:
        load_tree(path)
    assert str(info.value).startswith(f"shop.toml: {message}"), str(info.value)


WHOLE_FILE_MISTAKES = [
    (GOOD.replace("replicas = 2", "replicas = 0"), f"shop/workers/w ({W}): replicas: must be"),
    (
        GOOD.replace("replicas = 2", 'replicas = "two"'),
        f"shop/workers/w ({W}): replicas: Expected `int`, got `str`",
    ),
    (
        GOOD.replace("failure_threshold = 2", "failure_threshold = 0"),
        f"shop/workers/pay ({P}): breaker.failure_threshold:",
    ),
    (
        GOOD.replace("failure_threshold = 2", "failure_threshold = 2, window_s = 0"),
        f"shop/workers/pay ({P}): breaker.window_s: must be > 0, got 0",
    ),
    (
        GOOD.replace(
            "failure_threshold = 2", "failure_threshold = 2, slow_call_rate_threshold = 0"
        ),
        f"shop/workers/pay ({P}): breaker.slow_call_rate_threshold: must be a percentage",
    ),
    (
        GOOD.replace('kind = "defaultreply"', 'kind = "maybe"'),
        f"shop/workers/pay ({P}): breaker.fallback[0].kind: expected one of alternative,"
        " cachedreply, defaultreply, queueforlater, reducedfunctionality, got 'maybe'",
    ),
    (
        GOOD.replace('value = "later"', 'valu = "later"'),
        f"shop/workers/pay ({P}): breaker.fallback[0].valu: unknown setting (known: value)",
    ),
    (
        GOOD.replace('actor = "tests.support:Worker"\n', "", 1),
        "shop/db (supervisor.children[0]): actor: missing",
    ),
    (
        GOOD.replace("tests.support:Worker", "tests.nowhere:Worker", 1),
        "shop/db (supervisor.children[0]): actor: cannot import 'tests.nowhere'",
    ),
    (
        GOOD.replace("tests.support:Worker", "tests.support:Nobody", 1),
        "shop/db (supervisor.children[0]): actor: 'tests.support' has no 'Nobody'",
    ),
    (
        GOOD.replace("tests.support:Worker", "tests.support.Worker", 1),
        'shop/db (supervisor.children[0]): actor: expected "module:Class"',
    ),
    (
        GOOD.replace('name = "db"', 'name = "d/b"'),
        "shop/d/b (supervisor.children[0]): name: must be letters",
    ),
    (
        GOOD.replace('name = "w"', 'name = "db"').replace('name = "workers"', 'name = "db"'),
        "shop (supervisor): name: duplicate sibling name 'db'",
    ),
    (
        GOOD.replace('[system]\nbase = "simple"', '[system]\nbase = "cloud"'),
        "system: base: expected one of simple, multiproc, tcp, got 'cloud'",
    ),
    (
        GOOD.replace('[system]\nbase = "simple"', "[system]\nmemory_thresholds = [85, 70, 95]"),
        "system: memory_thresholds: must increase",
    ),
    (
        GOOD.replace('[system]\nbase = "simple"', '[system]\nmemory_budget = "lots"'),
        "system: memory_budget: expected a size",
    ),
    (
        GOOD.replace('[system]\nbase = "simple"', '[system]\ncolour = "red"'),
        "system: colour: unknown option",
    ),
    (
        GOOD.replace("[supervisor]", "[supervisors]").replace("[[supervisor.", "[[supervisors."),
        "supervisors: supervisors: unknown table",
    ),
    ("[system]\nbase = 'simple'\n", "supervisor: supervisor: missing"),
    (GOOD.replace('name = "shop"', 'name = "shop'), "syntax:"),
]


@pytest.mark.parametrize(
    ("text", "message"), WHOLE_FILE_MISTAKES, ids=range(len(WHOLE_FILE_MISTAKES))
)
def test_a_mistake_anywhere_in_the_file_is_named(tmp_path, text, message):
    with pytest.raises(TreeFileError) as info:
        load_tree(write(tmp_path, text))
    assert str(info.value).startswith(f"shop.toml: {message}"), str(info.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(TreeFileError, match=r"nothing\.toml: file: does not exist"):
        load_tree(tmp_path / "nothing.toml")


def test_a_file_that_cannot_be_read_as_toml_text_is_named(tmp_path):
    with pytest.raises(TreeFileError, match=r"file: is a folder, not a TOML file"):
        load_tree(tmp_path)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[supervisor]\nname = "caf\xe9"\n')
    with pytest.raises(TreeFileError, match=r"latin\.toml: syntax: not UTF-8 text \(byte 24"):
        load_tree(latin)
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # (opened for reading, it would wait for a writer forever)
    with pytest.raises(TreeFileError, match=r"fifo\.toml: file: is not a regular file"):
        load_tree(fifo)
    with pytest.raises(TreeFileError, match=r"zero: file: is not a regular file"):
        load_tree("/dev/zero")  # (it would never end)
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(TreeFileError, match=rf"huge\.toml: file: is {MAX_FILE_BYTES + 1} bytes"):
        load_tree(huge)


def test_an_actor_that_cannot_be_imported_in_any_way_names_the_field(tmp_path):
    for actor, reason in ((".:X", "relative import"), ("no_such_module_here:X", "No module")):
        file = tmp_path / "t.toml"
        file.write_text(
            f'[supervisor]\nname = "s"\n[[supervisor.children]]\nname = "w"\nactor = "{actor}"\n'
        )
        with pytest.raises(
            TreeFileError,
            match=rf"s/w \(supervisor.children\[0\]\): actor: cannot import .*{reason}",
        ):
            load_tree(file)


def test_supervisors_nested_too_deep_are_refused_with_a_clear_error(tmp_path):
    lines, table = ["[supervisor]", 'name = "s"'], "supervisor"
    for i in range(200):
        table += ".children"
        lines += [f"[[{table}]]", f'name = "n{i}"']
    lines += [f"[[{table}.children]]", 'name = "w"', 'actor = "tests.support:Worker"']
    file = tmp_path / "deep.toml"
    file.write_text("\n".join(lines) + "\n")
    with pytest.raises(TreeFileError, match=r"children: supervisors nested more than 32 deep"):
        load_tree(file)
