"""The configuration reference, generated from the spec types themselves.

    python -m stalwart.cli._reference > docs/configuration.md

A test checks that the file in ``docs/`` is what this prints, so the reference
cannot drift from the code.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import msgspec

from ..memory import MemorySettings
from ..supervisors import Breaker, Child, LevelPolicy, Pool, Supervisor
from ..supervisors._options import SystemOptions
from ..supervisors.spec import Alternative, CachedReply, DefaultReply, QueueForLater
from ..telemetry import CorrelatorSettings

SECTIONS: list[tuple[str, Any, str]] = [
    ("Supervisor", Supervisor, "`[supervisor]` and every table with `children`"),
    ("Child", Child, "every table in `children` with an `actor`"),
    ("Pool", Pool, "every table in `children` with a `template` (an actor or supervisor table)"),
    ("LevelPolicy", LevelPolicy, "`levels = { ... }` of a supervisor or child"),
    ("Breaker", Breaker, "`breaker = { ... }` of a child"),
    ("CachedReply", CachedReply, 'a fallback: `{ kind = "cachedreply", ... }`'),
    ("Alternative", Alternative, 'a fallback: `{ kind = "alternative", ... }`'),
    ("DefaultReply", DefaultReply, 'a fallback: `{ kind = "defaultreply", ... }`'),
    ("QueueForLater", QueueForLater, 'a fallback: `{ kind = "queueforlater", ... }`'),
    ("start() options", SystemOptions, "the `[system]` table, or `start(tree, **options)`"),
    ("CorrelatorSettings", CorrelatorSettings, "`correlator = { ... }` in `[system]`"),
    ("MemorySettings", MemorySettings, "`memory = { ... }` in `[system]`"),
]


def _type(t: Any) -> str:
    text = str(t).replace("typing.", "").replace("collections.abc.", "")
    text = text.replace("stalwart.supervisors.spec.", "").replace("stalwart.supervisors._pool.", "")
    text = text.replace("stalwart.strategies._backoff.", "").replace("NoneType", "None")
    text = text.replace("<class '", "").replace("'>", "")
    text = text if len(text) < 60 else text.split("[", 1)[0] + "[...]"
    return text.replace("|", "\\|")


def _default(f: Any) -> str:
    if f.default is not msgspec.NODEFAULT:
        return f"`{f.default!r}`"
    if f.default_factory is not msgspec.NODEFAULT:
        value = f.default_factory()
        return "(see its section)" if isinstance(value, msgspec.Struct) else f"`{value!r}`"
    return "required"


def reference_markdown() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Every setting of a tree and of `start()`, as in Python and in a TOML tree file (see",
        "[the CLI guide](cli.md)). Generated from the spec types by",
        "`python -m stalwart.cli._reference`; a test keeps it in step with the code.",
    ]
    for title, cls, where in SECTIONS:
        doc = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", inspect.cleandoc(cls.__doc__ or ""))
        doc = doc.replace("``", "`")
        lines += ["", f"## {title}", "", f"Where: {where}.", "", doc, ""]
        lines += ["| field | type | default |", "| --- | --- | --- |"]
        for f in msgspec.structs.fields(cls):
            lines.append(f"| `{f.name}` | {_type(f.type)} | {_default(f)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
