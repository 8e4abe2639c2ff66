"""Fuzz: the HTTP API (``System.serve_api``), spoken to over a raw socket.

Hypothesis writes requests with random methods, targets (every endpoint, random
segments, numbers, percent-encodings, query strings), headers (Host, Origin,
Authorization, Content-Length good, bad or twice, Transfer-Encoding...) and bodies
(random bytes, JSON of any shape), some cut off midway or with a malformed request line.
The client half-closes after sending, so the server never waits for more.

Property: a complete request gets exactly one complete HTTP answer (more only if it
sent bytes beyond its body, which are the next request); one cut off midway, or whose
first line is empty (no request line: http.server reads no request), gets one or none
(the connection closed); a POST whose body stops short of its Content-Length is not
acted on (4xx); every status is below 500; error bodies are JSON whose
``error`` says what was wrong and shows no traceback; a HEAD answer has no body; and
after all that the server still answers a plain GET.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import socket
import string
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stalwart import Child, StalwartError, Supervisor, start
from tests.fuzz import EXAMPLES
from tests.support import FAST, Work, Worker
from tests.telemetry.test_api import call, raw_request

TOKEN = "fuzz-t0ken"
ANSWER_S = 5.0
ENDPOINTS = [
    "/api/errors",
    "/api/errors/1",
    "/api/errors/1/resolve",
    "/api/recovery/metrics",
    "/api/recovery/history",
    "/api/recovery/reset",
    "/api/recovery/request",
    "/api/diagnostics",
    "/api/insights",
    "/api/dashboard",
    "/metrics",
    "/",
    "/dashboard",
    "/dashboard/dashboard.js",
]
POSTS = ("/api/errors/1/resolve", "/api/recovery/reset", "/api/recovery/request")
QUERY_KEYS = ["status", "path", "category", "limit", "window_s", "since", "active", "episodes"]
NUMBERS = st.sampled_from(
    ["0", "-1", "1", "18446744073709551616", "1e999", "-inf", "inf", "nan", "1.5", "0x10", "²"]
) | st.integers().map(str)
TEXT = st.text(max_size=12)

# -- the parts of a request ----------------------------------------------------------------------

METHODS = st.sampled_from(
    ["GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get"]
) | st.text(string.ascii_letters + "-_!#$", min_size=1, max_size=8)
SEGMENT = (
    st.text(string.ascii_letters + string.digits + "-._~", max_size=10)
    | NUMBERS
    | st.binary(max_size=6).map(lambda b: quote(b, safe=""))  # percent-encodings
    | st.sampled_from(["..", ".", "%", "%zz", "%00", "\u00e9", "\u2603", ";x", ""])
)


@st.composite
def targets(draw):
    kind = draw(st.sampled_from(["endpoint", "endpoint", "id", "random", "odd"]))
    if kind == "endpoint":
        path = draw(st.sampled_from(ENDPOINTS))
    elif kind == "id":
        number = draw(NUMBERS | st.just("9" * 30))
        path = draw(st.sampled_from(["/api/errors/{}", "/api/errors/{}/resolve"])).format(number)
    elif kind == "random":
        path = "/" + "/".join(draw(st.lists(SEGMENT, max_size=4)))
        if draw(st.booleans()):
            path = draw(st.sampled_from(["/api/", "/dashboard/", "/api/errors/"])) + path[1:]
    else:
        path = draw(
            st.sampled_from(
                [
                    "*",
                    "http://evil.example/api/errors",
                    "http://127.0.0.1/api/errors",
                    "http://[::1/api/errors",
                    "//api/errors",
                    "/api/errors#frag",
                    "/" + "a" * 70_000,  # longer than a request line may be
                ]
            )
        )
    if draw(st.booleans()):
        pairs = draw(
            st.lists(
                st.tuples(st.sampled_from(QUERY_KEYS) | TEXT, NUMBERS | TEXT | st.just("")),
                max_size=4,
            )
        )
        encode = draw(st.booleans())
        path += "?" + "&".join(
            f"{quote(k) if encode else k}={quote(v) if encode else v}" for k, v in pairs
        )
    return path


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
BODY_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "by": TEXT | st.integers(),
        "path": st.sampled_from(["s", "s/w", "_system/telemetry", "s/ghost", "", None]) | TEXT,
        "level": st.integers(-2, 7) | TEXT,
        "reason": TEXT,
        "extra": JSON,
    },
)
BODIES = (
    st.just(b"")
    | st.binary(max_size=40)
    | JSON.map(lambda v: json.dumps(v).encode())
    | BODY_FIELDS.map(lambda v: json.dumps(v).encode())
)


def hosts(port):
    good = [f"127.0.0.1:{port}", "localhost", f"[::1]:{port}", "127.0.0.1"]
    bad = ["evil.example", f"evil.example:{port}", "", "[::1", "\u00e9", "127.0.0.1:x:y"]
    return st.sampled_from(good) | st.sampled_from(bad) | TEXT


@st.composite
def requests(draw, port):
    """``(raw bytes, complete, clean)``: ``complete`` unless cut off midway; ``clean`` when
    nothing follows the request (no bytes beyond its body)."""
    method = draw(METHODS)
    target = draw(targets())
    if draw(st.integers(0, 9)) == 0 and method in ("GET", "POST"):  # (a POST endpoint, mostly)
        target = draw(st.sampled_from(POSTS))
    version = draw(
        st.sampled_from(["HTTP/1.1"] * 8 + ["HTTP/1.0", "HTTP/2.0", "HTTP/0.9", "HTTP/1.1x", ""])
    )
    line = " ".join(p for p in (method, target, version) if p)
    if draw(st.integers(0, 14)) == 0:  # a malformed request line
        line = draw(
            st.sampled_from(["", "GARBAGE", f"GET {target} HTTP/1.1 extra", "GET  HTTP/1.1"])
            | TEXT.filter(lambda t: "\r" not in t and "\n" not in t)
        )
    body = draw(BODIES) if method in ("POST", "PUT", "PATCH") or draw(st.booleans()) else b""
    headers = []
    if draw(st.integers(0, 5)):
        headers.append(("Host", draw(hosts(port))))
    if draw(st.integers(0, 9)) == 0:
        headers.append(("Host", draw(hosts(port))))  # twice
    if draw(st.integers(0, 4)) == 0:
        headers.append(
            (
                "Origin",
                draw(
                    st.sampled_from(
                        [f"http://127.0.0.1:{port}", "null", "http://evil.example", "http://[::1"]
                    )
                    | TEXT
                ),
            )
        )
    auth = draw(st.integers(0, 5))
    if auth in (1, 2, 3):
        headers.append(("Authorization", f"Bearer {TOKEN}"))
    elif auth == 4:
        token = draw(TEXT | st.just("") | st.text(st.characters(min_codepoint=128), max_size=4))
        scheme = draw(st.sampled_from(["Bearer ", "bearer ", "Basic ", ""]))
        headers.append(("Authorization", scheme + token))
    elif auth == 5:
        headers.append(("X-Stalwart-Token", draw(st.sampled_from([TOKEN, "", "wrong"]))))
    clean = True
    length = draw(st.sampled_from(["right"] * 5 + ["none", "off", "bad", "twice"]))
    if length == "right" and (body or draw(st.booleans())):
        headers.append(("Content-Length", str(len(body))))
    elif length == "none":
        clean = not body  # (the body is the next request)
    elif length == "off":
        off = draw(st.integers(-len(body), 100))
        headers.append(("Content-Length", str(len(body) + off)))
        clean = off >= 0
    elif length == "bad":
        value = draw(
            st.sampled_from(["-1", "abc", "", "²", "+2", "0x10", "99999999999999999999", " 3 "])
        )
        headers.append(("Content-Length", value))
        clean = False  # (whether the body is read depends on the value)
    elif length == "twice":
        headers += [("Content-Length", str(len(body))), ("Content-Length", str(len(body) + 1))]
    if draw(st.integers(0, 14)) == 0:
        headers.append(("Transfer-Encoding", "chunked"))
        clean = False
    if draw(st.integers(0, 9)) == 0:
        headers.append(("Connection", draw(st.sampled_from(["close", "keep-alive", "x"]))))
    if draw(st.integers(0, 14)) == 0:
        headers.append(("Expect", "100-continue"))
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.text(string.ascii_letters + "-", min_size=1, max_size=10))
        headers.append((name, draw(TEXT.filter(lambda t: "\r" not in t and "\n" not in t))))
    if draw(st.integers(0, 29)) == 0:
        headers.append(("X-Long", "y" * 70_000))  # longer than a header line may be
    headers = draw(st.permutations(headers))
    head = line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    raw = head.encode("utf-8") + body
    complete = True
    if draw(st.integers(0, 7)) == 0:  # cut off midway
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
        complete = False
    return raw, complete, clean


def sent(text, complete=True):
    """An explicit example: ``text`` (latin-1) as sent, complete or cut off."""
    return text.encode("latin-1"), complete, True


# -- talking to the server -------------------------------------------------------------------------


def exchange(server, raw):
    """Send ``raw``, half-close, and read everything until the server closes."""
    with socket.create_connection((server.host, server.port), timeout=ANSWER_S) as s:
        try:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # it answered (a refusal) and closed its side before taking everything
            pass
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:  # (reset: the answer may be lost, and is missed below)
            pass
    return data


class _Kept(io.BytesIO):
    def close(self):  # (http.client closes it after each answer: what follows is kept)
        pass


class _Bytes:
    """What was received, as a socket for ``http.client.HTTPResponse``."""

    def __init__(self, data):
        self.file = _Kept(data)

    def makefile(self, *args, **kwargs):
        return self.file


def answers(data, head):
    """The answers in ``data``, ``(status, headers, body)``; raises if one is incomplete or
    malformed (bytes after them included). ``head``: the first answers a HEAD request."""
    found = []
    source = _Bytes(data)
    while source.file.tell() < len(data):
        method = "HEAD" if head and not found else "GET"
        response = http.client.HTTPResponse(source, method=method)  # (skips 100 Continue)
        response.begin()
        body = response.read()
        if response.length:  # (http.client reads what there is: Content-Length must hold)
            raise AssertionError(f"answer cut short: {response.length} bytes missing")
        found.append((response.status, response.headers, body))
    return found


def served_as_head(raw):
    """True if the server takes ``raw`` for a HEAD request (answered without a body)."""
    line = raw.split(b"\n", 1)[0]
    words = line.decode("latin-1").rstrip("\r\n").split()
    return (
        len(line) <= 65536
        and len(words) == 3
        and words[0] == "HEAD"
        and re.fullmatch(r"HTTP/0*1\.[0-9]{1,10}", words[2]) is not None
    )


def short_post(raw):
    """True for a POST whose body stops before its Content-Length (a single valid one)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = [line.partition(":") for line in lines[1:]]
    lengths = [value.strip() for name, _, value in fields if name == "Content-Length"]
    return (
        bool(sep)
        and lines[0].startswith("POST ")
        and len(lengths) == 1
        and re.fullmatch("[0-9]+", lengths[0]) is not None
        and len(body) < int(lengths[0])
    )


def check_answer(status, headers, body, head):
    assert status < 500, (status, body[:300])
    if head:
        assert body == b""
        return
    if status < 400:
        if headers.get_content_type() == "application/json":
            json.loads(body)
        return
    assert headers.get_content_type() == "application/json", headers
    payload = json.loads(body)
    text = payload["error"]
    assert isinstance(text, str) and text and payload["status"] == status, payload
    assert "Traceback" not in text and 'File "' not in text, text
    if "field" in payload:
        assert payload["field"] in text, payload
    expected = {
        401: ["token"],
        403: ["allowed_hosts"],
        404: ["no endpoint", "no error #"],
        405: ["is not allowed on"],
        409: ["already resolved"],
        411: ["Transfer-Encoding"],
        413: ["bytes"],
        414: ["URI"],
        431: ["Line too long", "Too many headers"],
    }.get(status)
    if expected is not None:
        assert any(words in text for words in expected), payload
    if status == 405:
        assert headers["Allow"], headers


def test_every_request_gets_one_whole_answer_below_500_and_the_server_keeps_serving():
    tree = Supervisor("s", children=[Child("w", Worker, levels=FAST)])
    with start(tree) as system:
        system.ask("s/w", Work(1, fail_times=1, error="connection"), timeout=10)
        with pytest.raises(StalwartError):
            system.ask("s/w", Work(2, fail_times=-1, error="runtime"), timeout=10)
        system.flush()  # (two errors in the store: ids 1 and 2)
        with system.serve_api(token=TOKEN) as server:
            host = f"Host: 127.0.0.1:{server.port}\r\n"
            auth = f"Authorization: Bearer {TOKEN}\r\n"

            @settings(max_examples=EXAMPLES, deadline=None)
            @given(requests(server.port))
            # unknown methods got http.server's 501, in HTML
            @example(sent(f"OPTIONS /api/errors HTTP/1.1\r\n{host}\r\n"))
            @example(sent(f"BREW /api/errors HTTP/1.1\r\n{host}\r\n"))
            # a version after HTTP/1.x: 505, in HTML
            @example(sent(f"GET /api/errors HTTP/2.0\r\n{host}\r\n"))
            # HTTP/0.9 (no version, or 0.x): answers without a status line
            @example(sent("GET /api/errors\r\n\r\n"))
            @example(sent("GET /api/errors HTTP/0.9\r\n\r\n"))
            @example(sent("GET /api/errors? = HTTP/0.9\r\n\r\n"))  # (4 words, then 0.9)
            @example(sent("GARBAGE\r\n\r\n"))
            # a request line or a header line too long: 414 and 431, in HTML
            @example(sent(f"GET /{'a' * 70_000} HTTP/1.1\r\n\r\n"))
            @example(sent(f"GET / HTTP/1.1\r\nX: {'y' * 70_000}\r\n\r\n"))
            # an Origin urlsplit cannot read: 500
            @example(sent("GET / HTTP/1.1\r\nOrigin: http://[::1\r\n\r\n"))
            # nor an absolute target: no answer at all (the handler raised)
            @example(sent("GET http://[::1/api/errors HTTP/1.1\r\n\r\n"))
            # "\u00b2" is a digit to str.isdigit, not to int(): 500
            @example(sent(f"POST /api/recovery/reset HTTP/1.1\r\n{auth}Content-Length: \u00b2\r\n"))
            # a HEAD answer went out with a body
            @example(sent(f"HEAD /api/errors HTTP/1.1\r\n{host}\r\n"))
            # a body left unread (no token; a GET) was taken for the next request
            @example(sent("POST /api/recovery/reset HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"))
            @example(sent("GET /api/errors HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"))
            # chunked: read as no body, and the chunks as the next request
            @example(
                sent(
                    f"POST /api/recovery/reset HTTP/1.1\r\n{auth}Transfer-Encoding: chunked\r\n"
                    "\r\n2\r\n{}\r\n0\r\n\r\n"
                )
            )
            # a second Host was not looked at (nor a second Content-Length)
            @example(sent(f"GET /api/errors HTTP/1.1\r\n{host}Host: evil\r\n\r\n"))
            # a line that is not a header hid those after it: the body was the next request
            @example(sent("POST /api/errors HTTP/1.1\r\nOrigin: \r\r\nContent-Length: 1\r\n\r\n\0"))
            @example(sent("GET / HTTP/1.1\r\nJunk\r\nContent-Length: 5\r\n\r\nGET /"))
            # a body shorter than its Content-Length was acted on
            @example(
                sent(
                    f"POST /api/recovery/reset HTTP/1.1\r\n{auth}Content-Length: 9\r\n\r\n{{}}",
                    complete=False,
                )
            )
            def one_request(request):
                raw, complete, clean = request
                data = exchange(server, raw)
                if not data and (not complete or raw.split(b"\n", 1)[0].strip() == b""):
                    return  # cut off, or an empty first line: closed without an answer
                head = served_as_head(raw)
                found = answers(data, head)
                assert found, data[:300]
                if complete and clean:
                    assert len(found) == 1, [(s, b[:100]) for s, _, b in found]
                check_answer(*found[0], head)
                if short_post(raw):  # the client stopped sending: not acted on
                    assert found[0][0] >= 400, found[0]
                for status, _, _ in found[1:]:
                    assert status < 500, found

            one_request()
            status, errors = call(f"{server.url}/api/errors")
            assert status == 200 and isinstance(errors, list)
            status, _, _ = raw_request(server, f"GET /api/errors HTTP/1.1\r\n{host}".encode())
            assert status == 200
