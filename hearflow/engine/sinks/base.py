"""What every sink is, and how each one runs: one bounded queue and one thread per sink.

    runner = SinkRunner(VideoSink("out/a.mp4"), queue_size=4, lossless=False)
    runner.start(info)            # opens the sink in its own thread; raises HearflowError
    runner.put_result(result)     # never blocks in realtime mode (drops the oldest)
    runner.put_audio(chunk)       # only sinks with wants_audio (the video sink) get audio
    runner.put_status(status)     # the engine's heartbeat (a dict), never blocks
    runner.stop()                 # drains the queue, closes the sink (the mp4 plays)

A sink is only ever called from its runner's thread (open, write, close), so sinks hold
thread-bound resources safely: a ZeroMQ socket, an OpenCV window, an encoder. The first
exception a sink raises while writing or closing is logged, the sink is closed, disabled
and marked failed (``runner.failed``, ``runner.error``: its output is incomplete), and
the engine and the other sinks go on.
"""

from __future__ import annotations

import collections
import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hearflow.engine.log import stderr_log
from hearflow.engine.packets import AudioChunk, Result
from hearflow.errors import HearflowError


@dataclass(frozen=True)
class SinkOptions:
    """What ``--sink`` items are built with besides their own argument."""

    zmq_overlay: bool = False
    """zmq sinks also publish the blended frame as JPEG (topic hearflow.overlay)."""
    frame_id: str = "camera"
    """ROS-style frame_id in the zmq headers."""
    jpeg_quality: int = 80
    """Quality of those JPEGs (1..100)."""
    alpha: float = 0.45
    """Heatmap blend weight of the overlay, video and zmq-overlay drawings."""
    stream: str = ""
    """The stream's name when one process runs several (``--streams``); "" = one stream."""


@dataclass
class StreamInfo:
    """What a sink learns about the stream when it is opened."""

    fps: float = 0.0
    """Nominal frame rate of the source (0 = unknown)."""
    frame_size: tuple[int, int] = (0, 0)
    """(width, height) of the captured frames ((0, 0) = unknown until the first frame)."""
    audio_rate: int | None = None
    """Sample rate of the AudioChunks (None = no audio)."""
    model: str = ""
    """Model name or path, for headers and titles."""
    map_shape: tuple[int, int] | None = None
    """(m, n) of the similarity maps (None = unknown until the first result)."""
    realtime: bool = True
    """Live mode (drop-oldest queues) or offline lossless mode."""
    stop: threading.Event = field(default_factory=threading.Event)
    """Set by a sink to end the whole run (the overlay on q/Esc)."""
    log: Callable[[str], None] = stderr_log
    """Thread-safe one-line logger."""


class Sink:
    """Base class. Subclasses set ``name`` and the wants, and implement what they need.

    Every method is called from the sink's own runner thread.
    """

    name: str = "sink"
    """Shown in logs and summaries: the --sink text, e.g. 'video:out/a.mp4'."""
    wants_frames: bool = False
    """Needs Result.rgb (the captured frame): the engine must keep frames for it."""
    wants_audio: bool = False
    """Gets the AudioChunks through write_audio (only the video sink)."""

    def check(self) -> None:
        """Cheap checks made before the model loads (an output folder, a display); raise
        HearflowError with one line. Must not create or change anything."""

    def open(self, info: StreamInfo) -> None:
        """Acquire resources; raise HearflowError with one line when that is impossible."""

    def write(self, result: Result) -> None:
        """Handle one result (called in order)."""

    def write_audio(self, chunk: AudioChunk) -> None:
        """Handle one audio block (called in order, interleaved with write by arrival)."""

    def write_status(self, status: dict) -> None:
        """Handle one engine status message (the heartbeat: state, rates, drops, latency,
        last error; docs/wire_format.md, ``hearflow.status``). Called about once a second
        and on every state change, also when no frames arrive; interleaved with write by
        arrival. The default ignores it."""

    def close(self) -> None:
        """Flush, finalise and release; must be idempotent and work after a failed write.
        Raise when the output could not be finished (the runner marks the sink failed)."""

    @classmethod
    def from_spec(cls, arg: str, options: SinkOptions) -> Sink:
        """The sink for ``--sink KIND:ARG`` (``arg`` is "" for plain ``KIND``); raise
        ValueError with what is wrong with ``arg``."""
        raise NotImplementedError

    def spec_key(self) -> str:
        """Two ``--sink`` items with the same key are the same sink given twice."""
        return self.name

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"


# --------------------------------------------------------------------------- runner
class SinkRunner:
    """One sink, one thread, one bounded queue.

    sink: the Sink to run.
    queue_size: results held while the sink is busy.
    lossless: False (realtime): a put into a full queue drops the oldest item and returns
        at once, so a slow sink never slows the engine. True (offline): the put waits
        for room, nothing is dropped.
    log: one-line logger (default: StreamInfo.log given to start, else stderr).
    on_published: callable(result, t) run in the sink thread after each successful
        write, t = time.monotonic() then (the engine's capture→published latency).
    audio_queue_size: audio blocks held (separately, so bursts of small audio blocks
        never push results out); dropped audio becomes silence in the video.
    """

    def __init__(
        self,
        sink: Sink,
        queue_size: int = 4,
        lossless: bool = False,
        log: Callable[[str], None] | None = None,
        on_published: Callable[[Result, float], None] | None = None,
        audio_queue_size: int = 64,
    ):
        if queue_size < 1 or audio_queue_size < 1:
            raise ValueError("queue sizes must be >= 1")
        self.sink = sink
        self.queue_size = queue_size
        self.audio_queue_size = audio_queue_size
        self.lossless = lossless
        self.log = log
        self.on_published = on_published
        self.written = 0
        """Results the sink handled."""
        self.dropped = 0
        """Results dropped from the full queue (realtime mode)."""
        self.dropped_audio = 0
        """Audio blocks dropped from the full queue (realtime mode)."""
        self.failed = False
        """The sink raised (writing or closing): it was disabled and its output is incomplete."""
        self.error: BaseException | None = None
        """What it raised."""
        self.last_publish_t: float | None = None
        """time.monotonic() when the last result was written."""
        self._results: collections.deque = collections.deque()
        self._audio: collections.deque = collections.deque()
        self._status: collections.deque = collections.deque()
        self._order = itertools.count()  # arrival order across both queues
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._closed = False

    # --- producer side --------------------------------------------------------------
    def put_result(self, result: Result) -> None:
        """Queue a result (drop-oldest in realtime, wait in lossless mode)."""
        if self._put(self._results, self.queue_size, result):
            self.dropped += 1

    def put_audio(self, chunk: AudioChunk) -> None:
        """Queue an audio block for a sink that wants audio (others ignore it)."""
        if self.sink.wants_audio and self._put(self._audio, self.audio_queue_size, chunk):
            self.dropped_audio += 1

    def _put(self, q: collections.deque, size: int, item) -> bool:
        """Append; True when an old item had to be dropped for it."""
        dropped = False
        with self._cond:
            if self._stopping or self.failed or self._thread is None:
                return False
            if self.lossless:
                while len(q) >= size and not (self._stopping or self.failed):
                    self._cond.wait()
                if self._stopping or self.failed:
                    return False
            elif len(q) >= size:
                q.popleft()
                dropped = True
            q.append((next(self._order), item))
            self._cond.notify_all()
        return dropped

    def put_status(self, status: dict) -> None:
        """Queue a status message; never waits, also in lossless mode (the supervisor sends
        them): when the sink is behind, the oldest status is dropped."""
        with self._cond:
            if self._stopping or self.failed or self._thread is None:
                return
            if len(self._status) >= self.STATUS_QUEUE:
                self._status.popleft()
            self._status.append((next(self._order), _Status(status)))
            self._cond.notify_all()

    STATUS_QUEUE = 4
    """Status messages held while the sink is busy (only the newest matter)."""

    @property
    def pending(self) -> int:
        """Items queued and not yet handed to the sink."""
        with self._cond:
            return len(self._results) + len(self._audio) + len(self._status)

    # --- lifecycle --------------------------------------------------------------------
    def start(self, info: StreamInfo) -> None:
        """Start the thread and open the sink in it; raise HearflowError if it cannot open.

        Opening in the sink's own thread keeps thread-bound resources (an OpenCV window,
        a ZeroMQ socket) on the thread that uses them.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self.sink.name}: already started")
        if self.log is None:
            self.log = info.log or stderr_log
        opened = threading.Event()
        box: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(info, opened, box),
                                        name=f"sink {self.sink.name}", daemon=True)
        self._thread.start()
        opened.wait()
        if box:
            self._thread.join()
            exc = box[0]
            msg = str(exc) if isinstance(exc, HearflowError) else f"{type(exc).__name__}: {exc}"
            if not msg.startswith(self.sink.name):
                msg = f"{self.sink.name}: {msg}"
            raise HearflowError(msg) from exc

    def stop(self, drain: bool = True, timeout: float = 30.0) -> None:
        """Let the sink finish what is queued (drain) or not, close it, end the thread.

        timeout: seconds to wait for the thread; a sink stuck longer is reported and left
            behind (its thread is a daemon, it never keeps the process alive).
        """
        with self._cond:
            self._stopping = True
            if not drain:
                self._results.clear()
                self._audio.clear()
                self._status.clear()
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                self.log(f"{self.sink.name}: did not finish within {timeout:.0f} s; left behind")

    # --- the sink thread --------------------------------------------------------------
    def _run(self, info: StreamInfo, opened: threading.Event, box: list) -> None:
        try:
            self.sink.open(info)
        except BaseException as exc:
            box.append(exc)
            self._safe_close()
            opened.set()
            return
        opened.set()
        try:
            while True:
                with self._cond:
                    queues = (self._results, self._audio, self._status)
                    while not (any(queues) or self._stopping):
                        self._cond.wait()
                    if not any(queues):
                        break  # stopping and drained
                    # the oldest arrival first, so audio, results and status stay in order
                    _, item = min((q for q in queues if q), key=lambda q: q[0][0]).popleft()
                    self._cond.notify_all()  # room for a waiting lossless producer
                if self.failed:
                    continue
                self._handle(item)
        finally:
            with self._cond:  # however the thread ends, no producer may wait on it
                self._stopping = True
                self._cond.notify_all()
            self._safe_close()

    def _handle(self, item) -> None:
        try:
            if isinstance(item, AudioChunk):
                self.sink.write_audio(item)
                return
            if isinstance(item, _Status):
                self.sink.write_status(item.status)
                return
            self.sink.write(item)
        except Exception as exc:
            self._fail(exc)
            return
        t = time.monotonic()
        self.written += 1
        self.last_publish_t = t
        if self.on_published is not None:
            try:
                self.on_published(item, t)
            except Exception as exc:  # the engine's bookkeeping must not disable the sink
                self.log(f"{self.sink.name}: on_published failed: {type(exc).__name__}: {exc}")
                self.on_published = None

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            self.failed = True
            self.error = exc
            self._results.clear()
            self._audio.clear()
            self._status.clear()
            self._cond.notify_all()  # release a lossless producer waiting for room
        self.log(f"{self.sink.name} failed: {self._describe(exc)} (sink disabled; the others go on)")
        self._safe_close()

    def _safe_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.sink.close()
        except Exception as exc:
            detail = self._describe(exc)
            with self._cond:
                first = not self.failed
                self.failed = True
                self.error = self.error or exc
            if first:
                self.log(f"{self.sink.name} failed while closing: {detail}")
            else:
                self.log(f"{self.sink.name}: closing after the failure: {detail}")

    def _describe(self, exc: BaseException) -> str:
        """The error without the sink's name (every line it goes into starts with that)."""
        if not isinstance(exc, HearflowError):
            return f"{type(exc).__name__}: {exc}"
        return str(exc).removeprefix(f"{self.sink.name}: ")

    def report(self) -> dict:
        """The sink's line of the run summary."""
        error = None if self.error is None else self._describe(self.error)
        return {"written": self.written, "dropped": self.dropped, "failed": self.failed, "error": error}


class _Status:
    """A status message in a runner's queue (told apart from results and audio)."""

    __slots__ = ("status",)

    def __init__(self, status: dict):
        self.status = status


def check_writable(path, name: str) -> None:
    """Raise HearflowError unless a file can be created at ``path``: nothing in the way is
    a file, and the nearest existing folder is writable (parents are created at open)."""
    path = Path(path)
    if path.is_dir():
        raise HearflowError(f"{name}: cannot write {path}: is a directory")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise HearflowError(f"{name}: cannot write {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise HearflowError(f"{name}: cannot write {path}: no permission to write in {parent}")


__all__ = ["Sink", "SinkOptions", "SinkRunner", "StreamInfo", "check_writable"]
