"""Log records as they travel from an actor process to the owner's: pure functions.

One record is one JSON message. What it says arrives as it was said (level, logger,
message, traceback, where it was made, the actor's path); what JSON would change goes
as text. Records of Thespian are renamed ``stalwart.thespian``, below WARNING at DEBUG.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import msgspec
import thespian

THESPIAN_LOGGER = "stalwart.thespian"
FIELD_MAX = 8_000  # characters of a message, a traceback or a stack sent at most
MESSAGE_MAX = 60_000  # bytes of one encoded record at most (what the channel reads at once)
_THESPIAN_DIR = os.path.dirname(os.path.abspath(thespian.__file__)) + os.sep
_PLAIN = (str, int, float, bool, type(None))
_NOT_SENT = frozenset({"msg", "args", "exc_info", "exc_text", "stack_info", "message", "asctime"})
_FORMATTER = logging.Formatter()


def thespian_threshold(level: int) -> int:
    """The lowest level of a Thespian record worth sending when ``stalwart.thespian`` is at
    ``level``: below WARNING they all arrive at DEBUG."""
    return logging.DEBUG if level <= logging.DEBUG else max(level, logging.WARNING)


def is_thespian(record: logging.LogRecord) -> bool:
    """True for a record Thespian made (its loggers, or its code on the root logger)."""
    return record.name.startswith("Thespian") or record.pathname.startswith(_THESPIAN_DIR)


def relabel(record: logging.LogRecord) -> None:
    """Rename a record of Thespian ``stalwart.thespian``; below WARNING, at DEBUG."""
    record.thespian_logger = record.name
    record.name = THESPIAN_LOGGER
    if record.levelno < logging.WARNING:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"


def _short(text: str | None, limit: int = FIELD_MAX) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"... ({len(text) - limit} characters cut)"


def _plain(value: Any) -> bool:
    """A value JSON carries as itself (a float that is not a number would come back None)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, _PLAIN)


def _plain_args(args: Any) -> bool:
    if isinstance(args, tuple):
        return all(_plain(a) for a in args)
    if isinstance(args, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in args.items())
    return args is None


def _escaped(value: Any) -> Any:
    """``value`` with lone surrogates (text decoded from bytes) escaped: JSON has none."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, tuple):
        return tuple(_escaped(v) for v in value)
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    return value


def _json(fields: dict[str, Any], dropped: int) -> bytes:
    try:
        return msgspec.json.encode({"r": fields, "d": dropped})
    except UnicodeEncodeError:
        return msgspec.json.encode({"r": _escaped(fields), "d": dropped})


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__} whose repr failed>"


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format or argument: say what there was
        return f"{_repr(record.msg)} % {_repr(record.args)} (unformattable)"


def encode(record: logging.LogRecord, dropped: int = 0) -> bytes | None:
    """``record`` as one JSON message (``None``: too large even cut short).

    The message goes as its template and arguments when those are plain values (so
    handlers that group by template still can), else formatted; the exception and
    stack as text; any other attribute as itself if plain, else as its ``repr``.
    ``dropped``: how many records this process dropped since its last one got through.
    """
    fields: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key not in _NOT_SENT and not key.startswith("_"):
            fields[key] = value if _plain(value) else _short(_repr(value), 200)
    message = _message(record)
    if isinstance(record.msg, str) and _plain_args(record.args) and len(message) <= FIELD_MAX:
        fields["msg"], fields["args"] = record.msg, record.args
    else:
        fields["msg"], fields["args"] = _short(message), None
    exc_text = record.exc_text
    if not exc_text and record.exc_info:
        exc_text = _FORMATTER.formatException(record.exc_info)
    fields["exc_text"] = _short(exc_text)
    fields["stack_info"] = _short(record.stack_info)
    data = _json(fields, dropped)
    if len(data) <= MESSAGE_MAX:
        return data
    # too large: what says what happened, cut shorter, without the other attributes
    kept = ("name", "levelno", "pathname", "lineno", "funcName", "created", "process")
    shorter = {k: fields[k] for k in (*kept, "stalwart_path") if k in fields}
    shorter.update(msg=_short(message, 2_000), args=None, exc_text=_short(exc_text, 8_000))
    data = _json(shorter, dropped)
    return data if len(data) <= MESSAGE_MAX else None


def decode(data: bytes) -> tuple[logging.LogRecord | None, int]:
    """The record in a message of :func:`encode` (``None`` if it is not one), and the
    number of records its process dropped before it."""
    try:
        envelope = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None, 0
    if not isinstance(envelope, dict):
        return None, 0
    dropped = envelope.get("d")
    dropped = dropped if isinstance(dropped, int) and dropped > 0 else 0
    fields = envelope.get("r")
    if (
        not isinstance(fields, dict)
        or not isinstance(fields.get("name"), str)
        or not isinstance(fields.get("levelno"), int)
    ):
        return None, dropped
    # an attribute never shadows a method of LogRecord (getMessage...)
    fields = {k: v for k, v in fields.items() if not callable(getattr(logging.LogRecord, k, None))}
    if isinstance(fields.get("args"), list):
        fields["args"] = tuple(fields["args"])
    fields["levelname"] = logging.getLevelName(fields["levelno"])
    return logging.makeLogRecord(fields), dropped
