"""Whether a process of this host still runs: asked by whoever must tell a dead writer or run
from a live one (the lake's temporary files, the dead-run check). Free of Dagster, so the
extract code that cleans leftovers imports nothing heavy."""

from __future__ import annotations

import os
from pathlib import Path


def process_is_running(pid: int) -> bool:
    """Whether process `pid` of this host exists and has not exited.

    A process that has exited but is not yet reaped by its parent (a zombie) still answers
    signal 0, so Linux's /proc is asked for its state too.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): signal 0 is all there is to ask
    return state not in ("Z", "X")
