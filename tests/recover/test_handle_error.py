"""Recovery for plain code: real failures (sockets, memory, a running tree), sync and async."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart import Child, Recovery, Supervisor, start
from stalwart.recover import _remedies as remedies
from stalwart.strategies import Fixed
from stalwart.telemetry import RecoveryStore
from tests.support import FAST, Ping, Worker, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A loopback server that answers ``pong`` after ``delay_s``; started on demand.

    Each connection is answered on its own thread, so every request takes ``delay_s``:
    a request the client gave up on does not hold up the next one, as it would if the
    server answered them in turn.
    """

    def __init__(self, port: int, delay_s: float = 0.0) -> None:
        self.port, self.delay_s = port, delay_s
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self.answering: list[threading.Thread] = []
        self.stopping = False

    def listen(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen()
        sock.settimeout(0.1)
        self.sock = sock
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        assert self.sock is not None
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            answer = threading.Thread(target=self._answer, args=(conn,), daemon=True)
            self.answering.append(answer)
            answer.start()

    def _answer(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the client may have given up and gone
            conn.recv(16)
            time.sleep(self.delay_s)  # the service's latency
            conn.sendall(b"pong")

    def close(self) -> None:
        self.stopping = True
        if self.thread is not None:
            self.thread.join()
        for answer in self.answering:
            answer.join()
        if self.sock is not None:
            self.sock.close()


def ping(port: int, timeout: float = 1.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(b"ping")
        return conn.recv(16)


@pytest.fixture
def server() -> Any:
    s = Server(free_port())
    yield s
    s.close()


def quick(**options: Any) -> Recovery:
    return Recovery(backoff=Fixed(0.01), seed=3, **options)


def test_connection_refused_runs_the_reconnect_hook_then_retries(server: Server) -> None:
    recovery = quick()
    try:
        ping(server.port)
    except ConnectionRefusedError as exc:
        out = recovery.handle_error_sync(
            exc,
            {
                "service": "inventory",
                "operation": "ping",
                "retry": lambda: ping(server.port),
                "reconnect": server.listen,  # the remedy: bring the server (back) up
            },
        )
    assert out.success and out.value == b"pong"
    assert (out.strategy, out.level, out.remedies) == ("reconnect", 1, ("reconnect",))
    assert out.category == "connection" and out.attempts == 1


def test_a_timeout_is_retried_with_the_adapted_timeout(server: Server) -> None:
    server.delay_s = 0.3
    server.listen()
    seen: list[float] = []

    def call(timeout: float = 0.1) -> bytes:
        seen.append(timeout)
        return ping(server.port, timeout)

    recovery = quick(timeout_factor=5.0)
    with pytest.raises(TimeoutError) as caught:
        call()
    out = recovery.handle_error_sync(
        caught.value, {"service": "slow", "retry": call, "timeout": 0.1}
    )
    assert out.success and out.value == b"pong"
    assert out.remedies == ("adapt_timeout",)
    assert seen == [0.1, pytest.approx(0.5)]


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("429 too many requests")
        self.status = 429
        self.headers = {"Retry-After": str(retry_after)}


def test_a_rate_limit_waits_what_retry_after_asked() -> None:
    allowed_at = time.monotonic() + 0.25

    def call() -> str:
        if time.monotonic() < allowed_at:
            raise RateLimited(0.3)
        return "ok"

    recovery = quick()
    began = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        call()
    out = recovery.handle_error_sync(caught.value, {"service": "partner", "retry": call})
    assert out.success and out.remedies == ("retry_after",) and out.attempts == 1
    assert time.monotonic() - began >= 0.3  # it waited rather than hammering


def test_a_real_memory_error_asks_for_cleanup_then_retries() -> None:
    sizes = iter([1 << 60, 1 << 20])

    def allocate() -> int:
        return len(bytearray(next(sizes)))

    recovery = quick()
    with pytest.raises(MemoryError) as caught:
        allocate()
    out = recovery.handle_error_sync(caught.value, {"service": "batch", "retry": allocate})
    assert out.success and out.value == 1 << 20
    assert out.remedies == ("memory_cleanup",) and out.category == "resource_exhaustion"


def test_a_memory_error_with_the_memory_actor_off_collects_here_then_retries(
    make_system, monkeypatch
):
    sizes = iter([1 << 60, 1 << 20])

    def allocate() -> int:
        return len(bytearray(next(sizes)))

    collected = []  # (the real collection runs; this only sees that it did)
    real = remedies.collect_garbage
    monkeypatch.setattr(remedies, "collect_garbage", lambda: collected.append(real()))
    recovery = quick()
    recovery.attach(make_system(Supervisor("s", children=[Child("w", Worker)]), memory=None))
    with pytest.raises(MemoryError) as caught:
        allocate()
    out = recovery.handle_error_sync(caught.value, {"service": "batch", "retry": allocate})
    assert out.success and out.value == 1 << 20
    assert (out.remedies, out.attempts) == (("memory_cleanup",), 1)
    assert len(collected) == 1  # the cleanup ran here


class Unauthorized(Exception):
    status = 401


def test_an_authentication_error_refreshes_the_token() -> None:
    tokens = {"current": "expired"}

    def call() -> str:
        if tokens["current"] != "fresh":
            raise Unauthorized("token expired")
        return "data"

    recovery = quick(hooks={"refresh_token": lambda: tokens.update(current="fresh")})
    with pytest.raises(Unauthorized) as caught:
        call()
    out = recovery.handle_error_sync(caught.value, {"service": "billing", "retry": call})
    assert out.success and out.remedies == ("refresh_token",) and tokens["current"] == "fresh"


def test_levels_escalate_to_backoff_then_reset_and_are_recorded(tmp_path: Any) -> None:
    state = {"broken": True, "calls": 0}

    def call() -> str:
        state["calls"] += 1
        if state["broken"]:
            raise ConnectionResetError("connection reset by peer")
        return "fine"

    with quick(store=tmp_path / "rec.db") as recovery:
        out = recovery.handle_error_sync(
            ConnectionResetError("connection reset by peer"),
            {
                "service": "cache",
                "operation": "get",
                "retry": call,
                "reset": lambda: state.update(broken=False),
            },
        )
    assert out.success and (out.strategy, out.level) == ("reset", 3)
    # level 1 twice, level 2 twice: with the original failure that is five, and the
    # breaker opens; the reset closes it again and the operation runs once more
    assert state["calls"] == 2 + 2 + 1
    assert recovery.breaker("cache").state == "closed"
    with RecoveryStore(tmp_path / "rec.db") as store:
        rows = store.query("SELECT level, strategy, success FROM recovery_performance ORDER BY id")
        kinds = [e["kind"] for e in store.events()]
        error = store.errors(path="cache")[0]
    assert [(r["level"], r["strategy"], r["success"]) for r in rows] == [
        (1, "retry", 0),
        (2, "backoff", 0),
        (3, "reset", 1),
    ]
    assert kinds == ["failure", "escalate", "escalate", "recovered"]
    assert error["status"] == "resolved" and error["resolved_by"] == "recovery:reset@level3"


def test_what_was_learned_is_kept_in_the_store(tmp_path: Any) -> None:
    path = tmp_path / "rec.db"
    with quick(store=path) as first:
        first.handle_error_sync(ConnectionError("refused"), {"service": "s", "retry": lambda: 1})
    with quick(store=path) as second:
        assert second.selector.stats("connection", 1, "retry").successes == 1


def test_the_start_level_follows_what_worked_until_a_quiet_period() -> None:
    recovery = quick(quiet_s=60.0)
    fails = {"left": 2}

    def call() -> str:
        if fails["left"]:
            fails["left"] -= 1
            raise ConnectionError("refused")
        return "ok"

    first = recovery.handle_error_sync(ConnectionError("refused"), {"service": "s", "retry": call})
    assert first.level == 2  # level 1's two retries failed
    fails["left"] = 2
    second = recovery.handle_error_sync(ConnectionError("refused"), {"service": "s", "retry": call})
    assert second.level == 2 and second.attempts == 3  # started at level 2, no level-1 retries
    recovery.quiet_s = 0.0
    fails["left"] = 0
    third = recovery.handle_error_sync(ConnectionError("refused"), {"service": "s", "retry": call})
    assert third.level == 1


def test_an_open_breaker_goes_straight_to_the_fallback() -> None:
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        raise ConnectionError("refused")

    recovery = quick(breaker={"failure_threshold": 3, "recovery_timeout": 60.0})
    ctx = {"service": "db", "retry": call, "fallback": lambda: "cached"}
    first = recovery.handle_error_sync(ConnectionError("refused"), ctx)
    assert first.success and first.value == "cached"
    assert recovery.breaker("db").state == "open"
    before = calls["n"]
    second = recovery.handle_error_sync(ConnectionError("refused"), ctx)
    assert second.success and second.strategy == "fallback" and calls["n"] == before


def test_a_validation_error_is_not_retried() -> None:
    calls = {"n": 0}

    def call() -> None:
        calls["n"] += 1

    out = quick().handle_error_sync(ValueError("bad sku"), {"service": "s", "retry": call})
    assert not out.success and out.attempts == 0 and calls["n"] == 0
    assert out.error == "ValueError: bad sku" and isinstance(out.exception, ValueError)


def test_the_decorator_recovers_and_reraises_what_it_cannot() -> None:
    recovery = quick()
    state = {"n": 0}

    @recovery.protect(service="orders")
    def place(order: int) -> int:
        state["n"] += 1
        if state["n"] == 1:
            raise ConnectionError("refused")
        return order * 2

    @recovery.protect(service="orders", fallback=lambda order: -order)
    def broken(order: int) -> int:
        raise ConnectionError("refused")

    @recovery.protect(service="orders")
    def invalid(order: int) -> int:
        raise ValueError(f"bad order {order}")

    assert place(21) == 42 and state["n"] == 2
    assert broken(5) == -5
    with pytest.raises(ValueError, match="bad order 7") as caught:
        invalid(7)
    assert any("not recovered" in note for note in caught.value.__notes__)


def test_async_recovery_does_not_block_the_event_loop() -> None:
    recovery = Recovery(backoff=Fixed(0.05), seed=1)
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(100):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    state = {"n": 0}

    @recovery.protect(service="async-svc")
    async def fetch() -> str:
        state["n"] += 1
        await asyncio.sleep(0)
        if state["n"] <= 3:  # level 1's two retries fail too: level 2 waits
            raise ConnectionError("refused")
        return "done"

    async def main() -> tuple[str, int]:
        task = asyncio.create_task(ticker())
        value = await fetch()
        during = len(ticks)
        task.cancel()
        return value, during

    value, during = asyncio.run(main())
    assert value == "done" and state["n"] == 4
    assert during >= 2  # the ticker ran while recovery waited


def test_the_sync_entry_point_refuses_an_async_retry_clearly() -> None:
    async def op() -> None:
        raise ConnectionError("refused")

    with pytest.raises(TypeError, match="op is async"):
        quick().handle_error_sync(ConnectionError("refused"), {"service": "s", "retry": op})


def test_levels_4_and_5_ask_an_attached_system(tmp_path: Any) -> None:
    tree = Supervisor("app", children=[Child("db", Worker, levels=FAST)])
    with start(tree, store=str(tmp_path / "rec.db")) as system:
        first = system.ask("app/db", Ping(1), timeout=10).incarnation
        recovery = quick(system=system, max_level=4)

        def call() -> int:
            incarnation = system.ask("app/db", Ping(2), timeout=10).incarnation
            if incarnation == first:
                raise ConnectionError("stale connection pool")
            return int(incarnation)

        out = recovery.handle_error_sync(
            ConnectionError("stale connection pool"),
            {"service": "reporting", "operation": "query", "retry": call, "target": "app/db"},
        )
        assert out.success and (out.strategy, out.level) == ("restart_subtree", 4)
        assert out.value > first
        kinds = [e.kind for e in system.events() if e.path == "reporting"]
        assert kinds[0] == "failure" and kinds[-1] == "recovered"
        rows = wait_for(lambda: [h for h in system.history() if h["path"] == "reporting"])
        assert {(h["level"], h["strategy"], h["success"]) for h in rows} >= {
            (4, "restart_subtree", 1)
        }
        found = system.insights()
        assert any(
            (e.level, e.strategy, e.success_rate) == (4, "restart_subtree", 1.0)
            for e in found.effectiveness
        )


@pytest.mark.parametrize(
    ("context", "named"),
    [
        ({"servce": "x"}, "servce"),
        ({"service": ""}, "service"),
        ({"retry": 3}, "retry"),
        ({"fallback": "cached"}, "fallback"),
        ({"timeout": -1}, "timeout"),
        ({"target": 5}, "target"),
    ],
)
def test_a_bad_context_names_the_key(context: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        quick().handle_error_sync(ConnectionError("x"), context)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["service", "operation", "retry", "timeout", "target", "other"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=5), st.floats(allow_nan=True)),
        max_size=4,
    )
)
def test_any_context_is_either_accepted_or_refused_with_a_named_key(ctx: dict[str, Any]) -> None:
    recovery = Recovery(tries={1: 0, 2: 0}, seed=0)
    try:
        out = recovery.handle_error_sync(ConnectionError("refused"), ctx)
    except ValueError as exc:
        assert any(repr(k) in str(exc) for k in ctx)
    else:
        assert not out.success and out.attempts == 0


def test_level_5_asks_the_system_for_its_measures(tmp_path: Any) -> None:
    tree = Supervisor("app", children=[Child("db", Worker, levels=FAST)])
    with start(tree) as system:
        recovery = quick(system=system, tries={4: 0})  # no subtree restart: straight to 5
        out = recovery.handle_error_sync(
            ConnectionError("stale connection pool"),
            {"service": "reporting", "target": "app/db"},
        )
        assert not out.success and (out.strategy, out.level) == ("restart_tree", 5)
        seen = [(e.kind, e.path, e.level) for e in system.events()]
        assert (
            seen.index(("failure", "reporting", 1))
            < seen.index(("recovery-request", "app/db", 5))
            < seen.index(("restart-tree", "app", 5))
        )
        assert seen[-1] == ("unrecovered", "reporting", 5)  # the request worked; nothing re-ran
