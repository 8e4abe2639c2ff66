"""What a supervisor instance remembers of the child requests it took
(``stalwart.supervisors._taken``), as a hypothesis state machine against a plain model."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from stalwart.supervisors._taken import KEPT, MISSING, PENDING, TakenRequests
from tests.fuzz import EXAMPLES

IDS = st.sampled_from([f"r{i}" for i in range(6)])


class TakenMachine(RuleBasedStateMachine):
    """Requests taken, handed, answered in any order, with a limit of a few answers (the
    machine forces it below ``KEPT``): one under way is never forgotten, a handed one is
    reported once when answered, and only the answers of changes are kept, newest last."""

    def __init__(self) -> None:
        super().__init__()
        self.taken = TakenRequests()
        self.taken.limit = 3
        self.pending: dict[str, tuple[bool, bool]] = {}
        self.answers: dict[str, object] = {}  # in the order answered

    @rule(request_id=IDS, handed=st.booleans(), keep=st.booleans())
    def take(self, request_id: str, handed: bool, keep: bool) -> None:
        if self.taken.answer_of(request_id) is not MISSING:
            return  # (a copy of one under way or answered is never taken again)
        self.taken.take(request_id, handed, keep)
        self.pending[request_id] = (handed, keep)

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def hand(self, data: st.DataObject) -> None:
        request_id = data.draw(st.sampled_from(sorted(self.pending)))
        self.taken.hand(request_id)
        self.pending[request_id] = (True, self.pending[request_id][1])

    @rule(request_id=IDS, value=st.integers())
    def answer(self, request_id: str, value: int) -> None:
        reported = self.taken.answered(request_id, value)
        handed, keep = self.pending.pop(request_id, (False, False))
        assert reported == handed
        if keep:
            self.answers.pop(request_id, None)
            self.answers[request_id] = value
            while len(self.answers) > 3:
                del self.answers[next(iter(self.answers))]

    @invariant()
    def agrees_with_the_model(self) -> None:
        for i in range(6):
            request_id = f"r{i}"
            got = self.taken.answer_of(request_id)
            if request_id in self.pending:
                assert got is PENDING
            elif request_id in self.answers:
                assert got == self.answers[request_id]
            else:
                assert got is MISSING


TestTaken = TakenMachine.TestCase
TestTaken.settings = settings(max_examples=EXAMPLES, stateful_step_count=40, deadline=None)


def test_answers_are_kept_at_least_the_hold_limit_and_a_request_under_way_is_never_dropped():
    taken = TakenRequests(limit=10)
    assert taken.limit == KEPT  # (a small hold limit still keeps KEPT answers)
    taken.take("long", handed=True)
    for i in range(3 * KEPT):
        taken.take(f"r{i}")
        taken.answered(f"r{i}", i)
    assert taken.answer_of("long") is PENDING
    assert taken.answer_of("r0") is MISSING and taken.answer_of(f"r{3 * KEPT - 1}") == 3 * KEPT - 1
    assert taken.answered("long", "done") is True
    assert taken.answer_of("long") == "done"
