"""The one adapter over Thespian: its names, spawning, and the settings Stalwart's systems use.

Everything of Stalwart that touches Thespian imports it from here, so the
runtime's vocabulary (``receiveMessage``, ``wakeupAfter``, ``ChildActorExited``,
transport settings) stays in one place; only its logging, which Stalwart takes
over, is in :mod:`stalwart.actors._logs` and its two neighbours, and the in-process
base Stalwart's in-process systems run on in :mod:`stalwart.actors._in_process`.

**Settings confined to Stalwart's own systems.** Some of Thespian's settings are
not per system, so Stalwart changes them only while it creates a system
(:func:`stalwart_system`) and puts them back at once in the creating process:

- Thespian's TCP transport binds every socket to all interfaces. Stalwart makes
  it bind the address the system advertises (``THESPIAN_BASE_IPADDR``, set to
  127.0.0.1 unless configured otherwise).
- What the system's processes log goes to the creating process's
  :class:`~stalwart.actors._log_channel.LogChannel` (:mod:`stalwart.actors._logs`),
  not to Thespian's logger.
- The admins Thespian forks are seen as it detaches them, so one it gives up on (it did
  not answer in time) is stopped, with its session, rather than left running.
- Thespian keeps idle TCP connections for 20 minutes and registers every one of
  them with its selector on every turn of an actor's loop; Stalwart closes them
  after 0.2 seconds. A connection in use stays open; one made again costs about
  what a few turns with a hundred idle ones would (a supervisor that has just
  started a hundred children holds a connection with each).

The admin and actor processes of a Stalwart system are forked while these are in
effect, so they keep them; another Thespian system created in the same program
(outside that window) is not affected. Thespian's version is pinned to the 4.0
series, whose transport these settings were checked against.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import psutil
from thespian.actors import (
    Actor,
    ActorExitRequest,
    ActorSystem,
    ActorSystemConventionUpdate,
    ActorSystemMessage,
    ChildActorExited,
    DeadEnvelope,
    InvalidActorAddress,
    PoisonMessage,
    ThespianWatch,
    WakeupMessage,
    WatchMessage,
)

from ._debug_text import debug_text_when_logged
from ._in_process import InProcessSystem
from ._log_channel import LogChannel
from ._logs import adopt_actor_logging
from ._polls import wait_with_one_poll
from ._quick_start import libc, quicker_child_starts
from ._transmit_order import transmits_in_order


class _RuntimeActor(Actor):  # type: ignore[misc]
    """The base of every actor class Stalwart runs.

    In an actor process of its own it first takes over the process's logging, so that
    what the actor logs reaches the system's owner (see :mod:`stalwart.actors._logs`).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        keep_init_signature(cls)

    def __init__(self) -> None:
        adopt_actor_logging()
        super().__init__()


def keep_init_signature(cls: type) -> None:
    """Work out the signature of ``cls.__init__`` once, and keep it on the function.

    Thespian reads the signature of an actor class's ``__init__`` (twice) each time it
    creates an actor, to pass only the arguments it takes; ``inspect`` returns a kept
    ``__signature__`` at once. That halves what creating an actor costs in process.
    """
    init = cls.__dict__.get("__init__")
    if init is None or "__signature__" in getattr(init, "__dict__", {}):
        return
    with contextlib.suppress(AttributeError, TypeError, ValueError):
        init.__signature__ = inspect.signature(init)


keep_init_signature(_RuntimeActor)


RuntimeActor: Any = _RuntimeActor  # (Thespian has no type hints: neither has its base)

__all__ = [
    "THESPIAN_BASES",
    "ActorExitRequest",
    "ActorSystem",
    "ActorSystemConventionUpdate",
    "ActorSystemMessage",
    "ChildActorExited",
    "DeadEnvelope",
    "InvalidActorAddress",
    "PoisonMessage",
    "RuntimeActor",
    "ThespianWatch",
    "WakeupMessage",
    "WatchMessage",
    "child_process_gone",
    "create_child",
    "die_with_parent",
    "environment",
    "new_system",
    "pid_alive",
    "stalwart_system",
    "tune_own_process",
]

THESPIAN_BASES = {
    "simple": "simpleSystemBase",
    "multiproc": "multiprocTCPBase",
    "tcp": "multiprocTCPBase",
}
LOG_DEFS: dict[str, Any] = {  # Thespian's logging where no LogChannel takes the records
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "WARNING"}},
    "root": {"level": "WARNING", "handlers": ["stderr"]},
}
BIND_ENV = "STALWART_BIND_HOST"
IDLE_SOCKET = timedelta(seconds=0.2)
_creating = threading.Lock()  # one system's settings window at a time


def tune_own_process() -> None:
    """In a process of Stalwart's own (an actor's, a supervisor's, the root's on the
    multi-process bases): Thespian's transport waits with one ``poll`` per wait and builds
    its debug text about a message only for a line that is kept; the actor processes it
    forks start with less work."""
    wait_with_one_poll()
    debug_text_when_logged()
    quicker_child_starts()


# -- spawning ----------------------------------------------------------------------------
_SLOTS = 4000  # 32 KiB of frame: CPython allocates 64 KiB, leaving 32 KiB of room


def _frame_with_room() -> Callable[[Callable[[], Any]], Any]:
    # a function whose frame holds _SLOTS locals (never assigned: only their room counts)
    names = " = ".join(f"_{i}" for i in range(_SLOTS))
    source = f"def run(fn):\n    if False:\n        {names} = None\n    return fn()\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, "<stalwart frame room>", "exec"), namespace)
    return namespace["run"]  # type: ignore[no-any-return]


_run_with_room = _frame_with_room()


def create_child(parent: Any, cls: Any, forks: bool, **kwargs: Any) -> Any:
    """``parent.createActor(cls, **kwargs)``; if that ``forks``, with room on the frame stack.

    On the multi-process bases Thespian forks the new actor's process inside
    ``createActor``, and the child runs its whole life on top of the parent's call
    stack. CPython (3.11 on) keeps frames in 16 KiB chunks and frees a chunk as
    soon as the frame at its start returns: a child whose message loop sits just
    below a chunk boundary maps and unmaps a chunk several times per message. So
    ``createActor`` runs inside one frame too large for any existing chunk; CPython
    gives it a chunk of its own, and the child's loop runs in the room left there.
    The in-process base does not fork, and there the room would only cost time.
    """
    if not forks:
        return parent.createActor(cls, **kwargs)
    global _forked_by
    # what the child inherits stays out of its garbage collector's way (no page is
    # copied just to be scanned); the parent's objects are collected as before
    gc.freeze()
    _forked_by = os.getpid()  # what a child forked now sees: it dies with this process
    try:
        return _run_with_room(lambda: parent.createActor(cls, **kwargs))
    finally:
        _forked_by = 0  # a process forked later, by anything else, is not such a child
        gc.unfreeze()


def forked_pid(parent: Any, address: Any) -> int:
    """The pid of the process ``parent`` forked for the child at ``address`` (0 if it forked
    none: the in-process base, or a child Thespian's admin created on another node).

    Known as soon as ``createActor`` returns, before the child has run a line of its own:
    a child that hangs while it starts can be killed by its pid.
    """
    procs = getattr(getattr(parent, "_myRef", None), "_child_procs", None)
    if not procs or procs[-1].childAddr != address:
        return 0
    return int(getattr(procs[-1].childProc, "pid", 0) or 0)


_forked_by = 0  # in a process forked by create_child: the pid of the process that forked it
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
ACTOR_PROCESS_PREFIX = "sw:"  # the name of every actor process of its own


def die_with_parent() -> None:
    """In an actor process forked by :func:`create_child`: die when its parent dies.

    A supervisor's children are its child processes. Killed, it takes with it those
    the root knows of; one it had just forked, not yet registered, would outlive it
    unsupervised. The kernel SIGKILLs such a child when its parent exits (Linux);
    elsewhere nothing changes.
    """
    parent = _forked_by
    if not parent or parent == os.getpid() or os.getppid() not in (parent, 1):
        return  # not an actor process create_child forked (the in-process base, the root)
    c = libc()
    if c is not None:
        with contextlib.suppress(AttributeError):
            c.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # its parent died before that took effect
        os._exit(0)


def name_process(name: str) -> None:
    """Give this process ``name`` (what ``top`` and ``ps -o comm`` show; Linux, 15 bytes).

    Actor processes are named ``sw:<name>``: a node that fences itself finds and stops
    its actors by that name.
    """
    c = libc()
    if c is not None:
        with contextlib.suppress(AttributeError):
            c.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` exists (ours to signal or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_system_process(pid: int, started: float) -> bool:
    """SIGKILL ``pid`` if it is still the process of this system that started at ``started``
    (:func:`process_started`); True if one was signalled.

    A pid recorded a while ago may name another process by now: the kernel hands
    freed pids out again, within seconds on a busy host (``pid_max`` is often 32768).
    A system's admin and actor processes share one session: a process outside this
    process's session (another system's, a user's program) is never signalled, nor one
    of the system's own that took the pid later.
    """
    if pid <= 0 or pid == os.getpid() or not started:
        return False
    try:
        if os.getsid(pid) != os.getsid(0) or process_started(pid) != started:
            return False
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def process_started(pid: int) -> float:
    """When process ``pid`` started, the same each time it is asked of the same process
    (Linux: clock ticks since boot, which no clock change moves), or 0.0 if there is none."""
    if not _PROC_STAT:
        try:
            return float(psutil.Process(pid).create_time())
        except psutil.Error:
            return 0.0
    try:
        return float(_read_stat(pid)[19])  # (the 22nd field, starttime)
    except (OSError, IndexError, ValueError):
        return 0.0


_PROC_STAT = os.path.exists("/proc/self/stat")


def stat_fields(line: bytes) -> list[bytes]:
    """The fields of a ``/proc/<pid>/stat`` line after the process's name, which may hold
    spaces and parentheses: the state is ``[0]``, the parent's pid ``[1]``, the user and
    system CPU ticks ``[11]`` and ``[12]``, the start time ``[19]``."""
    return line.rpartition(b")")[2].split()


def _read_stat(pid: int) -> list[bytes]:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        return stat_fields(fh.read())


def child_process_gone(pid: int) -> bool:
    """True if ``pid`` is no longer a live child process of this one.

    Thespian 4.0 can miss a child's exit: handling one child's exit it forgets every
    other child that has died by then without reporting them. Supervisors ask this of
    their children's processes to find such exits themselves.
    """
    if _PROC_STAT:  # (one read, where psutil reads several files)
        try:
            fields = _read_stat(pid)
            return fields[0] in (b"Z", b"X") or int(fields[1]) != os.getpid()
        except (OSError, IndexError, ValueError):
            return True
    try:
        proc = psutil.Process(pid)
        return bool(proc.ppid() != os.getpid() or proc.status() == psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return True


# -- creating systems ----------------------------------------------------------------------
@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for a while (processes forked meanwhile keep them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _bind_to_configured_host(original: Callable[..., None]) -> Callable[..., None]:
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        host = os.environ.get(BIND_ENV)
        if host and self.bindname[0] in ("", "0.0.0.0"):
            self.bindname = (host, self.bindname[1])

    return init


@contextlib.contextmanager
def stalwart_system(host: str | None) -> Iterator[None]:
    """While a Stalwart system is created: its settings are in effect (see the module doc).

    ``host``: the address its sockets advertise and bind (None: Thespian's defaults).
    Processes forked meanwhile keep the settings; this process gets Thespian's back.
    """
    from thespian.system.transport import IPBase, TCPTransport

    with _creating:
        saved = (
            TCPTransport.MAX_IDLE_SOCKET_PERIOD,
            TCPTransport.MAX_INCOMING_SOCKET_PERIOD,
            IPBase.IPActorAddress.__init__,
        )
        TCPTransport.MAX_IDLE_SOCKET_PERIOD = IDLE_SOCKET
        TCPTransport.MAX_INCOMING_SOCKET_PERIOD = IDLE_SOCKET
        variables = {BIND_ENV: host, "THESPIAN_BASE_IPADDR": host} if host else {}
        if host:
            IPBase.IPActorAddress.__init__ = _bind_to_configured_host(saved[2])
        try:
            with environment(**variables), transmits_in_order():
                yield
        finally:
            (
                TCPTransport.MAX_IDLE_SOCKET_PERIOD,
                TCPTransport.MAX_INCOMING_SOCKET_PERIOD,
                IPBase.IPActorAddress.__init__,
            ) = saved


def new_system(
    base: str,
    capabilities: dict[str, Any],
    host: str | None = None,
    logs: LogChannel | None = None,
) -> Any:
    """A Thespian ``ActorSystem`` of Stalwart's ``base`` (``simple``, ``multiproc``, ``tcp``).

    ``logs``: on a multi-process base, where the records its processes log go (without
    it, Thespian's own logging keeps them: warnings to standard error). On the
    in-process base actors log in this process.
    """
    name = THESPIAN_BASES[base]
    if base == "simple":
        return InProcessSystem(capabilities)
    with (
        stalwart_system(host),
        logs.forking() if logs else _no_channel() as log_defs,
        _admins_forked() as admins,
    ):
        try:
            return ActorSystem(name, capabilities, logDefs=log_defs, transientUnique=True)
        except InvalidActorAddress:
            _stop_admins(admins)
            raise


@contextlib.contextmanager
def _admins_forked() -> Iterator[list[Any]]:
    """The admin processes Thespian forks meanwhile (``multiprocessing.Process`` objects).

    Thespian detaches each admin it forks from ``multiprocessing``'s children: that is
    where they are seen (only while one of Stalwart's systems is created, see
    :func:`stalwart_system`).
    """
    from thespian.system import multiprocCommon

    admins: list[Any] = []
    detach = multiprocCommon.detach_child

    def seen(child: Any) -> None:
        admins.append(child)
        detach(child)

    multiprocCommon.detach_child = seen
    try:
        yield admins
    finally:
        multiprocCommon.detach_child = detach


def _stop_admins(admins: list[Any]) -> None:
    """SIGKILL the admins Thespian gave up on, with their sessions.

    When an admin does not answer its creator in time (a loaded machine), Thespian raises
    ``InvalidActorAddress`` but leaves it running: the process it forked starts a session,
    forks the admin proper into it and exits, and the admin forks its logger.
    """
    from ..supervisors._bases import sweep_session

    for admin in admins:
        with contextlib.suppress(psutil.Error):
            psutil.Process(admin.pid).kill()  # (if it has not forked the admin yet, it will not)
        deadline = time.monotonic() + 5.0  # then its session, again while that kills any
        while sweep_session(admin.pid, grace_s=0.0) and time.monotonic() < deadline:
            pass  # (a fork under way shows up on the next look)
        admin.join(timeout=5)  # (collected once the session that shares its pipe is gone)


@contextlib.contextmanager
def _no_channel() -> Iterator[dict[str, Any]]:
    yield LOG_DEFS
