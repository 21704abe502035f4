"""The audio hand-off between capture and inference: :class:`AudioRing`.

The last few seconds of audio, written by one audio thread or callback and read by
timestamp from the inference thread. The writer never waits: it copies into a
preallocated buffer and publishes counters afterwards; readers copy and then check that
the writer did not overwrite what they copied (retrying if it did), so no lock is shared
with an audio callback.
"""

from __future__ import annotations

import numpy as np

MIN_RING_SECONDS = 5.0
"""The product needs at least this much audio history (3 s windows plus slack)."""


class AudioRing:
    """Preallocated float32 ring of mono audio, addressed by media time.

    rate: sample rate in Hz.
    seconds: capacity in seconds (at least :data:`MIN_RING_SECONDS`).

    Timeline: after the anchor (the first write's ``t_media``, or :meth:`reset`), sample
    j is at media time ``t0 + j / rate``. Single writer (:meth:`write`, :meth:`retime`,
    :meth:`reset` from one thread or audio callback); any number of readers
    (:meth:`window`). The writer never blocks and never allocates buffers.

    How concurrent reads stay consistent (seqlock style, lock free): the writer first
    announces the region it is about to overwrite (``_claim``), copies, then publishes
    the new count (``_state``). Both are single tuples swapped in one assignment, so a
    reader sees either the old or the new value of each. A reader takes ``_state``,
    copies the samples it wants, then rereads ``_claim``: if the writer has claimed
    (or started overwriting) any position it copied, or reset the ring, it retries.
    """

    def __init__(self, rate: int, seconds: float = 10.0):
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if seconds < MIN_RING_SECONDS:
            raise ValueError(f"an AudioRing must hold at least {MIN_RING_SECONDS} s, got {seconds}")
        self.rate = int(rate)
        self.capacity = int(round(seconds * self.rate))
        self._buf = np.zeros(self.capacity, dtype=np.float32)
        # (epoch, t0, count): count = samples written since the anchor of this epoch
        self._state = (0, 0.0, 0)
        # (epoch, claimed): the writer may be overwriting positions of samples < claimed - capacity
        self._claim = (0, 0)
        self._anchored = False
        self.written = 0
        """Total samples written since construction (across resets; gap fill excluded)."""
        self.resets = 0
        """Discontinuities that restarted the timeline (reset() and backward/huge jumps)."""
        self.gap_samples = 0
        """Zeros written to fill forward gaps in the timeline."""
        self.read_retries = 0
        """Reads that had to retry because the writer overtook them (diagnostics)."""

    # ------------------------------------------------------------------ properties
    @property
    def seconds(self) -> float:
        return self.capacity / self.rate

    @property
    def end_time(self) -> float:
        """Media time just after the newest sample (the anchor time when empty)."""
        _, t0, count = self._state
        return t0 + count / self.rate

    @property
    def start_time(self) -> float:
        """Media time of the oldest sample still held."""
        _, t0, count = self._state
        return t0 + max(0, count - self.capacity) / self.rate

    @property
    def available(self) -> int:
        """Samples currently held (since the last discontinuity, at most capacity)."""
        return min(self._state[2], self.capacity)

    # --------------------------------------------------------------------- writer
    def write(self, samples: np.ndarray, t_media: float | None = None) -> None:
        """Append samples (copied; any float or int dtype, converted to float32).

        samples: (n,) mono block.
        t_media: media time of its first sample. Needed for the first block (else 0.0 is
            used) and after a discontinuity; None means "right after the previous block".
            When given and it is within half a sample of the current end, it is
            ignored (contiguous). A later time within the ring's capacity is a gap,
            filled with zeros so older history stays valid; an earlier time, or a gap
            longer than the ring, restarts the timeline (like :meth:`reset`).
        """
        x = samples if samples.ndim == 1 else samples.reshape(-1)
        if t_media is not None:
            if not self._anchored:
                self._set_anchor(t_media)
            else:
                epoch, t0, count = self._state
                gap = int(round((t_media - t0) * self.rate)) - count
                if gap < 0 or gap > self.capacity:
                    self.reset(t_media)
                elif gap > 0:
                    self._fill(None, gap)
                    self.gap_samples += gap
        elif not self._anchored:
            self._set_anchor(self._state[1])
        self._fill(x, len(x))
        self.written += len(x)

    def retime(self, t_next: float) -> None:
        """Shift the timeline, keeping the samples, so the next sample is at ``t_next``.

        For a device whose sample clock drifts from the engine clock (a microphone): the
        source measures the drift now and then and moves the timeline by it, instead of
        restarting the ring and losing its history.
        """
        epoch, _, count = self._state
        self._state = (epoch, t_next - count / self.rate, count)
        self._anchored = True

    def reset(self, t_media: float = 0.0) -> None:
        """Discard the contents; the next sample written is at media time ``t_media``."""
        epoch = self._state[0] + 1
        self._claim = (epoch, 0)  # first: a reader of the old epoch must fail its check
        self._state = (epoch, float(t_media), 0)
        self._anchored = True
        self.resets += 1

    def _set_anchor(self, t_media: float) -> None:
        epoch, _, count = self._state
        self._state = (epoch, float(t_media), count)
        self._anchored = True

    def _fill(self, x: np.ndarray | None, n: int) -> None:
        """Write x (or n zeros when x is None) at the end: claim, copy, publish."""
        if n <= 0:
            return
        epoch, t0, count = self._state
        cap = self.capacity
        new_count = count + n
        self._claim = (epoch, new_count)
        # Only the last `cap` samples of a long block can be kept.
        keep = min(n, cap)
        if x is not None:
            x = x[n - keep :]
        start = (new_count - keep) % cap
        first = min(keep, cap - start)
        buf = self._buf
        if x is None:
            buf[start : start + first] = 0.0
            buf[: keep - first] = 0.0
        else:
            buf[start : start + first] = x[:first]  # numpy casts to float32 in place
            buf[: keep - first] = x[first:]
        self._state = (epoch, t0, new_count)

    # --------------------------------------------------------------------- reader
    def window(self, t_end: float, n: int, out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """The up-to-n samples ending at media time ``t_end``: (float32 (k,), k).

        t_end: media time the window ends at (exclusive): the last sample returned is
            the one at ``t_end - 1/rate``, rounded like media.audio.audio_window.
        n: samples wanted; more than the capacity gives at most the capacity.
        out: optional float32 buffer of at least n samples to copy into (the result is
            a view of it), so a reader can avoid allocating per call.

        Fewer than n samples (k < n) come back while warming up: only what exists since
        the anchor, never anything older than the ring holds. When ``t_end`` lies beyond
        the newest sample (a live audio device delivers in blocks and may lag video a
        little), the window ends at the newest sample instead: it is shifted earlier,
        not shortened, so compare ``t_end`` with :attr:`end_time` to know by how much.
        A ``t_end`` at or before the oldest held sample gives k = 0.
        """
        n = max(0, min(int(n), self.capacity))
        if out is None:
            out = np.empty(n, dtype=np.float32)
        elif len(out) < n or out.dtype != np.float32:
            raise ValueError(f"out must be a float32 buffer of at least {n} samples")
        cap, buf = self.capacity, self._buf
        while True:
            epoch, t0, count = self._state
            pos = (t_end - t0) * self.rate
            end = count if pos >= count else int(round(pos)) if pos > 0 else 0
            begin = max(end - n, count - cap, 0)
            k = max(0, end - begin)
            if k:
                start = begin % cap
                first = min(k, cap - start)
                out[:first] = buf[start : start + first]
                out[first:k] = buf[: k - first]
            claim_epoch, claimed = self._claim
            if claim_epoch == epoch and begin >= claimed - cap:
                return out[:k], k
            self.read_retries += 1  # overtaken by the writer (or reset): read again

    def latest(self, n: int, out: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """The newest up-to-n samples (window ending at :attr:`end_time`)."""
        return self.window(float("inf"), n, out)
