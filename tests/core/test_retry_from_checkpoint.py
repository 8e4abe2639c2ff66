"""``retry_from_checkpoint``: a level 1-2 retry starts from the last checkpoint."""

import pytest

from stalwart import Child, SpecError, Supervisor
from tests.support import AppendThenFail, GetItems, Notebook, wait_for


@pytest.mark.parametrize("fresh", [True, False], ids=["from-checkpoint", "default"])
def test_a_retry_never_builds_on_what_the_failed_attempt_half_changed(make_system, base, fresh):
    tree = Supervisor("s", children=[Child("n", Notebook, retry_from_checkpoint=fresh)])
    system = make_system(tree, base=base)
    assert system.ask("s/n", AppendThenFail(1, fail_times=0)) == [1]
    # two failed attempts (levels 1 and 2) each appended 2 before failing; the third works
    answer = system.ask("s/n", AppendThenFail(2, fail_times=2), timeout=10)
    levels = [e.level for e in system.events() if e.kind == "failure" and e.path == "s/n"]
    assert levels and max(levels) <= 2  # retried in place, never restarted
    assert system.status()["s/n"].restarts == 0
    if fresh:
        assert answer == [1, 2] == system.ask("s/n", GetItems())
    else:  # the default: retries run on the state the failures left behind
        assert answer == [1, 2, 2, 2] == system.ask("s/n", GetItems())


@pytest.mark.parametrize("fresh", [True, False], ids=["from-checkpoint", "default"])
def test_a_message_between_a_failure_and_its_retry_sees_only_the_checkpointed_state(
    make_system, fresh
):
    # in one process the order is certain: the failing message, then the question sent right
    # behind it, then the retry (which the supervisor sends only once it hears of the failure)
    tree = Supervisor("s", children=[Child("n", Notebook, retry_from_checkpoint=fresh)])
    system = make_system(tree, base="simple")
    assert system.ask("s/n", AppendThenFail(1, fail_times=0)) == [1]
    system.tell("s/n", AppendThenFail(2, fail_times=1))
    between = system.ask("s/n", GetItems())
    after = wait_for(
        lambda: (items := system.ask("s/n", GetItems())) != between and items, timeout=10
    )
    if fresh:  # nothing of the failed attempt was seen, or checkpointed, before the retry
        assert (between, after) == ([1], [1, 2])
    else:  # the failed attempt's change was seen and checkpointed; the retry built on it
        assert (between, after) == ([1, 2], [1, 2, 2])


def test_retry_from_checkpoint_needs_a_checkpoint_after_each_message():
    with pytest.raises(SpecError) as err:
        Child("n", Notebook, checkpoint=5.0, retry_from_checkpoint=True)
    assert err.value.field == "retry_from_checkpoint" and 'checkpoint="message"' in str(err.value)
