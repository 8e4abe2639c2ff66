"""A live web dashboard for a running tree, served by the JSON API's server.

``system.serve_api()``, ``stalwart run TREE --serve PORT`` and ``stalwart serve``
serve it at ``/``: the live tree, the incident timeline, memory pressure, the
headline figures, and (with the API token) recovery actions. The page polls
``GET /api/dashboard``; its files ship inside the package.
"""

from ._files import PAGE_HEADERS, static_file
from ._snapshot import Snapshots, headline, with_breaker_badges
from ._timeline import Episode, Step, Timeline, error_groups

__all__ = [
    "PAGE_HEADERS",
    "Episode",
    "Snapshots",
    "Step",
    "Timeline",
    "error_groups",
    "headline",
    "static_file",
    "with_breaker_badges",
]
