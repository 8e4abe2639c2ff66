"""The system's state directory: every file Stalwart writes for a running tree lives there.

``start(state_dir=...)``, else ``$STALWART_STATE_DIR``, else ``.stalwart/`` in the
working directory. It is created private (mode 0700) and must belong to the user
running the tree: another user's folder is refused, a folder of ours that others
can read or write is made private. In it: ``queues/`` (the durable queues of
``QueueForLater``), ``checkpoints/`` (the actors' checkpoint files while the tree
runs), the final report, and the notes ``stalwart run`` leaves for the other
commands.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .spec import SpecError

ENV = "STALWART_STATE_DIR"
DEFAULT = ".stalwart"


def configured_state_dir(configured: str | None = None) -> Path:
    """The state directory ``configured`` names (or the default), as an absolute path."""
    return Path(configured or os.environ.get(ENV) or DEFAULT).absolute()


def private_dir(folder: Path, field: str = "state_dir") -> Path:
    """Create ``folder`` (and its parents) private to this user; SpecError naming ``field``
    if it cannot be, or if it is not ours."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError as exc:
        raise SpecError("start", field, f"cannot create {folder}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise SpecError("start", field, f"{folder} is not a folder")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise SpecError(
            "start", field, f"{folder} belongs to another user (uid {info.st_uid}): refused"
        )
    if info.st_mode & 0o077:
        try:
            folder.chmod(0o700)
        except OSError as exc:
            raise SpecError("start", field, f"cannot make {folder} private: {exc}") from None
    return folder


def state_dir(configured: str | None = None) -> Path:
    """The state directory, created private; SpecError naming ``state_dir`` if it cannot be."""
    return private_dir(configured_state_dir(configured))


def queue_file(queues: str, path: str) -> str:
    """The default file of the durable queue in front of ``path``, in the folder ``queues``
    (``a/b`` in ``a.b.db``: names hold no dots)."""
    return str(private_dir(Path(queues), "QueueForLater") / f"{path.replace('/', '.')}.db")
