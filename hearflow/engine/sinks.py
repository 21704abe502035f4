"""Where results go: one bounded queue and one thread per sink.

    runner = SinkRunner(VideoSink("out/a.mp4"), queue_size=4, lossless=False)
    runner.start(info)            # opens the sink in its own thread; raises HearflowError
    runner.put_result(result)     # never blocks in realtime mode (drops the oldest)
    runner.put_audio(chunk)       # only sinks with wants_audio (the video sink) get audio
    runner.stop()                 # drains the queue, closes the sink (the mp4 plays)

A sink is only ever called from its runner's thread (open, write, close), so sinks hold
thread-bound resources safely: a ZeroMQ socket, an OpenCV window, an encoder. The first
exception a sink raises is logged once, the sink is closed and disabled, and the engine
and the other sinks go on.

Sinks: :class:`OverlaySink` (OpenCV window), :class:`VideoSink` (annotated mp4 with the
audio), :class:`JsonlSink` (one JSON line per result) and
:class:`hearflow.engine.wire.ZmqSink` (ZeroMQ PUB); :func:`parse_sinks` builds them from
the ``--sink`` text.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from hearflow.engine import draw
from hearflow.engine.packets import AudioChunk, Result
from hearflow.errors import HearflowError

_log_lock = threading.Lock()


def stderr_log(line: str) -> None:
    """Print one line to stderr; lines from several threads never interleave."""
    with _log_lock:
        print(line, file=sys.stderr, flush=True)


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


def finite(x) -> float | None:
    """A float, or None for NaN/inf (which JSON cannot hold)."""
    x = float(x)
    return x if math.isfinite(x) else None


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

    def open(self, info: StreamInfo) -> None:
        """Acquire resources; raise HearflowError with one line when that is impossible."""

    def write(self, result: Result) -> None:
        """Handle one result (called in order)."""

    def write_audio(self, chunk: AudioChunk) -> None:
        """Handle one audio block (called in order, interleaved with write by arrival)."""

    def close(self) -> None:
        """Flush and release; must be idempotent and work after a failed write."""

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
        """The sink raised and was disabled."""
        self.error: BaseException | None = None
        """What it raised."""
        self.last_publish_t: float | None = None
        """time.monotonic() when the last result was written."""
        self._results: collections.deque = collections.deque()
        self._audio: collections.deque = collections.deque()
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

    @property
    def pending(self) -> int:
        """Items queued and not yet handed to the sink."""
        with self._cond:
            return len(self._results) + len(self._audio)

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
                    while not (self._results or self._audio or self._stopping):
                        self._cond.wait()
                    if not (self._results or self._audio):
                        break  # stopping and drained
                    # the oldest arrival first, so audio and results stay in order
                    if self._results and (not self._audio or self._results[0][0] < self._audio[0][0]):
                        _, item = self._results.popleft()
                    else:
                        _, item = self._audio.popleft()
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
            self._cond.notify_all()  # release a lossless producer waiting for room
        detail = str(exc) if isinstance(exc, HearflowError) else f"{type(exc).__name__}: {exc}"
        self.log(f"{self.sink.name} failed: {detail} (sink disabled; the others go on)")
        self._safe_close()

    def _safe_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.sink.close()
        except Exception as exc:
            self.log(f"{self.sink.name}: error while closing: {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- jsonl
class JsonlSink(Sink):
    """One JSON object per line per result, flushed per line (a killed run leaves valid lines).

    path: output file (parent folders are created; an existing file is replaced).
    map_decimals: the map is written as nested lists rounded to this many decimals.

    Fields: seq, capture_seq, t_capture, t_media, t_result (engine monotonic clock,
    seconds), stamp (wall-clock capture time, UNIX seconds), latency_ms (capture →
    written), peak [x, y] (normalised), peak_value, confidence, audio_rms_db, warming_up,
    frame_size [w, h], map. NaN/inf become null.
    """

    def __init__(self, path, map_decimals: int = 4):
        self.path = Path(path)
        self.map_decimals = map_decimals
        self.name = f"jsonl:{path}"
        self._f = None

    def open(self, info: StreamInfo) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "w", encoding="utf-8")
        except OSError as exc:
            raise HearflowError(f"{self.name}: cannot write {self.path}: {exc.strerror or exc}") from None

    def write(self, result: Result) -> None:
        now = time.monotonic()
        wall = time.time() - (now - result.t_capture)
        m = np.round(np.asarray(result.map, dtype=np.float64), self.map_decimals)
        record = {
            "seq": int(result.seq),
            "capture_seq": int(result.capture_seq),
            "t_capture": finite(result.t_capture),
            "t_media": finite(result.t_media),
            "t_result": finite(result.t_result),
            "stamp": round(wall, 6),
            "latency_ms": round((now - result.t_capture) * 1000.0, 3),
            "peak": [finite(result.peak[0]), finite(result.peak[1])],
            "peak_value": finite(result.peak_value),
            "confidence": finite(result.confidence),
            "audio_rms_db": finite(result.audio_rms_db),
            "warming_up": bool(result.warming_up),
            "frame_size": [int(result.frame_size[0]), int(result.frame_size[1])],
            "map": m.tolist() if np.isfinite(m).all() else [[finite(v) for v in row] for row in m],
        }
        self._f.write(json.dumps(record, allow_nan=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            f, self._f = self._f, None
            f.close()


# --------------------------------------------------------------------------- video
class VideoSink(Sink):
    """Annotated video (H.264 + AAC) of the processed frames, with the original audio.

    path: output file (.mp4, .mov or .mkv; parent folders are created).
    alpha: heatmap blend weight at full confidence (see hearflow.engine.draw).
    crf / preset: libx264 quality (lower crf = better) and speed.
    max_audio_lead: seconds of audio held while waiting for the first frame.

    Time: the file's t = 0 is the *time origin*, the earliest t_media among the first
    processed frame and the audio received before it. Each frame is placed at its own
    t_media (variable frame rate: when frames were dropped, the previous frame stays on
    screen longer, and the duration and lip sync stay right). Audio is written
    contiguously from its first block; a block that starts more than 20 ms after the
    written audio ends (blocks were dropped) is preceded by silence, one that overlaps
    is trimmed, so audio never drifts from the picture. Audio before the origin is cut.
    close() finalises the file (it plays after Ctrl-C); a run that processed no frame
    leaves no file. The frames are drawn with hearflow.engine.draw.overlay.
    """

    wants_frames = True
    wants_audio = True
    SYNC_TOLERANCE = 0.020
    """Seconds of audio timing jitter absorbed before silence is inserted or audio trimmed."""

    def __init__(self, path, alpha: float = 0.45, crf: int = 20, preset: str = "veryfast",
                 max_audio_lead: float = 10.0):
        self.path = Path(path)
        self.alpha = alpha
        self.video_options = {"crf": str(crf), "preset": preset}
        self.max_audio_lead = max_audio_lead
        self.name = f"video:{path}"
        self._writer = None
        self._info: StreamInfo | None = None
        self._t0: float | None = None
        self._pending: list[AudioChunk] = []  # audio held until the first frame
        self._next_sample = 0  # audio samples written so far
        self._size: tuple[int, int] | None = None
        self._closed = False

    def open(self, info: StreamInfo) -> None:
        self._info = info
        try:  # fail now on a bad path, not at the first frame
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "wb"):
                pass
        except OSError as exc:
            raise HearflowError(f"{self.name}: cannot write {self.path}: {exc.strerror or exc}") from None

    @property
    def time_origin(self) -> float | None:
        """The t_media that is t = 0 in the file (None before the first frame)."""
        return self._t0

    def _start(self, rgb: np.ndarray, t_media: float) -> None:
        """Create the writer at the first frame: its size and the time origin are known now."""
        from hearflow.media.encode import AVWriter

        h, w = rgb.shape[:2]
        self._size = (w - w % 2, h - h % 2)  # yuv420p needs even sizes
        info = self._info
        fps = info.fps if info.fps and info.fps > 0 else 25.0
        self._t0 = min([t_media] + [c.t_media for c in self._pending])
        self._writer = AVWriter(self.path, fps=fps, size=self._size, sample_rate=info.audio_rate,
                                video_options=self.video_options, video_time_base=Fraction(1, 90000))
        pending, self._pending = self._pending, []
        for chunk in pending:
            self._write_audio(chunk)

    def write(self, result: Result) -> None:
        if result.rgb is None:
            raise ValueError("the video sink needs Result.rgb (the engine dropped the frame)")
        if self._writer is None:
            self._start(result.rgb, result.t_media)
        lines = draw.status_lines(result, latency_ms=(result.t_result - result.t_capture) * 1000.0)
        img = draw.overlay(result.rgb, result.map, result.peak, lines, self.alpha, result.confidence)
        w, h = self._size
        if img.shape[1] != w or img.shape[0] != h:
            import cv2

            img = img[:h, :w] if img.shape[1] - w in (0, 1) and img.shape[0] - h in (0, 1) else \
                cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        self._writer.write_frame(img, t=max(0.0, result.t_media - self._t0))

    def write_audio(self, chunk: AudioChunk) -> None:
        if self._info.audio_rate is None:
            return  # the stream was opened without audio
        if int(chunk.rate) != int(self._info.audio_rate):
            raise ValueError(f"audio block at {chunk.rate} Hz, the stream is {self._info.audio_rate} Hz")
        if self._writer is None:
            self._pending.append(chunk)
            # no frame for a long time: hold the newest max_audio_lead seconds only
            while len(self._pending) > 1 and \
                    sum(len(c.samples) for c in self._pending[1:]) >= self.max_audio_lead * chunk.rate:
                self._pending.pop(0)
            return
        self._write_audio(chunk)

    def _write_audio(self, chunk: AudioChunk) -> None:
        rate = int(self._info.audio_rate)
        x = np.asarray(chunk.samples, dtype=np.float32).reshape(-1)
        start = int(round((chunk.t_media - self._t0) * rate))
        gap = start - self._next_sample
        tol = int(self.SYNC_TOLERANCE * rate)
        if gap > tol:  # blocks went missing: silence keeps what follows in sync
            self._writer.write_audio(np.zeros(gap, np.float32))
            self._next_sample += gap
        elif gap < -tol or start < 0:  # overlap (or before the origin): cut what is already written
            x = x[self._next_sample - start:]
        if x.size:
            self._writer.write_audio(x)
            self._next_sample += x.size

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        elif self._info is not None and self.path.exists() and self.path.stat().st_size == 0:
            self.path.unlink()  # no frame ever came: leave no empty placeholder behind


# --------------------------------------------------------------------------- overlay
NO_DISPLAY = "overlay sink needs a display (none found: DISPLAY is not set); use video:out.mp4 or zmq:..."


def check_display() -> None:
    """Raise HearflowError unless an OpenCV window can be opened here.

    On Linux/BSD OpenCV's Qt backend aborts the whole process when the display cannot be
    reached, so a throwaway child process tries first.
    """
    if not sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise HearflowError(NO_DISPLAY)
    probe = "import cv2; cv2.namedWindow('hearflow-probe'); cv2.waitKey(1); cv2.destroyAllWindows()"
    try:
        p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise HearflowError("overlay sink could not open a window (timed out); "
                            "use video:out.mp4 or zmq:...") from None
    if p.returncode != 0:
        lines = [ln.strip() for ln in (p.stderr or "").splitlines() if ln.strip()]
        about_display = [ln for ln in lines if "display" in ln.lower()]
        why = (about_display or lines or [f"exit status {p.returncode}"])[0][:160]
        display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        raise HearflowError(f"overlay sink cannot open a window on display {display!r} ({why}); "
                            "use video:out.mp4 or zmq:...")


class OverlaySink(Sink):
    """A live OpenCV window with the heatmap, the peak, fps, latency and confidence.

    window: window title.
    alpha: heatmap blend weight at full confidence.

    q or Esc (or closing the window) sets StreamInfo.stop, which ends the run. Fails at
    open with one line when there is no display. (On macOS, OpenCV windows only work
    from the main thread; use video:/zmq: sinks there.)
    """

    name = "overlay"
    wants_frames = True

    def __init__(self, window: str = "hearflow", alpha: float = 0.45):
        self.window = window
        self.alpha = alpha
        self._cv2 = None
        self._info: StreamInfo | None = None
        self._last_t: float | None = None
        self._fps: float | None = None
        self.shown = 0

    def open(self, info: StreamInfo) -> None:
        check_display()
        import cv2

        self._info = info
        try:
            cv2.namedWindow(self.window, cv2.WINDOW_NORMAL)
        except cv2.error as exc:  # e.g. opencv-python-headless: no GUI compiled in
            msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else "cv2 GUI error"
            raise HearflowError(f"overlay sink cannot open a window ({msg}); use video:out.mp4 or zmq:...") from None
        w, h = info.frame_size
        if w > 0 and h > 0:
            cv2.resizeWindow(self.window, int(w), int(h))
        self._cv2 = cv2

    def write(self, result: Result) -> None:
        cv2 = self._cv2
        now = time.monotonic()
        if self._last_t is not None and now > self._last_t:  # smoothed display rate
            rate = 1.0 / (now - self._last_t)
            self._fps = rate if self._fps is None else 0.9 * self._fps + 0.1 * rate
        self._last_t = now
        if result.rgb is None:
            return
        bgr = cv2.cvtColor(result.rgb, cv2.COLOR_RGB2BGR)
        lines = draw.status_lines(result, fps=self._fps or 0.0, latency_ms=(now - result.t_capture) * 1000.0)
        img = draw.overlay(bgr, result.map, result.peak, lines, self.alpha, result.confidence, order="bgr")
        cv2.imshow(self.window, img)
        self.shown += 1
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), ord("Q"), 27):
            self._info.stop.set()
        elif cv2.getWindowProperty(self.window, cv2.WND_PROP_VISIBLE) < 1:
            self._info.stop.set()  # the user closed the window

    def close(self) -> None:
        if self._cv2 is None:
            return
        cv2, self._cv2 = self._cv2, None
        try:
            cv2.destroyWindow(self.window)
            cv2.waitKey(1)  # let the GUI process the close
        except cv2.error:
            pass


# --------------------------------------------------------------------------- parsing
SINK_HELP = "overlay, video:FILE.mp4, zmq[:ENDPOINT], jsonl:FILE (comma-separated)"
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")


def parse_sinks(
    spec: str,
    zmq_overlay: bool = False,
    frame_id: str = "camera",
    jpeg_quality: int = 80,
    alpha: float = 0.45,
) -> list[Sink]:
    """Build sinks from the --sink text, e.g. "overlay,video:out/a.mp4,zmq,jsonl:out/a.jsonl".

    spec: comma-separated KIND[:ARG] items; the ARG is everything after the first colon
        (so endpoints and Windows paths keep theirs). ``zmq`` alone publishes on
        tcp://127.0.0.1:5555, ``zmq:PORT`` on that port of the loopback.
    zmq_overlay: zmq sinks also publish the blended frame as JPEG (topic hearflow.overlay).
    frame_id: ROS-style frame_id in the zmq headers.
    jpeg_quality: quality of those JPEGs (1..100).
    alpha: heatmap blend weight of the overlay, video and zmq-overlay drawings.

    Raises HearflowError (one line) on an unknown kind or a missing/extra argument.
    """
    from hearflow.engine import wire

    items = [s.strip() for s in (spec or "").split(",")]
    if not any(items):
        raise HearflowError(f"--sink: no sink given (use {SINK_HELP})")
    sinks: list[Sink] = []
    seen: set[str] = set()
    for item in items:
        if not item:
            continue
        kind, colon, arg = item.partition(":")
        kind, arg = kind.strip().lower(), arg.strip()
        if kind == "overlay":
            if arg:
                raise HearflowError(f"--sink {item!r}: the overlay sink takes no argument")
            sink = OverlaySink(alpha=alpha)
        elif kind == "video":
            if not arg:
                raise HearflowError(f"--sink {item!r}: give the output file, e.g. video:out/run.mp4")
            if Path(arg).suffix.lower() not in VIDEO_SUFFIXES:
                raise HearflowError(f"--sink {item!r}: the video file must end in {', '.join(VIDEO_SUFFIXES)}")
            sink = VideoSink(arg, alpha=alpha)
        elif kind == "jsonl":
            if not arg:
                raise HearflowError(f"--sink {item!r}: give the output file, e.g. jsonl:out/run.jsonl")
            sink = JsonlSink(arg)
        elif kind == "zmq":
            try:
                endpoint = wire.normalize_endpoint(arg or wire.DEFAULT_ENDPOINT)
            except ValueError as exc:
                raise HearflowError(f"--sink {item!r}: {exc}") from None
            sink = wire.ZmqSink(endpoint, frame_id=frame_id, overlay=zmq_overlay, jpeg_quality=jpeg_quality,
                                alpha=alpha)
        else:
            raise HearflowError(f"--sink: unknown sink {kind!r} in {item!r} (use {SINK_HELP})")
        key = sink.name if kind != "video" and kind != "jsonl" else str(Path(arg).resolve())
        if key in seen:
            raise HearflowError(f"--sink: {item!r} is given twice")
        seen.add(key)
        sinks.append(sink)
    return sinks
