"""The video hand-off between capture and inference: :class:`Mailbox`.

One slot between a video capture thread and the inference thread. Live runs want the
newest frame, not a growing backlog: ``put`` replaces an unconsumed frame (counted in
``dropped``). Offline runs (``lossless=True``) want every frame: ``put`` waits until
inference took the previous one.
"""

from __future__ import annotations

import threading


class Mailbox:
    """A one-slot hand-off: latest wins (live) or wait-for-slot (offline).

    lossless: False (live): ``put`` never blocks; an item not yet taken is replaced
        and counted in :attr:`dropped`. True (``--no-realtime``): ``put`` blocks until
        the slot is free, so nothing is dropped.
    """

    def __init__(self, lossless: bool = False):
        self.lossless = lossless
        self._cond = threading.Condition()
        self._item = None
        self._full = False
        self._closed = False
        self.put_count = 0
        """Items accepted by put (stored or replacing an older one)."""
        self.dropped = 0
        """Items replaced before anyone took them (live mode only)."""

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item, timeout: float | None = None) -> bool:
        """Offer ``item``; returns False when the mailbox is closed (item discarded).

        timeout: lossless mode only, the longest wait for a free slot in seconds
            (None: until free or closed); False is returned when it runs out.
        """
        with self._cond:
            if self.lossless:
                if not self._cond.wait_for(lambda: not self._full or self._closed, timeout):
                    return False
            if self._closed:
                return False
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            self.put_count += 1
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None):
        """Take the item; None on timeout, or when closed and empty.

        An item put before :meth:`close` is still handed out (the last frame of a file).
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._closed, timeout):
                return None
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            self._cond.notify_all()  # a lossless producer waits for the free slot
            return item

    def empty(self) -> bool:
        """True when no item waits in the slot."""
        return not self._full

    def close(self) -> None:
        """No more items: wakes every waiting put (→ False) and get (→ None once empty)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
