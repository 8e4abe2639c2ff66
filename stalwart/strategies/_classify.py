"""Error classification: what kind of failure an exception is, and its fingerprint.

:func:`classify` answers an :class:`ErrorInfo` (category, severity, whether a
retry may help, a stable fingerprint). Rules are tried in order: user rules
(newest first), then the category the exception's class declares as
``error_category``, the exception type, bad-input types (``ValueError``,
``TypeError``, ``LookupError`` such as ``KeyError``, ``UnicodeError``, msgspec's
``ValidationError``: bad input whatever their message says), HTTP-like status
codes found on the exception or in its message, message patterns, and finally
broad type families. So a message's words only refine an error whose type does not
say what it is.
"""

from __future__ import annotations

import errno
import hashlib
import re
import sqlite3
from collections.abc import Callable
from enum import IntEnum, StrEnum

import msgspec


class ErrorCategory(StrEnum):
    """Broad kinds of failure; recovery strategies are chosen per category."""

    CONNECTION = "connection"
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    AUTHENTICATION = "authentication"
    DATABASE = "database"
    RESOURCE_EXHAUSTION = "resource_exhaustion"
    CONFIGURATION = "configuration"
    VALIDATION = "validation"
    DEPENDENCY = "dependency"
    CRASH = "crash"
    UNKNOWN = "unknown"


class Severity(IntEnum):
    """How bad a failure is, LOW to CRITICAL."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class ErrorInfo(msgspec.Struct, frozen=True):
    """The classification of one error occurrence."""

    category: ErrorCategory
    severity: Severity
    fingerprint: str
    retryable: bool
    error_type: str = ""
    message: str = ""
    status: int | None = None
    retry_after_s: float | None = None
    origin: str = ""


class Verdict(msgspec.Struct, frozen=True):
    """What a rule decides; unset severity/retryable take the category's defaults."""

    category: ErrorCategory
    severity: Severity | None = None
    retryable: bool | None = None


Rule = Callable[[BaseException], "Verdict | ErrorCategory | None"]

_DEFAULTS: dict[ErrorCategory, tuple[Severity, bool]] = {
    ErrorCategory.CONNECTION: (Severity.MEDIUM, True),
    ErrorCategory.TIMEOUT: (Severity.MEDIUM, True),
    ErrorCategory.RATE_LIMIT: (Severity.LOW, True),
    ErrorCategory.AUTHENTICATION: (Severity.HIGH, True),
    ErrorCategory.DATABASE: (Severity.MEDIUM, True),
    ErrorCategory.RESOURCE_EXHAUSTION: (Severity.HIGH, True),
    ErrorCategory.CONFIGURATION: (Severity.HIGH, False),
    ErrorCategory.VALIDATION: (Severity.LOW, False),
    ErrorCategory.DEPENDENCY: (Severity.MEDIUM, True),
    ErrorCategory.CRASH: (Severity.HIGH, True),
    ErrorCategory.UNKNOWN: (Severity.MEDIUM, True),
}

C = ErrorCategory

_ERRNO = {
    errno.ECONNREFUSED: C.CONNECTION,
    errno.ECONNRESET: C.CONNECTION,
    errno.ECONNABORTED: C.CONNECTION,
    errno.EHOSTUNREACH: C.CONNECTION,
    errno.ENETUNREACH: C.CONNECTION,
    errno.ENETDOWN: C.CONNECTION,
    errno.EPIPE: C.CONNECTION,
    errno.ETIMEDOUT: C.TIMEOUT,
    errno.ENOSPC: C.RESOURCE_EXHAUSTION,
    errno.EMFILE: C.RESOURCE_EXHAUSTION,
    errno.ENFILE: C.RESOURCE_EXHAUSTION,
    errno.ENOMEM: C.RESOURCE_EXHAUSTION,
    errno.EDQUOT: C.RESOURCE_EXHAUSTION,
    errno.EAGAIN: C.RESOURCE_EXHAUSTION,
    errno.EACCES: C.CONFIGURATION,
    errno.EPERM: C.CONFIGURATION,
    errno.ENOENT: C.CONFIGURATION,
}

_STATUS = {
    401: C.AUTHENTICATION,
    403: C.AUTHENTICATION,
    407: C.AUTHENTICATION,
    408: C.TIMEOUT,
    429: C.RATE_LIMIT,
    504: C.TIMEOUT,
    500: C.DEPENDENCY,
    502: C.DEPENDENCY,
    503: C.DEPENDENCY,
}

_MESSAGE_PATTERNS: list[tuple[re.Pattern[str], ErrorCategory]] = [
    (re.compile(r"rate.?limit|too many requests|throttl|quota exceeded", re.I), C.RATE_LIMIT),
    (
        re.compile(r"out of memory|cannot allocate|no space left|too many open files", re.I),
        C.RESOURCE_EXHAUSTION,
    ),
    (
        re.compile(
            r"unauthori[sz]ed|forbidden|authenticat|token (has )?expired|invalid "
            r"(credentials|token)|permission denied",
            re.I,
        ),
        C.AUTHENTICATION,
    ),
    (re.compile(r"timed? ?out|deadline exceeded", re.I), C.TIMEOUT),
    (
        re.compile(
            r"connection (refused|reset|aborted|closed)|unreachable|broken pipe|"
            r"name or service not known|could not connect",
            re.I,
        ),
        C.CONNECTION,
    ),
    (re.compile(r"database|deadlock|locked|sql|no such table|constraint", re.I), C.DATABASE),
    (
        re.compile(
            r"service unavailable|bad gateway|upstream|dependency|circuit .* open|"
            r"\b(does|did)( not|n't) (answer|respond)|\bno (answer|response) from\b|"
            r"\bnot responding\b|\bcannot reach\b",
            re.I,
        ),
        C.DEPENDENCY,
    ),
    (
        re.compile(r"config|not configured|missing (setting|environment)|no module named", re.I),
        C.CONFIGURATION,
    ),
    (re.compile(r"invalid|malformed|validation|expected .* got", re.I), C.VALIDATION),
]

_STATUS_IN_MESSAGE = re.compile(
    r"(?:\b(?:http|status|status_code|code|error)\b[\s:=#]*([1-5]\d\d)\b)|(?:\b([45]\d\d)\s+[A-Z][a-z])"
)
_RETRY_AFTER_IN_MESSAGE = re.compile(r"retry[- ]after[\s:=]*(\d+(?:\.\d+)?)", re.I)

_NORMALISERS = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I), "<uuid>"),
    (re.compile(r"0x[0-9a-f]+", re.I), "<addr>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
    (re.compile(r"[\w.-]*\d[\w.-]*"), "<n>"),
]


def normalise_message(message: str) -> str:
    """The message with ids, numbers, addresses and quoted values replaced by placeholders."""
    for pattern, placeholder in _NORMALISERS:
        message = pattern.sub(placeholder, message)
    return message[:300]


def _origin(exc: BaseException) -> str:
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    module = tb.tb_frame.f_globals.get("__name__", "?")
    return f"{module}:{code.co_name}:{tb.tb_lineno}"


def _type_name(exc: BaseException) -> str:
    t = type(exc)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _status_of(exc: BaseException) -> int | None:
    for holder in (exc, getattr(exc, "response", None)):
        if holder is None:
            continue
        for attr in ("status_code", "status", "code", "http_status"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
                return value
    match = _STATUS_IN_MESSAGE.search(str(exc))
    if match:
        return int(match.group(1) or match.group(2))
    return None


def _retry_after_of(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    if value is None:
        for holder in (exc, getattr(exc, "response", None)):
            headers = getattr(holder, "headers", None)
            if headers is not None and hasattr(headers, "get"):
                value = headers.get("Retry-After") or headers.get("retry-after")
                if value is not None:
                    break
    if value is None:
        match = _RETRY_AFTER_IN_MESSAGE.search(str(exc))
        value = match.group(1) if match else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _db_error(exc: BaseException) -> Verdict | None:
    names = {k.__name__ for k in type(exc).__mro__}
    if isinstance(exc, sqlite3.Error) or "DatabaseError" in names or "InterfaceError" in names:
        if "IntegrityError" in names or "DataError" in names or "ProgrammingError" in names:
            return Verdict(C.DATABASE, Severity.MEDIUM, False)
        text = str(exc).lower()
        if "locked" in text or "busy" in text or "OperationalError" in names:
            return Verdict(C.DATABASE, Severity.MEDIUM, True)
        return Verdict(C.DATABASE)
    return None


def _declared(exc: BaseException) -> Verdict | ErrorCategory | None:
    """What the exception's class declares as ``error_category`` (an ErrorCategory), if any."""
    declared = getattr(type(exc), "error_category", None)
    if isinstance(declared, ErrorCategory):
        return declared
    if isinstance(declared, str) and declared in ErrorCategory.__members__.values():
        return ErrorCategory(declared)
    return None


def _specific_type(exc: BaseException) -> Verdict | ErrorCategory | None:
    if isinstance(exc, MemoryError):
        return Verdict(C.RESOURCE_EXHAUSTION, Severity.CRITICAL, True)
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return Verdict(C.CRASH, Severity.CRITICAL, False)
    if isinstance(exc, TimeoutError):
        return C.TIMEOUT
    if isinstance(exc, ConnectionError):
        return C.CONNECTION
    if isinstance(exc, OSError) and exc.errno in _ERRNO:
        return _ERRNO[exc.errno]
    if isinstance(exc, OSError) and type(exc).__name__ in ("gaierror", "herror"):
        return C.CONNECTION
    return _db_error(exc)


# a handler's KeyError or IndexError almost always comes from the message's own data (an
# unknown key, a missing field): retrying it cannot help (a user rule can say otherwise)
_BAD_INPUT = (ValueError, TypeError, LookupError, UnicodeError, msgspec.ValidationError)


def _bad_input(exc: BaseException) -> ErrorCategory | None:
    """Bad input stays bad input: ``ValueError("database is locked")`` is not an outage."""
    return C.VALIDATION if isinstance(exc, _BAD_INPUT) else None


def _status_rule(exc: BaseException) -> Verdict | ErrorCategory | None:
    status = _status_of(exc)
    if status is None:
        return None
    if status in _STATUS:
        return _STATUS[status]
    if 400 <= status < 500:
        return C.VALIDATION
    if status >= 500:
        return C.DEPENDENCY
    return None


def _message_rule(exc: BaseException) -> ErrorCategory | None:
    text = str(exc)
    if not text:
        return None
    for pattern, category in _MESSAGE_PATTERNS:
        if pattern.search(text):
            return category
    return None


def _broad_type(exc: BaseException) -> Verdict | ErrorCategory | None:
    if isinstance(exc, RecursionError):
        return Verdict(C.CRASH, Severity.HIGH, True)
    if isinstance(exc, (ImportError, NotImplementedError)):
        return C.CONFIGURATION
    if isinstance(exc, _BAD_INPUT):
        return C.VALIDATION
    if isinstance(exc, (AttributeError, NameError, ArithmeticError, AssertionError)):
        return C.CRASH
    if isinstance(exc, OSError):
        return C.DEPENDENCY
    return None


class Classifier:
    """An ordered set of classification rules; :func:`classify` uses a shared default one."""

    def __init__(self) -> None:
        self._user_rules: list[Rule] = []
        self._builtin_rules: list[Rule] = [
            _declared,
            _specific_type,
            _bad_input,
            _status_rule,
            _message_rule,
            _broad_type,
        ]

    def register(self, rule: Rule) -> Rule:
        """Add a rule (usable as a decorator); newer rules are tried first.

        A rule takes the exception and returns a :class:`Verdict`, an
        :class:`ErrorCategory`, or ``None`` to let the next rule decide.
        """
        self._user_rules.insert(0, rule)
        return rule

    def unregister(self, rule: Rule) -> None:
        """Remove a rule added with :meth:`register`."""
        self._user_rules.remove(rule)

    def classify(self, exc: BaseException) -> ErrorInfo:
        """Classify ``exc``."""
        verdict: Verdict | None = None
        for rule in (*self._user_rules, *self._builtin_rules):
            found = rule(exc)
            if found is not None:
                verdict = found if isinstance(found, Verdict) else Verdict(found)
                break
        if verdict is None:
            verdict = Verdict(C.UNKNOWN)
        severity, retryable = _DEFAULTS[verdict.category]
        if verdict.severity is not None:
            severity = verdict.severity
        if verdict.retryable is not None:
            retryable = verdict.retryable
        type_name = _type_name(exc)
        message = str(exc)
        origin = _origin(exc)
        return ErrorInfo(
            category=verdict.category,
            severity=severity,
            fingerprint=fingerprint_of(type_name, message, origin),
            retryable=retryable,
            error_type=type_name,
            message=message[:1000],
            status=_status_of(exc),
            retry_after_s=_retry_after_of(exc),
            origin=origin,
        )


def fingerprint_of(type_name: str, message: str, origin: str = "") -> str:
    """A short stable hash of the error type, its normalised message and where it was raised."""
    key = f"{type_name}|{normalise_message(message)}|{origin}".encode()
    return hashlib.blake2b(key, digest_size=8).hexdigest()


default_classifier = Classifier()


def classify(exc: BaseException) -> ErrorInfo:
    """Classify ``exc`` with the default classifier (see :class:`Classifier`)."""
    return default_classifier.classify(exc)


def register_rule(rule: Rule) -> Rule:
    """Add a rule to the default classifier (usable as a decorator); newest first."""
    return default_classifier.register(rule)
