import asyncio
import errno
import http.server
import socket
import sqlite3
import threading
import urllib.error
import urllib.request

import msgspec
import pytest

from stalwart.strategies import (
    Classifier,
    ErrorCategory,
    Severity,
    Verdict,
    classify,
    normalise_message,
)

C = ErrorCategory


def raised(fn):
    try:
        fn()
    except BaseException as exc:  # the point is to capture whatever it raises
        return exc
    raise AssertionError("expected an exception")


@pytest.fixture(scope="module")
def http_status_server():
    """A loopback HTTP server answering /<status> with that status (and Retry-After on 429)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status = int(self.path.strip("/"))
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "7")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def refused_connection():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens on it now
    return raised(lambda: socket.create_connection(("127.0.0.1", port), timeout=2))


def locked_database(tmp_path):
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("create table t (x)")
    holder.execute("begin exclusive")
    other = sqlite3.connect(path, timeout=0)
    exc = raised(lambda: other.execute("insert into t values (1)"))
    holder.execute("rollback")
    holder.close()
    other.close()
    return exc


def asyncio_timeout():
    async def slow():
        await asyncio.wait_for(asyncio.sleep(5), 0.01)

    return raised(lambda: asyncio.run(slow()))


def memory_guard():
    return raised(lambda: bytearray(1 << 62))  # refused by the allocator at once


def http_error(base, status):
    return raised(lambda: urllib.request.urlopen(f"{base}/{status}", timeout=5))


def test_classification_table_with_real_exceptions(tmp_path, http_status_server):
    base = http_status_server
    table = [
        (refused_connection(), C.CONNECTION, True),
        (asyncio_timeout(), C.TIMEOUT, True),
        (http_error(base, 504), C.TIMEOUT, True),
        (http_error(base, 429), C.RATE_LIMIT, True),
        (http_error(base, 401), C.AUTHENTICATION, True),
        (locked_database(tmp_path), C.DATABASE, True),
        (
            raised(lambda: sqlite3.connect(":memory:").execute("select * from missing")),
            C.DATABASE,
            True,
        ),
        (memory_guard(), C.RESOURCE_EXHAUSTION, True),
        (OSError(errno.EMFILE, "Too many open files"), C.RESOURCE_EXHAUSTION, True),
        (raised(lambda: __import__("stalwart_no_such_module")), C.CONFIGURATION, False),
        (
            raised(lambda: msgspec.json.decode(b'{"a": "x"}', type=dict[str, int])),
            C.VALIDATION,
            False,
        ),
        (http_error(base, 503), C.DEPENDENCY, True),
        (raised(lambda: {}["missing"]), C.VALIDATION, False),  # the message's data: final
        (type("WeirdThing", (Exception,), {})("???"), C.UNKNOWN, True),
    ]
    for exc, category, retryable in table:
        info = classify(exc)
        assert (info.category, info.retryable) == (category, retryable), (exc, info)


def test_integrity_errors_are_database_errors_that_retrying_does_not_fix():
    db = sqlite3.connect(":memory:")
    db.execute("create table t (x primary key)")
    db.execute("insert into t values (1)")
    info = classify(raised(lambda: db.execute("insert into t values (1)")))
    assert (info.category, info.retryable) == (C.DATABASE, False)


def test_status_and_retry_after_are_read_from_the_exception(http_status_server):
    info = classify(http_error(http_status_server, 429))
    assert info.status == 429
    assert info.retry_after_s == 7.0


def test_status_codes_and_patterns_in_plain_messages():
    assert classify(RuntimeError("upstream said HTTP 503")).category is C.DEPENDENCY
    assert classify(RuntimeError("429 Too Many Requests")).category is C.RATE_LIMIT
    assert classify(RuntimeError("token expired for user 12")).category is C.AUTHENTICATION
    assert classify(RuntimeError("please retry after 3 seconds, rate limited")).retry_after_s == 3


def test_memory_errors_are_critical():
    assert classify(memory_guard()).severity is Severity.CRITICAL


def test_fingerprint_groups_the_same_error_with_different_ids():
    def fetch(order_id):
        raise LookupError(f"order {order_id} at 0x7f3a22 not found for 'alice'")

    a = classify(raised(lambda: fetch(17)))
    b = classify(raised(lambda: fetch(90210)))
    assert a.fingerprint == b.fingerprint
    assert "fetch" in a.origin


def test_fingerprint_differs_by_type_and_by_raising_place():
    def one():
        raise ValueError("bad")

    def two():
        raise ValueError("bad")

    assert classify(raised(one)).fingerprint != classify(raised(two)).fingerprint
    assert classify(ValueError("x")).fingerprint != classify(TypeError("x")).fingerprint


def test_normalisation_replaces_volatile_parts():
    text = "conn 10.0.0.7:5432 id 3fa85f64-5717-4562-b3fc-2c963f66afa6 took 12.5ms 'x'"
    assert normalise_message(text) == "conn <ip> id <uuid> took <n> <str>"


def test_user_rules_come_first_and_can_be_removed():
    classifier = Classifier()

    class PaymentDeclined(Exception):
        pass

    @classifier.register
    def payments(exc):
        if isinstance(exc, PaymentDeclined):
            return Verdict(C.DEPENDENCY, Severity.LOW, False)
        return None

    info = classifier.classify(PaymentDeclined("card 4242 declined"))
    assert (info.category, info.severity, info.retryable) == (C.DEPENDENCY, Severity.LOW, False)
    classifier.unregister(payments)
    assert classifier.classify(PaymentDeclined("card declined")).category is C.UNKNOWN


@pytest.mark.parametrize(
    "text", ["timed out", "connection refused", "database is locked", "HTTP 503", "rate limit"]
)
def test_bad_input_stays_bad_input_whatever_its_message_says(text):
    for exc in (ValueError(text), TypeError(text), UnicodeError(text)):
        info = classify(exc)
        assert (info.category, info.retryable) == (C.VALIDATION, False), exc
    # a type that says nothing of its own is refined by the message
    assert classify(RuntimeError(text)).category != C.VALIDATION
    assert classify(RuntimeError(text)).retryable
