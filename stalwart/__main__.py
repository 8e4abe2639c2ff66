"""``python -m stalwart``: the command line."""

from .cli import main

raise SystemExit(main())
