"""The engine's one stderr logger: every thread's log lines go through one lock.

Capture threads, the inference thread, sink threads and the status line all print to
stderr; :data:`LOCK` serialises them, so a line is never split by another thread's.
"""

from __future__ import annotations

import sys
import threading

LOCK = threading.Lock()
"""Held while a line (or the status line) is written to stderr."""


def stderr_log(message: str) -> None:
    """Print one line to stderr, whole, whatever other threads print meanwhile."""
    with LOCK:
        print(message, file=sys.stderr, flush=True)


__all__ = ["LOCK", "stderr_log"]
