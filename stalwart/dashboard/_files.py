"""The page's static files, shipped inside the package (no build step)."""

from __future__ import annotations

import re
from importlib import resources

TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}
_NAME = re.compile(r"[\w-]+\.(html|js|css|svg)")
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none';"
    " form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def static_file(url_path: str) -> tuple[str, bytes] | None:
    """``(content type, bytes)`` for ``/`` (the page) and ``/dashboard/<file>``, else None."""
    if url_path in ("/", "/dashboard", "/dashboard/"):
        name = "index.html"
    elif url_path.startswith("/dashboard/"):
        name = url_path[len("/dashboard/") :]
    else:
        return None
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    item = resources.files(__package__).joinpath("static", name)
    if not item.is_file():
        return None
    return TYPES[match.group(1)], item.read_bytes()
