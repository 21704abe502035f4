"""``hearflow run``: glue from command-line strings to a running :class:`Engine`."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from hearflow.engine.capture import stderr_log
from hearflow.engine.engine import Engine, EngineConfig


class StatusLine:
    """One status line refreshed in place on a terminal; a plain line every few seconds otherwise."""

    def __init__(self, stream=sys.stderr, every: float = 5.0):
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        import time

        with self._lock:
            if self.tty:
                self.stream.write("\r\x1b[K" + text)
                self.stream.flush()
            elif time.monotonic() - self._last >= self.every:
                self.stream.write(text + "\n")
                self.stream.flush()
                self._last = time.monotonic()

    def log(self, message: str) -> None:
        """Log lines must not be glued to the status line."""
        with self._lock:
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


def run_engine(
    model,
    video: str,
    audio: str = "same",
    sink: str = "overlay",
    backend: str | None = None,
    realtime: bool = True,
    duration: float | None = None,
    summary_path=None,
    cfg: EngineConfig = EngineConfig(),
    zmq_overlay: bool = False,
    frame_id: str = "camera",
    threads: int = 0,
    device: str = "auto",
    status: bool = True,
) -> dict:
    """Load the model, open sources and sinks, run until the end, return the summary."""
    from hearflow.runtime.backends import load_backend
    from hearflow.engine.sinks import parse_sinks
    from hearflow.engine.sources import open_sources

    line = StatusLine() if status else None
    log = line.log if line else stderr_log
    sinks = parse_sinks(sink, zmq_overlay=zmq_overlay, frame_id=frame_id)  # bad --sink fails before loading
    if threads == 0:
        from hearflow.runtime.backends import physical_cores

        # leave a core to capture, decoding and flow: on 2 cores a 2-thread runtime pool
        # competes with them and drops frames (docs/benchmarks.md, Engine)
        threads = max(1, physical_cores() - 1)
    be = load_backend(model, backend, device=device, threads=threads)
    pre = be.preprocess
    if realtime and pre.audio_window == "centered" and audio != "none":
        log(f"note: {model} was trained with audio windows centred on the frame; live input only has the past,"
            " so the engine uses the trailing window")
    video_src, audio_src = open_sources(video, audio, pre, realtime)
    restore = _stop_on_signals()
    try:
        engine = Engine(be, video_src, audio_src, sinks, cfg, realtime=realtime, duration=duration, log=log,
                        status=line)
        summary = engine.run()
    finally:
        restore()
        for src in {id(s): s for s in (video_src, audio_src) if s is not None}.values():
            close = getattr(src, "close", None)
            if close:
                close()
        if line:
            line.end()
    summary.update(video=video, audio=audio, sinks=summary["sinks"], threads=threads)
    if summary_path:
        path = Path(summary_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2))
    return summary
