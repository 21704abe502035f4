"""``hearflow run``: glue from command-line strings (:class:`RunOptions`) to a running :class:`Engine`.

:func:`run_engine` checks every input before the model loads (:func:`check_inputs`: a
bad ``--video`` path fails in milliseconds, not after 20 s of loading), turns SIGINT and
SIGTERM into a clean stop that finishes every output (:class:`StopSignals`), and returns
the summary; :func:`exit_code` says what it means to a launch script.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hearflow.engine.log import LOCK, stderr_log
from hearflow.engine.pipeline import Engine, EngineConfig
from hearflow.runtime.geometry import parse_camera
from hearflow.errors import EXIT_FAILURE, EXIT_OK, EXIT_OUTPUT_LOST, EXIT_SIGINT, HearflowError


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


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived before there was anything to finish (model loading)."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


class StopSignals:
    """While active (``with StopSignals() as s``), SIGINT and SIGTERM stop the run cleanly.

    The first signal is remembered (:attr:`received`, e.g. "SIGTERM") and sets the event
    given to :meth:`attach` (the engine's stop), so every thread ends and every sink
    finishes its file. Before an event is attached, or at a second signal, it raises
    :class:`StopRequested` (a KeyboardInterrupt) in the main thread instead: nothing to
    finish yet, or the user insists. SIGINT is re-armed too: a process started in the
    background by a shell inherits it ignored. Outside the main thread it does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: str | None = None
        self._event: threading.Event | None = None
        self._old: dict = {}

    def attach(self, event: threading.Event) -> None:
        """Set ``event`` on the first signal (at once if one already came)."""
        self._event = event
        if self.received is not None:
            event.set()

    def _handle(self, signum, frame) -> None:
        first = self.received is None
        if first:
            self.received = signal.Signals(signum).name
        if first and self._event is not None:
            # set from a thread: the main thread may hold the event's lock right now
            threading.Thread(target=self._event.set, name="stop-signal", daemon=True).start()
            return
        raise StopRequested(self.received if first else signal.Signals(signum).name)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.getsignal(s) for s in self.SIGNALS}
            for s in self.SIGNALS:
                signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def exit_code(summary: dict) -> int:
    """The ``hearflow run`` exit status for a summary: 1 when the run failed (a source or
    the inference), else 3 when a sink lost output, else 130 when stopped by SIGINT,
    else 0 (also for a SIGTERM stop: it was asked for)."""
    if summary.get("error"):
        return EXIT_FAILURE
    if any(s.get("failed") for s in summary.get("sinks", {}).values()):
        return EXIT_OUTPUT_LOST
    if summary.get("stopped_by") == "SIGINT":
        return EXIT_SIGINT
    return EXIT_OK


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
    realtime: bool | None = True
    """Pace sources like live devices (True) or process files losslessly (False); None
    (``--streams`` only): each stream as its source's kind suggests."""
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
    """auto: the model on CUDA when there is a GPU, inputs built on the host with numpy (the
    default); cpu, cuda or cuda:N: the model there and the inputs built there in torch
    from the captured frames and audio (hearflow.engine.inputs)."""
    status: bool = True
    """Show the status line on stderr."""
    camera_fov: str | None = None
    """``--camera-fov HFOV[,VFOV]`` (degrees): an ideal centred pinhole camera."""
    camera_info: str | Path | None = None
    """``--camera-info FILE``: a ROS camera_info YAML (calibrated intrinsics, distortion)."""
    stream: str = ""
    """The stream's name when one process runs several (``--streams``); "" = one stream."""


def check_inputs(options: RunOptions) -> list:
    """Everything about the run that can be checked without the model, in milliseconds:
    --duration and --threads, the camera model and the peak settings, the --sink text,
    the --video/--audio specs and their files, that the model folder exists, then what
    the sinks need (output folders, a display). What the user typed is checked before
    what is on disk. Returns the sinks; raises HearflowError (one line)."""
    from hearflow.engine.sinks import parse_sinks
    from hearflow.engine.sources import check_specs

    o = options
    if o.duration is not None and not (math.isfinite(o.duration) and o.duration > 0):
        raise HearflowError(f"--duration must be a positive number of seconds, not {o.duration:g}")
    if o.threads < 0:
        raise HearflowError(f"--threads must be 0 (automatic) or more, not {o.threads}")
    parse_camera(o.camera_fov, o.camera_info)
    _check_peak_settings(o.engine)
    sinks = parse_sinks(o.sink, zmq_overlay=o.zmq_overlay, frame_id=o.frame_id, stream=o.stream)
    check_specs(o.video, o.audio, o.realtime)
    if not Path(o.model).exists():  # the same line load_backend gives, without importing torch first
        raise HearflowError(f"{o.model}: model not found (give a checkpoint folder or an export folder)")
    for sink in sinks:
        sink.check()
    return sinks


def _check_peak_settings(cfg: EngineConfig) -> None:
    if cfg.peaks_k < 0:
        raise HearflowError(f"peaks_k must be 0 or more, not {cfg.peaks_k}")
    for name in ("peaks_min_distance", "track_gate", "track_max_gap", "heartbeat_interval", "source_timeout"):
        v = getattr(cfg, name)
        if not (math.isfinite(v) and v > 0):
            raise HearflowError(f"{name} must be a positive number, not {v:g}")
    if not math.isfinite(cfg.peaks_threshold):
        raise HearflowError(f"peaks_threshold must be a number, not {cfg.peaks_threshold:g}")


def run_engine(options: RunOptions) -> dict:
    """Check the inputs, load the model, open sources and sinks, run until the end or a
    stop signal, return the summary (``stopped_by``: "SIGINT", "SIGTERM" or None)."""
    o = options
    line = StatusLine() if o.status else None
    log = line.log if line else stderr_log
    sinks = check_inputs(o)  # before importing torch: bad input fails in well under a second
    camera = parse_camera(o.camera_fov, o.camera_info)
    from hearflow.engine.sources import open_sources
    from hearflow.runtime.backends import load_backend
    from hearflow.runtime.device_frames import check_device

    check_device(o.device)  # no GPU for --device cuda: one line before the model loads

    threads = o.threads or default_threads()
    try:
        with StopSignals() as signals:
            log(f"loading {o.model} ...")
            be = load_backend(o.model, o.backend, device=o.device, threads=threads)
            pre = be.preprocess
            if o.realtime and pre.audio_window == "centered" and o.audio != "none":
                log(f"note: {o.model} was trained with audio windows centred on the frame; live input only has "
                    "the past, so the engine uses the trailing window")
            video_src, audio_src = open_sources(o.video, o.audio, pre, o.realtime)
            with contextlib.ExitStack() as sources:
                for src in {id(s): s for s in (video_src, audio_src) if s is not None}.values():
                    sources.enter_context(src)  # closed when the run ends, however it ends
                engine = Engine(be, video_src, audio_src, sinks, o.engine, realtime=o.realtime,
                                duration=o.duration, log=log, status=line, camera=camera,
                                device=None if o.device == "auto" else o.device)
                signals.attach(engine.stop)
                summary = engine.run()
    finally:
        if line:
            line.end()
    if signals.received:
        summary["interrupted"] = True
    summary.update(video=o.video, audio=o.audio, sinks=summary["sinks"], threads=threads, device=o.device,
                   stopped_by=signals.received)
    if o.summary_path:
        path = Path(o.summary_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2))
    return summary


def default_threads() -> int:
    from hearflow.runtime.backends import physical_cores

    # leave a core to capture, decoding and flow: on 2 cores a 2-thread runtime pool
    # competes with them and drops frames (docs/benchmarks.md, Engine)
    return max(1, physical_cores() - 1)
