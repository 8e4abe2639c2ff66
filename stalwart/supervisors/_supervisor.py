"""The supervisor actor: an interpreter of the supervision kernel.

It turns what it hears into kernel events (:mod:`._kernel.events`), asks
:func:`._kernel.decide` what to do, and carries out the commands in order. What
the kernel does not decide is kept here: the instances' addresses and processes,
their checkpoints, and the replies that let a replayed request be answered once.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..actors import errors
from ..actors._children import (
    CHILD_REQUESTS,
    ActivityReport,
    DeleteChild,
    RestartChild,
    StartChild,
    TerminateChild,
)
from ..actors._managed import hand_on_misdirected
from ..actors._placement import fenced, node_name, placeable
from ..actors._runtime import (
    ACTOR_PROCESS_PREFIX,
    ActorExitRequest,
    ChildActorExited,
    PoisonMessage,
    RuntimeActor,
    ThespianWatch,
    WakeupMessage,
    WatchMessage,
    child_process_gone,
    die_with_parent,
    name_process,
    tune_own_process,
)
from ..actors._state_file import StateFile, StateTable, latest, open_state, usable
from ..actors._timers import TICK, Timers
from ..actors.messages import (
    Batch,
    Checkpoint,
    ErrorReply,
    FailureReport,
    Forwarded,
    Handover,
    HealthReport,
    HooksDone,
    Init,
    LostRequest,
    Placed,
    Proceed,
    Release,
    ReplyTo,
    Request,
    Retire,
    Retired,
    RetryOutcome,
    Standby,
    StandbyReady,
    Started,
    StoppedNormally,
)
from ..actors.messages import HandoverDone as HandoverDoneMessage
from . import _kernel as kernel
from ._crash_notices import CrashNotices
from ._effects import EFFECTS, answer, reply_of
from ._exit_watch import ExitWatch
from ._kernel import events as ev
from ._kernel.children import records_of
from ._kernel.state import STARTING
from ._passivation import SUPERVISOR_HANDLERS
from ._services import SYSTEM_NAME
from ._standby import NEW, Spares
from ._stored import StoredStates as Stored
from ._taken import MISSING, PENDING, TakenRequests
from ._usage import ProcessUsage
from .messages import (
    BreakerNote,
    ChildrenNow,
    DependencyDown,
    DurableCheckpoint,
    Escalate,
    EventNote,
    Floors,
    FloorsQuery,
    IncidentHold,
    InOrder,
    LearnedState,
    NodeDown,
    Nodes,
    PerformRecovery,
    ResetLevels,
    StoredDropped,
    StoredGone,
    StoredStates,
    SupervisorInit,
    Unavailable,
    Watchers,
)

CHANGES = (StartChild, TerminateChild, RestartChild, DeleteChild)  # (not the questions)
log = logging.getLogger("stalwart.supervisor")
_REPLIES_KEPT = 64
_NOTHING: Mapping[str, Any] = MappingProxyType({})
LOST_LOOK_S = 0.25  # exit notices look for children that exited unnoticed at most this often


class Keeper:
    """What the supervisor keeps for one child across its instances: state and replies.

    ``source`` is the incarnation whose checkpoint it holds (-1: an earlier run's or
    none), ``final`` whether that is what the instance reported as it stopped: an
    instance's own checkpoint file, if newer, wins over this copy.
    """

    __slots__ = (
        "checkpoint",
        "final",
        "has_checkpoint",
        "marks",
        "replies",
        "source",
        "sub_checkpoints",
    )

    def __init__(self) -> None:
        self.checkpoint: Any = None
        self.has_checkpoint = False
        self.source = -1
        self.final = False
        # (read-only and empty until there is something to keep: a supervisor of thousands
        # of children keeps little for each one that just runs)
        self.sub_checkpoints: Mapping[str, Any] = _NOTHING  # a child supervisor's table
        self.replies: Mapping[str, Any] = _NOTHING  # an OrderedDict once one is kept
        self.marks: tuple[tuple[str, int], ...] = ()  # how far its last instance handled

    def keep(self, state: Any, source: int, final: bool) -> None:
        self.checkpoint, self.has_checkpoint = state, True
        self.source, self.final = source, final

    def remember_reply(self, request_id: str, reply: Any) -> None:
        replies = self.replies
        if not isinstance(replies, OrderedDict):
            replies = self.replies = OrderedDict()
        replies[request_id] = reply
        while len(replies) > _REPLIES_KEPT:
            replies.popitem(last=False)

    def restore(self, entry: Any) -> None:
        """Take a checkpoint-table entry saved by an earlier instance:
        ``(state, replies)`` or ``(state, replies, source, final)``."""
        state, replies, *rest = entry
        source, final = rest if rest else (-1, False)
        self.keep(state, source, final)
        for request_id, reply in replies:
            self.remember_reply(request_id, reply)

    def table_entry(self) -> tuple[Any, tuple[tuple[str, Any], ...], int, bool]:
        return (self.checkpoint, tuple(self.replies.items()), self.source, self.final)


class SupervisorActor(Timers, RuntimeActor):  # type: ignore[misc]
    """Runs one supervisor of the tree (internal; declare trees with ``Supervisor``)."""

    def __init__(self) -> None:
        die_with_parent()  # a process of its own does not outlive its parent's
        super().__init__()
        self.path = ""
        self.parent: Any = None
        self.root: Any = None
        self.incarnation = 0
        self.clock_id = 0
        self.settings: dict[str, Any] = {}
        self.state: kernel.SupervisorState | None = None
        self.keepers: dict[str, Keeper] = {}
        self.addresses: dict[tuple[str, int], Any] = {}  # (child, incarnation) -> address
        self.by_address: dict[str, tuple[str, int]] = {}  # str(address) -> (child, incarnation)
        self.looked_for_lost = 0.0  # when find_lost_exits last looked
        self.pids: dict[tuple[str, int], tuple[int, str]] = {}  # -> (pid, node)
        self.node = node_name()  # the node this process runs on ("": one host)
        self.spawned: set[str] = set()
        self.filed: dict[str, StateFile | StateTable] = {}  # children on other nodes: their files
        self.usage_at: dict[int, tuple[int, tuple[int, float]]] = {}
        self.mail_held: list[Any] | None = None  # for the root, while answering a crash
        self.root_sent = 0  # envelopes numbered for the root (multi-process bases)
        self.instance = int.from_bytes(os.urandom(8), "big") >> 1  # (tells instances apart)
        self.answers_held: list[tuple[Any, Any]] = []  # the kernel's answers, sent after it
        self.begun = False  # the kernel has begun (it knows the incarnations below)
        self.later: list[ev.KernelEvent] = []  # events the effects found, decided next
        self.spares = Spares()  # warm standbys of the children that keep one
        self.crash_notices = CrashNotices()  # who to tell at once when one of those crashes
        self.exit_watch = ExitWatch()  # pidfds of those children's local instances
        self.spared: dict[str, int] = {}  # child -> its instance made from a spare (until up)
        self.early: list[tuple[Request, Any, bool]] = []  # requests for a path, before its own
        self.taken = TakenRequests()  # the child requests it took, by id, with their answers
        self.handovers: list[Handover] = []  # ones its predecessor had taken, until it begins
        # the durable checkpoints an earlier run kept below it, for the children it adds at
        # run time (None: asked of the root, not here yet; requests to add one wait)
        self.stored: Stored | None = Stored()
        self.unstored: list[tuple[Any, Any]] = []  # child requests waiting for them
        self.dropping: tuple[str, Any] | None = None  # (a deleted path, its asker) until the
        # root has dropped what an earlier run stored for it (child requests wait meanwhile)
        self._usage = ProcessUsage()
        self._sw_init_timers()

    # -- the loop ------------------------------------------------------------------------------
    def receiveMessage(self, msg: Any, sender: Any) -> ThespianWatch | None:
        self.handle(msg, sender)
        finished = self.state is not None and self.state.finished
        return self.exit_watch.watching(finished)  # (what its wait watches until the next)

    def handle(self, msg: Any, sender: Any) -> None:
        handler = _HANDLERS.get(type(msg))
        if handler is None:
            return
        if self.state is not None and self.state.finished and handler not in _WHEN_FINISHED:
            return  # (what it waits for to leave is all it still handles)
        try:
            handler(self, msg, sender)
        except Exception as exc:
            log.exception("%s: supervisor failed handling %s", self.path, type(msg).__name__)
            reason = f"{self.path}: internal error: {exc!r}"
            if self.state is None:
                self.send(self.parent, Escalate(self.path, 4, reason))
            else:  # it cannot be trusted to decide any more: it escalates
                try:
                    self.decide(ev.InternalError(reason, now=self.now))
                except Exception:
                    log.exception("%s: supervisor failed escalating", self.path)
                    self.send(self.parent, Escalate(self.path, 4, reason))

    def decide(self, event: ev.KernelEvent) -> None:
        """Carry out the kernel's commands; what they tell the root goes in one envelope,
        after them (after a restart's fork, say), routes going down first: callers hand
        over what a crash lost, then the events follow.

        An effect that finds something the kernel must hear of (a child no node can host)
        adds an event to :attr:`later`: it is decided once these commands have been carried
        out, never in the middle of them.
        """
        assert self.state is not None
        self.mail_held = []
        try:
            events = [event]
            while events:
                _, commands = kernel.decide(self.state, events.pop(0))
                for command in commands:
                    EFFECTS[type(command)](self, command)
                events += self.later
                self.later.clear()
        finally:
            held, self.mail_held = self.mail_held, None
            answers, self.answers_held = self.answers_held, []
            self.later.clear()
            if held is not None:
                answers = self.replies_to_root(answers, held)
                self.send_held(held)
            for target, value in answers:  # (the root has heard of what they answer first)
                answer(self, target, value)

    def send_held(self, held: list[Any]) -> None:
        """Send the root what ``decide`` held for it, in one envelope (unavailable paths
        first: callers hand over what a crash lost, then the events follow)."""
        if held:
            held.sort(key=lambda m: not isinstance(m, Unavailable))
            self.to_root(held)

    def to_root(self, items: list[Any]) -> None:
        """Send the root ``items`` in one envelope. In a process of its own the envelope is
        numbered: the root handles this instance's mail in the order it was sent."""
        if self.clock_id:  # in one process, mail arrives in the order it was sent
            super().send(self.root, items[0] if len(items) == 1 else Batch(tuple(items)))
        else:
            self.root_sent += 1
            envelope = InOrder(
                self.path, self.incarnation, self.instance, self.root_sent, tuple(items)
            )
            super().send(self.root, envelope)

    def send_held_now(self) -> None:
        """In the middle of ``decide``: what is held for the root so far leaves now (a new
        instance is made from a spare: no fork comes first, and callers can hand over what a
        crash lost while the spare takes its ``Init``)."""
        if self.mail_held:
            held, self.mail_held = self.mail_held, []
            self.send_held(held)

    def replies_to_root(
        self, answers: list[tuple[Any, Any]], held: list[Any]
    ) -> list[tuple[Any, Any]]:
        """Replies for the root go at the end of its envelope ``held`` (one transport
        message, not two, each waiting for the other's acknowledgement); the other
        answers are returned."""
        rest = []
        for target, value in answers:
            reply = reply_of(target, value)
            if reply is not None and reply[0] == self.root:
                if isinstance(target, Request):
                    self.answered(target.id, value)
                held.append(reply[1])
            else:
                rest.append((target, value))
        return rest

    def send(self, target: Any, msg: Any) -> None:
        """Send now; mail for the root waits until the decision has been carried out."""
        if (self.clock_id and self.mail_held is None) or target != self.root:
            super().send(target, msg)  # (in one process, no envelope to number)
        elif self.mail_held is not None:
            self.mail_held.append(msg)
        else:
            self.to_root([msg])

    @property
    def now(self) -> float:
        return time.monotonic()

    def child_name(self, path: str) -> str | None:
        assert self.state is not None
        c = self.state.by_path.get(path)
        return c.name if c is not None else None

    def keeper(self, name: str) -> Keeper:
        """What is kept for child ``name`` (a child added at run time gets its own)."""
        keeper = self.keepers.get(name)
        if keeper is None:
            keeper = self.keepers[name] = Keeper()
        return keeper

    def current(self, name: str) -> Any:
        assert self.state is not None
        c = self.state.children[name]
        return self.addresses.get((name, c.incarnation))

    # -- set-up --------------------------------------------------------------------------------
    def on_init(self, msg: SupervisorInit, sender: Any) -> None:
        self.path, self.parent, self.root = msg.path, msg.parent, msg.root
        self.incarnation, self.clock_id = msg.incarnation, msg.clock_id
        self.settings = dict(msg.settings)
        self._sw_use_clock(msg.clock_id)
        if not msg.clock_id:  # a process of its own (the multi-process bases)
            if fenced():  # cut off from the leader, which places it elsewhere: never both
                os._exit(0)
            name_process(ACTOR_PROCESS_PREFIX + msg.path.rsplit("/", 1)[-1])
            tune_own_process()
        state = kernel.SupervisorState(
            msg.path,
            msg.spec,
            can_kill=not msg.clock_id,
            hold_limit=int(self.settings.get("hold_limit", 10_000)),
        )
        learned: LearnedState | None = msg.learned
        if learned is not None:
            state.selector.load_state(learned.selector)
            state.learn_timeouts(learned.timeout_rule, learned.timeouts, learned.longest)
        self.state = state
        self.taken = TakenRequests(state.hold_limit)
        for c in state.order:
            keeper = self.keepers[c.name] = Keeper()
            if c.kind == "supervisor":
                prefix = c.path + "/"
                keeper.sub_checkpoints = {
                    k: v for k, v in msg.checkpoints.items() if k.startswith(prefix)
                }
            elif c.path in msg.checkpoints:
                keeper.restore(msg.checkpoints[c.path])
            elif getattr(c.spec, "requires", None):
                self.restore_filed(c.path, keeper)
        if msg.floors is None:  # restarted by its parent: the root knows the incarnations
            self.send(self.root, FloorsQuery(self.path))
        else:
            self.begin(msg.floors)
        early, self.early = self.early, []
        for request, requester, forwarded in early:
            self.on_request(request, requester, forwarded)

    def begin(self, floors: dict[str, int]) -> None:
        """Start the declared children; children an earlier instance added are gone."""
        self.begun = True
        wants = bool(self.settings.get("stored"))
        if wants:
            self.stored = None
        self.send(self.root, ChildrenNow(self.path, self.incarnation, wants))
        self.decide(ev.Begin(floors=dict(floors), now=self.now))
        self.spares.make_soon(self, NEW)  # a Pool's spares for new instances, if it keeps any
        handovers, self.handovers = self.handovers, []
        for handover in handovers:  # (before whatever comes after its start)
            self.on_handover(handover, None)

    # -- the checkpoints of children on other nodes, kept in files on this host ----------------
    def restore_filed(self, path: str, keeper: Keeper) -> None:
        """Take the newest checkpoint this supervisor's earlier instance filed for ``path``
        (it was SIGKILLed: nothing else kept what that child acknowledged)."""
        directory = str(self.settings.get("state_dir", ""))
        if not usable(directory):
            return
        try:
            found = latest(directory, path, 1 << 62)
        except Exception:
            log.exception("%s: the checkpoint filed for %s is unreadable", self.path, path)
            return
        if found is not None:
            source, state, replies, marks = found
            keeper.restore((state, replies, source, False))
            keeper.marks = marks

    def file_checkpoint(self, c: Any, incarnation: int, state: Any, marks: Any) -> None:
        """Keep the checkpoint of a child on another node in a file on this host before its
        answers leave: a SIGKILL of this supervisor must not take that state with it (a
        child on this host files its own)."""
        directory = str(self.settings.get("state_dir", ""))
        if not getattr(c.spec, "requires", None) or not usable(directory):
            return
        if self.on_this_host(c.name, incarnation):
            return
        filed = self.filed.get(c.name)
        if filed is None or filed.incarnation != incarnation:
            if filed is not None:
                filed.close()
            filed = self.filed[c.name] = open_state(directory, c.path, incarnation)
        keeper = self.keeper(c.name)
        try:
            filed.write(state, tuple(keeper.replies.items()), marks)
        except Exception:
            log.exception("%s: checkpoint of %s not filed; kept in memory", self.path, c.path)

    def on_floors(self, msg: Floors, sender: Any) -> None:
        if self.state is not None and msg.path == self.path and not self.begun:
            self.begin(msg.floors)

    # -- requests about the children (start_child...) -------------------------------------
    def on_batch(self, msg: Batch, sender: Any) -> None:
        """Several envelopes from one sender (its turn's): each as if it came alone."""
        for item in msg.items:
            self.receiveMessage(item, sender)

    def on_request(
        self, msg: Request, sender: Any, forwarded: bool = False, handed: bool = False
    ) -> None:
        """A child request (``handed``: one its crashed predecessor had taken, handed over
        by the supervisor above, which hears when it is answered)."""
        if msg.to and msg.to != self.path:
            if not self.path:  # (before its SupervisorInit: looked at once it knows its path)
                self.early.append((msg, sender, forwarded))
                return
            hand_on_misdirected(self, msg, sender, forwarded, log)  # (another path's)
            return
        kept = self.taken.answer_of(msg.id)
        if kept is PENDING:  # a copy of one under way: its answer comes
            if handed:
                self.taken.hand(msg.id)
            return
        if kept is not MISSING:  # a copy of one answered: answered again, never done twice
            if handed:
                self.handover_done(msg.id)
            answer(self, msg, kept)
            return
        request = msg.message
        error: errors.StalwartError
        if type(request) not in CHILD_REQUESTS:
            name = type(request).__name__
            error = errors.UnknownMessage(
                f"{self.path} is a supervisor: it answers StartChild, TerminateChild,"
                f" RestartChild, DeleteChild, WhichChildren and CountChildren, not {name}",
                self.path,
            )
        elif self.state is None or not self.begun:
            text = f"{self.path} is starting: ask again once it runs"
            error = errors.Unavailable(text, self.path)
        elif self.own_service_change(request):
            error = errors.BadMessage(
                f"{self.path} is Stalwart's own supervisor: its children are not started or"
                " stopped by hand (start()'s options leave them out: memory=None, store=None,"
                " correlator=None)",
                self.path,
            )
        else:
            self.taken.take(msg.id, handed, type(request) in CHANGES)
            self.child_request(request, msg)
            return
        if handed:
            self.handover_done(msg.id)
        answer(self, msg, ErrorReply.of(error))

    def on_handover(self, msg: Handover, sender: Any) -> None:
        """A child request its crashed predecessor had taken, from the supervisor above:
        taken once this instance has begun, unless its caller has stopped waiting."""
        if self.state is None or not self.begun:
            self.handovers.append(msg)
            return
        request = msg.request
        if request.deadline and request.deadline <= time.time():
            self.handover_done(request.id)
            return
        self.on_request(request, request.reply_to, handed=True)

    def answered(self, request_id: str, value: Any) -> None:
        """A request was answered ``value`` (see :func:`answer`): kept for its copies; the
        supervisor above hears of it if it had handed it over."""
        if self.taken.answered(request_id, value):
            self.handover_done(request_id)

    def handover_done(self, request_id: str) -> None:
        """The supervisor above hears that a request it handed over has been answered."""
        self.send(self.parent, HandoverDoneMessage(self.path, self.incarnation, request_id))

    def on_stored_states(self, msg: StoredStates, sender: Any) -> None:
        """What an earlier run stored below it: the child requests that waited go ahead."""
        if msg.path != self.path or msg.incarnation != self.incarnation or self.stored is not None:
            return
        self.stored = Stored(msg.states)
        self.requests_waited()

    def requests_waited(self) -> None:
        """The child requests that waited for the root's answer go ahead, in order."""
        while self.unstored and not self.dropping:  # (one at a time: if one fails, as if
            # it came alone, the supervisor escalates and those left are answered as it stops)
            request, asked = self.unstored.pop(0)
            self.child_requested(request, asked)

    def child_request(self, request: Any, asked: Any) -> None:
        """A child request, now or (while the root's answer about what is stored is to come)
        after it, in order."""
        if self.stored is None or self.dropping:
            self.unstored.append((request, asked))
        else:
            self.child_requested(request, asked)

    def child_requested(self, request: Any, asked: Any) -> None:
        """A child request, once the root's StoredStates has come."""
        if type(request) is DeleteChild and self.deletes_stored(request.name, asked):
            return
        self.decide(ev.ChildRequested(request, asked, now=self.now))

    def deletes_stored(self, name: Any, asked: Any) -> bool:
        """``delete_child`` of a child this supervisor has not started in this run, which
        an earlier run added and stored (a durable Pool key, say): what the store kept for
        it, and below it, goes. It is answered, and the requests after it are handled, once
        the root has dropped its copy (a path inside the child started again must not be
        handed what went)."""
        if not self.stored or not isinstance(name, str) or "/" in name or self.state is None:
            return False
        if records_of(self.state, name):
            return False  # (one it has: the kernel's to answer)
        path = f"{self.path}/{name}"
        paths = ([path] if path in self.stored else []) + list(self.stored.under(path))
        if not paths:
            return False
        self.stored.drop(paths)
        self.dropping = (path, asked)
        self.send(self.root, StoredGone(path, self.incarnation, "deleted: an earlier run's"))
        return True

    def on_stored_dropped(self, msg: StoredDropped, sender: Any) -> None:
        """The root has dropped what an earlier run stored for a deleted path."""
        if self.dropping is None or msg.incarnation != self.incarnation:
            return
        path, asked = self.dropping
        if msg.path != path:
            return
        self.dropping = None
        detail = f"{path} (what an earlier run stored)"
        self.send(self.root, EventNote("child-deleted", path, detail=detail))
        answer(self, asked, None)
        self.requests_waited()

    def on_forwarded(self, msg: Forwarded, sender: Any) -> None:
        """A request the root sends on: it reached another process first."""
        if type(msg.message) is Request:
            self.on_request(msg.message, msg.sender, forwarded=True)

    def own_service_change(self, request: Any) -> bool:
        """Whether ``request`` would start or stop a child of Stalwart's own services."""
        return type(request) in CHANGES and self.path.partition("/")[0] == SYSTEM_NAME

    def on_child_request_told(self, msg: Any, sender: Any) -> None:
        """A child request sent without waiting for the answer (a tell)."""
        if self.own_service_change(msg):
            log.warning("%s: %s refused: Stalwart's own supervisor", self.path, type(msg).__name__)
            return
        if self.state is not None and self.begun:
            self.child_request(msg, None)

    def on_this_host(self, name: str, incarnation: int) -> bool:
        """Whether that instance of child ``name`` runs on this host (not on another node)."""
        _pid, node = self.pids.get((name, incarnation), (0, ""))
        return node == self.node

    def on_activity(self, msg: ActivityReport, sender: Any) -> None:
        name = self.child_name(msg.path)
        if name is not None:
            idle_s, now = msg.idle_s, self.now
            if msg.last_at and not msg.busy and self.on_this_host(name, msg.incarnation):
                # one clock, read once: how long it has been idle at the event's ``now``,
                # whenever it answered (children answer at different moments, and their
                # order is then exact, even if this thread is held up between two reads)
                idle_s = max(0.0, now - msg.last_at)
            event = ev.ActivityReported(
                name, msg.incarnation, msg.activity, msg.busy, idle_s, now=now
            )
            self.decide(event)

    # -- messages from children -------------------------------------------------------------
    def on_started(self, msg: Started, sender: Any) -> None:
        name = self.child_name(msg.path)
        if name is None:
            return
        if msg.ok and not self.wanted(name, msg.incarnation):
            self.stop_unwanted(msg.path, msg.incarnation, sender, "started")
            return
        if msg.ok:
            self.record_pid((name, msg.incarnation), msg.pid, msg.node)
            if self.stored:  # (what an earlier run stored for it is this instance's now)
                self.stored.drop([msg.path])
                self.stored.drop_under(msg.path)
        self.decide(
            ev.ChildStarted(name, msg.incarnation, msg.ok, msg.error, msg.held, now=self.now)
        )
        if msg.ok:
            self.spares.make_soon(self, name)
        self.spares.refill(self)  # a Pool's spare became this instance: another, soon

    def on_standby_ready(self, msg: StandbyReady, sender: Any) -> None:
        self.spares.ready(self, msg, sender)

    def on_placed(self, msg: Placed, sender: Any) -> None:
        """An instance on another node asks whether it may start: it may, unless it was
        replaced while a partition held up its creation."""
        name = self.child_name(msg.path)
        if name is None or not self.wanted(name, msg.incarnation):
            self.stop_unwanted(msg.path, msg.incarnation, sender, "was placed")
            return
        self.send(sender, Proceed())

    def stop_unwanted(self, path: str, incarnation: int, sender: Any, what: str) -> None:
        """An instance given up before it started (a partition held up its creation, say,
        and the request got through once healed) must not run beside its successor."""
        log.warning("%s: instance %d %s after it was replaced: stopped", path, incarnation, what)
        self.send(sender, ActorExitRequest())

    def wanted(self, name: str, incarnation: int) -> bool:
        """Instance ``incarnation`` of ``name`` is the one being started (any other that
        starts was given up: a start timeout, a lost node, a replacement)."""
        assert self.state is not None
        c = self.state.children[name]
        return c.incarnation == incarnation and c.phase == STARTING

    def on_failure(self, msg: FailureReport, sender: Any) -> None:
        name = self.child_name(msg.path)
        if name is None:
            return
        deadline = 0.0
        if type(msg.sender) is ReplyTo and msg.sender.deadline:
            deadline = time.monotonic() + (msg.sender.deadline - time.time())
        self.decide(
            ev.Failed(
                name,
                msg.incarnation,
                msg.info,
                msg.message,
                msg.sender,
                msg.traceback,
                msg.failure_id,
                msg.during,
                deadline,
                msg.handled_s,
                now=self.now,
            )
        )

    def on_retry_outcome(self, msg: RetryOutcome, sender: Any) -> None:
        name = self.child_name(msg.path)
        if name is not None:
            self.decide(ev.Recovered(name, msg.failure_id, now=self.now))

    def on_checkpoint(self, msg: Checkpoint, sender: Any) -> None:
        """Keep the state, then send on the answers that reflect it.

        A replaced instance's checkpoint (one cut off by a partition, say, that arrives
        once the link is back) is not kept, and so neither are its answers and
        confirmations sent on: its callers had their requests handled again by its
        successor, and that instance's answers are the ones that reflect a kept state.
        """
        assert self.state is not None
        c = self.state.by_path.get(msg.path)
        if c is None or c.incarnation != msg.incarnation:
            return
        keeper = self.keeper(c.name)
        keeper.keep(msg.state, msg.incarnation, False)
        if msg.marks:
            keeper.marks = msg.marks
        if msg.last_reply is not None:
            keeper.remember_reply(*msg.last_reply)
        for _, reply in msg.replies:
            keeper.remember_reply(reply.id, reply.value)
        self.file_checkpoint(c, msg.incarnation, msg.state, msg.marks)
        if getattr(c.spec, "durable", False):
            self.send(self.root, DurableCheckpoint(c.path, msg.state, msg.incarnation))
        for address, reply in msg.replies:
            self.send(address, reply)
        for address, ack in msg.acks:  # the tells it reflects are safe with it now
            self.send(address, ack)

    def on_retired(self, msg: Retired, sender: Any) -> None:
        assert self.state is not None
        if msg.leaving and not self.clock_id:  # what it sent is here: it may exit (in
            self.send(sender, Release())  # process it has, as nothing sent can be lost)
        c = self.state.by_path.get(msg.path)
        if c is None or c.incarnation != msg.incarnation:
            return
        keeper = self.keeper(c.name)
        keeper.marks = msg.marks
        if c.kind == "supervisor":
            keeper.sub_checkpoints = dict(msg.final_state or {})
            # (if it is forgotten and started again, what runs below it starts above this)
            self.state.floor_forgotten = max(self.state.floor_forgotten, msg.floor)
        elif msg.has_state and c.trust_final_state:
            keeper.keep(msg.final_state, msg.incarnation, True)
            for _, reply in msg.replies:  # the handler that stopped it answered
                keeper.remember_reply(reply.id, reply.value)
            self.file_checkpoint(c, msg.incarnation, msg.final_state, msg.marks)
            for address, reply in msg.replies:  # (kept, and filed on this host: they can go)
                self.send(address, reply)
            for address, ack in msg.acks:  # the tells it reflects are safe with it now
                self.send(address, ack)
        else:  # no state kept: only refusals (requests it stopped before handling) go on
            for address, reply in msg.replies:
                if type(reply.value) is ErrorReply:
                    self.send(address, reply)
        self.decide(ev.ChildRetired(c.name, msg.incarnation, now=self.now))

    def on_stopped_normally(self, msg: StoppedNormally, sender: Any) -> None:
        name = self.child_name(msg.path)
        if name is not None:
            self.decide(ev.StoppedItself(name, msg.incarnation, now=self.now))

    def on_escalate(self, msg: Escalate, sender: Any) -> None:
        name = self.child_name(msg.path)
        if name is not None:
            self.decide(ev.ChildGaveUp(name, msg.reason, msg.info, now=self.now))

    def on_child_exited(self, msg: ChildActorExited, sender: Any) -> None:
        address = msg.childAddress
        instance = self.by_address.get(str(address))
        if instance is None or self.addresses.get(instance) != address:
            # (addresses compare by Thespian's rules: a child's first, local address equals
            # the one it has once its process is connected, though they print differently)
            instance = next((k for k, a in self.addresses.items() if a == address), None)
        if instance is not None:
            self.instance_exited(instance)
        elif self.spares:
            self.spares.exited(self, address)
        if time.monotonic() - self.looked_for_lost >= LOST_LOOK_S:
            self.find_lost_exits()  # Thespian may have forgotten a sibling that died meanwhile

    def find_lost_exits(self) -> None:
        """Children whose processes are gone although no exit notice came: they exited."""
        self.looked_for_lost = time.monotonic()
        if self.clock_id:  # (in one process, every child's pid is this one's)
            return
        node, mine = self.node, os.getpid()
        for instance, (pid, where) in list(self.pids.items()):
            if pid and pid != mine and where == node and child_process_gone(pid):
                self.instance_exited(instance)
        if self.spares:
            self.spares.find_lost(self)

    def record_pid(self, instance: tuple[str, int], pid: int, node: str) -> None:
        """The process of ``instance`` (on ``node``); an instance of a child that keeps a
        spare, in a process of this host, has its exit watched in this one's wait."""
        self.pids[instance] = (pid, node)
        child = self.state.children.get(instance[0]) if self.state is not None else None
        keeps_spare = child is not None and bool(getattr(child.spec, "standby", False))
        if pid and node == self.node and keeps_spare:
            self.exit_watch.watch(self, instance, pid)

    def on_watch(self, msg: WatchMessage, sender: Any) -> None:
        """Processes it watches have ended (see _exit_watch)."""
        for instance in self.exit_watch.exited(msg.ready):
            self.instance_exited(instance)

    def instance_exited(self, instance: tuple[str, int]) -> None:
        self.exit_watch.forget(instance)
        if instance not in self.addresses:
            return
        self.by_address.pop(str(self.addresses[instance]), None)
        del self.addresses[instance]
        self.pids.pop(instance, None)
        self.crash_notices.tell(self, *instance)
        try:
            self.decide(ev.ChildExited(*instance, now=self.now))
        finally:
            self.crash_notices.told(self)  # (a spare taken later takes over from nothing)

    def on_lost_request(self, msg: LostRequest, sender: Any) -> None:
        name = self.child_name(msg.path)
        if name is None:
            return
        direct = False
        if msg.direct:  # a note: its caller handed it to the spare (see _crash_notices)
            handed = self.crash_notices.handed(self, name, msg.direct)
            if handed is None:
                return  # (that instance has died since: its caller hands the request again)
            direct = handed
        event = ev.LostRequestArrived(name, msg.request, msg.behind, direct, now=self.now)
        self.decide(event)

    def on_handover_done(self, msg: HandoverDoneMessage, sender: Any) -> None:
        name = self.child_name(msg.path)
        if name is not None:
            self.decide(ev.HandoverDone(name, msg.incarnation, msg.request_id, now=self.now))

    def on_watchers(self, msg: Watchers, sender: Any) -> None:
        self.crash_notices.watched(self, msg)

    def on_hooks_done(self, msg: HooksDone, sender: Any) -> None:
        self.decide(ev.HooksRan(msg.request_id, msg.ok, msg.detail, now=self.now))

    def on_health_report(self, msg: HealthReport, sender: Any) -> None:
        name = self.child_name(msg.path)
        if name is not None:
            self.decide(ev.HealthReported(name, msg.incarnation, msg.ok, msg.info, now=self.now))

    def on_breaker_note(self, msg: BreakerNote, sender: Any) -> None:
        name = self.child_name(msg.path)
        if name is None:
            return
        assert self.state is not None
        if msg.incarnation and msg.incarnation != self.state.children[name].incarnation:
            return  # (a replaced instance's, late)
        self.decide(ev.BreakerChanged(name, msg.state, msg.remaining_s, now=self.now))

    # -- messages from the parent and the root -------------------------------------------------
    def on_retire(self, msg: Retire, sender: Any) -> None:
        self.spares.stop_all(self)  # (they leave while the children stop, one by one)
        self.decide(ev.RetireRequested(now=self.now))

    def on_perform(self, msg: PerformRecovery, sender: Any) -> None:
        name = self.child_name(msg.target) or msg.target
        self.decide(ev.RecoveryRequested(msg.request_id, name, msg.level, msg.reason, now=self.now))

    def on_dependency_down(self, msg: DependencyDown, sender: Any) -> None:
        self.decide(ev.DependencyChanged(msg.path, msg.down, now=self.now))

    def on_incident_hold(self, msg: IncidentHold, sender: Any) -> None:
        self.decide(ev.IncidentHeld(msg.cause, msg.dependents, msg.on, msg.probe, now=self.now))

    def on_reset_levels(self, msg: ResetLevels, sender: Any) -> None:
        self.decide(ev.LevelsReset(msg.path, now=self.now))

    def on_wakeup(self, msg: WakeupMessage, sender: Any) -> None:
        if msg.payload != TICK:
            return
        for payload in self._sw_tick():
            if payload[1] == "leave":  # no Release came from its parent: it leaves anyway
                self.leave()
                continue
            if self.state is not None and self.state.finished:
                continue
            if payload[1] == "standby":
                self.spares.make(self, payload[2])
                continue
            if payload[2] == ("health",):
                self.find_lost_exits()
            self.decide(ev.TimerFired(payload[2], now=self.now))

    def on_release(self, msg: Release, sender: Any) -> None:
        """Its parent has its ``Retired``: a finished supervisor may exit now."""
        if self.state is not None and self.state.finished:
            self.cancel("leave")
            self.leave()

    def leave(self) -> None:
        """Exit (its children are gone already).

        On the multi-process bases a finished supervisor waits for its parent's
        ``Release`` first, as an actor does (or ``LEAVE_WAIT_S`` if none comes). A process
        that exits right after sending can have its exit seen first: Thespian tells the
        parent of it over another connection, and the parent took a supervisor that had
        shut itself down (``auto_shutdown``) for one that had crashed, and restarted it.
        """
        self.send(self.myAddress, ActorExitRequest(recursive=False))

    def on_exit_request(self, msg: ActorExitRequest, sender: Any) -> None:
        self.spares.stop_all(self)
        if self.state is not None:
            self.decide(ev.Exiting(now=self.now))

    # -- the cluster ----------------------------------------------------------------------------
    def on_nodes(self, msg: Nodes, sender: Any) -> None:
        before = self.settings.get("nodes", {})
        newly = [n for n in msg.lost if n not in self.settings.get("lost", ())]
        self.settings["lost"] = tuple(msg.lost)  # placements avoid them from now on
        self.settings["nodes"] = dict(msg.nodes)
        assert self.state is not None
        for c in self.state.order:  # (one starting has not registered: the root cannot tell it)
            if c.kind == "supervisor" and c.phase == STARTING:
                address = self.addresses.get((c.name, c.incarnation))
                if address is not None:
                    self.send(address, msg)
        for node in newly:  # a child being placed may have been on its way there
            caps = before.get(node)
            placing = tuple(
                c.name
                for c in self.state.order
                if c.phase == STARTING
                and caps is not None
                and (requires := getattr(c.spec, "requires", None))
                and placeable(dict(requires), {node: caps}, ())
            )
            if placing:  # placed again (the start there would only time out)
                why = "lost while a child was being placed there"
                self.decide(ev.NodeLost(node, placing, why, now=self.now))
        ready = tuple(c.name for c in self.state.order if c.waiting and self.placeable(c.spec))
        if ready:
            self.decide(ev.NodesChanged(ready, now=self.now))

    def placeable(self, spec: Any) -> bool:
        requires = dict(getattr(spec, "requires", {}) or {})
        nodes = self.settings.get("nodes", {})
        return bool(placeable(requires, nodes, tuple(self.settings.get("lost", ()))))

    def on_node_down(self, msg: NodeDown, sender: Any) -> None:
        """The children ``msg.paths`` ran on a lost node: they are gone like crashed ones."""
        self.settings["lost"] = tuple(msg.lost)
        names = tuple(n for p in msg.paths if (n := self.child_name(p)) is not None)
        self.decide(ev.NodeLost(msg.node, names, msg.reason, now=self.now))

    def on_poison(self, msg: PoisonMessage, sender: Any) -> None:
        """An Init came back undelivered: the child waits if no live node offers what it needs."""
        init = msg.poisonMessage
        if isinstance(init, Standby):
            self.spares.undelivered(self, init, sender)
            return
        if not isinstance(init, Init):
            return
        assert self.state is not None
        c = self.state.by_path.get(init.path)
        if c is None or not getattr(c.spec, "requires", None) or self.placeable(c.spec):
            return  # a node can take it: the restart under way will find it
        self.decide(ev.Unplaceable(c.name, init.incarnation, self.unplaceable(c), now=self.now))

    def unplaceable(self, c: Any) -> str:
        """Why no node can host ``c`` now."""
        nodes = self.settings.get("nodes", {})
        lost = tuple(self.settings.get("lost", ()))
        return (
            f"{c.path}: no live node satisfies requires {dict(c.spec.requires)}"
            f" (live nodes: {', '.join(sorted(nodes)) or 'none'}; lost: {', '.join(lost)})"
        )


_HANDLERS: dict[type, Any] = {
    SupervisorInit: SupervisorActor.on_init,
    Floors: SupervisorActor.on_floors,
    Started: SupervisorActor.on_started,
    Placed: SupervisorActor.on_placed,
    StandbyReady: SupervisorActor.on_standby_ready,
    FailureReport: SupervisorActor.on_failure,
    RetryOutcome: SupervisorActor.on_retry_outcome,
    Checkpoint: SupervisorActor.on_checkpoint,
    Retired: SupervisorActor.on_retired,
    StoppedNormally: SupervisorActor.on_stopped_normally,
    Escalate: SupervisorActor.on_escalate,
    ChildActorExited: SupervisorActor.on_child_exited,
    HooksDone: SupervisorActor.on_hooks_done,
    HandoverDoneMessage: SupervisorActor.on_handover_done,
    LostRequest: SupervisorActor.on_lost_request,
    Watchers: SupervisorActor.on_watchers,
    WatchMessage: SupervisorActor.on_watch,
    Retire: SupervisorActor.on_retire,
    Release: SupervisorActor.on_release,
    PerformRecovery: SupervisorActor.on_perform,
    WakeupMessage: SupervisorActor.on_wakeup,
    ActorExitRequest: SupervisorActor.on_exit_request,
    Nodes: SupervisorActor.on_nodes,
    NodeDown: SupervisorActor.on_node_down,
    PoisonMessage: SupervisorActor.on_poison,
    ResetLevels: SupervisorActor.on_reset_levels,
    BreakerNote: SupervisorActor.on_breaker_note,
    HealthReport: SupervisorActor.on_health_report,
    DependencyDown: SupervisorActor.on_dependency_down,
    IncidentHold: SupervisorActor.on_incident_hold,
    Request: SupervisorActor.on_request,
    Handover: SupervisorActor.on_handover,
    Forwarded: SupervisorActor.on_forwarded,
    Batch: SupervisorActor.on_batch,
    ActivityReport: SupervisorActor.on_activity,
    **{kind: SupervisorActor.on_child_request_told for kind in CHILD_REQUESTS},
    StoredStates: SupervisorActor.on_stored_states,
    StoredDropped: SupervisorActor.on_stored_dropped,
    **SUPERVISOR_HANDLERS,
}
_WHEN_FINISHED = (SupervisorActor.on_release, SupervisorActor.on_wakeup)
