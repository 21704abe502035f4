"""``hearflow run``: glue from command-line strings (:class:`RunOptions`) to a running :class:`Engine`."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hearflow.engine.log import LOCK, stderr_log
from hearflow.engine.pipeline import Engine, EngineConfig


class StatusLine:
    """One status line refreshed in place on a terminal; a plain line every few seconds otherwise.

    It writes under the engine's one log lock (hearflow.engine.log.LOCK), so neither its
    line nor its log lines are ever split by another thread's.
    """

    def __init__(self, stream=sys.stderr, every: float = 5.0):
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every
        self._last = 0.0

    def __call__(self, text: str) -> None:
        with LOCK:
            if self.tty:
                self.stream.write("\r\x1b[K" + text)
                self.stream.flush()
            elif time.monotonic() - self._last >= self.every:
                self.stream.write(text + "\n")
                self.stream.flush()
                self._last = time.monotonic()

    def log(self, message: str) -> None:
        """Log lines must not be glued to the status line."""
        with LOCK:
            if self.tty:
                self.stream.write("\r\x1b[K")
            self.stream.write(message + "\n")
            self.stream.flush()

    def end(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _stop_on_signals():
    """Ctrl-C and SIGTERM (service managers, robots' launch files) both stop the engine
    cleanly. SIGINT is re-armed too: a process started in the background by a shell
    inherits it ignored. Returns a function restoring the previous handlers."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)

    def restore():
        for s, h in old.items():
            signal.signal(s, h)

    return restore


@dataclass
class RunOptions:
    """What ``hearflow run`` is asked to do (one field per command-line option)."""

    model: str | Path
    """Checkpoint folder or export folder."""
    video: str
    """``--video`` spec (hearflow.engine.sources.spec)."""
    audio: str = "same"
    """``--audio`` spec."""
    sink: str = "overlay"
    """``--sink`` text (hearflow.engine.sinks.parse_sinks)."""
    backend: str | None = None
    """Inference runtime (None: the model folder's default)."""
    realtime: bool = True
    """Pace sources like live devices (True) or process files losslessly (False)."""
    duration: float | None = None
    """Stop after this many seconds of media time (None: until the source ends)."""
    summary_path: str | Path | None = None
    """Also write the JSON summary to this file."""
    engine: EngineConfig = field(default_factory=EngineConfig)
    """Engine settings (audio hop, queues, confidence thresholds)."""
    zmq_overlay: bool = False
    """zmq sinks also publish JPEG overlays."""
    frame_id: str = "camera"
    """frame_id in ZeroMQ headers."""
    threads: int = 0
    """CPU threads for inference (0: physical cores minus one)."""
    device: str = "auto"
    """auto, cpu or cuda."""
    status: bool = True
    """Show the status line on stderr."""


def run_engine(options: RunOptions) -> dict:
    """Load the model, open sources and sinks, run until the end, return the summary."""
    from hearflow.runtime.backends import load_backend
    from hearflow.engine.sinks import parse_sinks
    from hearflow.engine.sources import open_sources

    o = options
    line = StatusLine() if o.status else None
    log = line.log if line else stderr_log
    sinks = parse_sinks(o.sink, zmq_overlay=o.zmq_overlay, frame_id=o.frame_id)  # bad --sink fails before loading
    threads = o.threads or _default_threads()
    be = load_backend(o.model, o.backend, device=o.device, threads=threads)
    pre = be.preprocess
    if o.realtime and pre.audio_window == "centered" and o.audio != "none":
        log(f"note: {o.model} was trained with audio windows centred on the frame; live input only has the past,"
            " so the engine uses the trailing window")
    video_src, audio_src = open_sources(o.video, o.audio, pre, o.realtime)
    restore = _stop_on_signals()
    try:
        with contextlib.ExitStack() as sources:
            for src in {id(s): s for s in (video_src, audio_src) if s is not None}.values():
                sources.enter_context(src)  # closed when the run ends, however it ends
            engine = Engine(be, video_src, audio_src, sinks, o.engine, realtime=o.realtime, duration=o.duration,
                            log=log, status=line)
            summary = engine.run()
    finally:
        restore()
        if line:
            line.end()
    summary.update(video=o.video, audio=o.audio, sinks=summary["sinks"], threads=threads)
    if o.summary_path:
        path = Path(o.summary_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2))
    return summary


def _default_threads() -> int:
    from hearflow.runtime.backends import physical_cores

    # leave a core to capture, decoding and flow: on 2 cores a 2-thread runtime pool
    # competes with them and drops frames (docs/benchmarks.md, Engine)
    return max(1, physical_cores() - 1)
