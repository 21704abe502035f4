"""``hearflow run --streams streams.yaml``: several cameras, one model, one process.

Each stream is a whole :class:`~hearflow.engine.pipeline.Engine` of its own — capture,
flow, audio windows, peaks, heartbeat, sinks, counters and summary — so a stream that
fails (camera lost, file damaged) stops alone. They share one loaded backend through
:class:`~hearflow.engine.batching.BatchingBackend`, which runs the streams' concurrent
visual (and audio) calls as one batch, waiting at most ``max_wait_ms`` for stragglers.

streams.yaml::

    max_wait_ms: 4          # longest a batch waits for the other streams' frames
    streams:
      - {name: front, video: 0, audio: mic, sink: "zmq,http:8080", camera_fov: 90}
      - {name: back, video: "rtsp://10.0.0.7/stream", audio: none, sink: zmq}

The zmq sinks of all streams on one endpoint share its socket; each stream publishes
on ``hearflow.heatmap.NAME`` / ``hearflow.status.NAME`` (a subscriber to the
``hearflow.heatmap`` prefix gets them all) with ``frame_id`` = the stream's name unless
given, and a ``stream`` field in every header.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hearflow import config
from hearflow.engine.batching import BatchingBackend
from hearflow.engine.log import stderr_log
from hearflow.engine.pipeline import Engine
from hearflow.engine.run import RunOptions, StatusLine, StopSignals, default_threads, check_inputs, exit_code
from hearflow.errors import EXIT_FAILURE, EXIT_OK, EXIT_OUTPUT_LOST, EXIT_SIGINT, HearflowError
from hearflow.runtime.geometry import parse_camera

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class StreamSpec:
    """One stream: the same specs ``--video/--audio/--sink/--camera-*`` take."""

    name: str
    """Letters, digits, '-' and '_': the ZeroMQ topic suffix and the summary key."""
    video: str | int
    audio: str = "same"
    sink: str = "zmq"
    frame_id: str | None = None
    """frame_id in the headers (default: the name)."""
    camera_fov: str | float | None = None
    camera_info: str | None = None

    def __post_init__(self):
        if not NAME.match(str(self.name)):
            raise ValueError(f"stream name {self.name!r} must be 1-64 letters, digits, '-' or '_'")


@dataclass(frozen=True)
class StreamsConfig:
    streams: tuple[StreamSpec, ...] = ()
    max_wait_ms: float = 4.0
    """Longest a batch's first frame waits for the other streams' (added latency bound)."""
    max_batch: int = 0
    """Largest batch (0: the number of streams)."""

    def __post_init__(self):
        if not self.streams:
            raise ValueError("no streams given (a 'streams:' list with at least one entry)")
        names = [s.name for s in self.streams]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"stream name {twice[0]!r} is used twice")
        if not (0 <= self.max_wait_ms <= 1000):
            raise ValueError(f"max_wait_ms must be between 0 and 1000, not {self.max_wait_ms:g}")


def load_streams(path: str | Path) -> StreamsConfig:
    """The streams file; ConfigError (one line, with the file and key) when it is wrong."""
    return config.load(StreamsConfig, path)


def stream_options(base: RunOptions, spec: StreamSpec) -> RunOptions:
    """The run options of one stream: ``base`` (model, backend, realtime, engine settings)
    with the stream's own sources, sinks and camera. ``base.realtime`` None: each stream
    decides as ``hearflow run`` does (a file offline, a device live)."""
    from hearflow.engine.sources import default_realtime

    fov = spec.camera_fov
    realtime = default_realtime(str(spec.video)) if base.realtime is None else base.realtime
    return dataclasses.replace(
        base, video=str(spec.video), realtime=realtime, audio=spec.audio, sink=spec.sink, frame_id=spec.frame_id or spec.name,
        camera_fov=None if fov is None else str(fov), camera_info=spec.camera_info, stream=spec.name,
        summary_path=None, status=False)


def check_streams(base: RunOptions, cfg: StreamsConfig) -> dict[str, list]:
    """Every stream's inputs checked before the model loads (``check_inputs``), and no two
    streams writing the same output (zmq endpoints excepted: those are shared)."""
    sinks, owner = {}, {}
    for spec in cfg.streams:
        try:
            sinks[spec.name] = check_inputs(stream_options(base, spec))
        except HearflowError as exc:
            raise HearflowError(f"stream {spec.name}: {exc}") from None
        for sink in sinks[spec.name]:
            key = sink.spec_key()
            if key in owner and not sink.name.startswith("zmq"):
                raise HearflowError(f"streams {owner[key]} and {spec.name} both write to {sink.name}")
            owner[key] = spec.name
    return sinks


class _StopAll:
    """What StopSignals sets on SIGINT/SIGTERM: every stream's stop event."""

    def __init__(self):
        self.engines: list[Engine] = []
        self.event = threading.Event()

    def set(self) -> None:
        self.event.set()
        for e in self.engines:
            e.stop.set()


def run_streams(base: RunOptions, cfg: StreamsConfig) -> dict:
    """Check every stream, load the model once, run all streams until each ends or a stop
    signal; return {"streams": {name: summary}, "batching": ..., "stopped_by": ...}."""
    line = StatusLine() if base.status else None
    log = line.log if line else stderr_log
    sinks = check_streams(base, cfg)
    from hearflow.runtime.backends import load_backend
    from hearflow.runtime.device_frames import check_device

    check_device(base.device)  # no GPU for --device cuda: one line before the model loads

    threads = base.threads or default_threads()
    stop_all, summaries = _StopAll(), {}
    try:
        with StopSignals() as signals, contextlib.ExitStack() as sources:
            log(f"loading {base.model} ...")
            be = BatchingBackend(load_backend(base.model, base.backend, device=base.device, threads=threads),
                                 max_wait=cfg.max_wait_ms / 1000, max_batch=cfg.max_batch)
            signals.attach(stop_all)
            engines = _open_engines(base, cfg, be, sinks, sources, log, summaries)
            stop_all.engines.extend(engines.values())
            if stop_all.event.is_set():
                stop_all.set()
            _run_all(engines, be, summaries, line)
            be.close()
    finally:
        if line:
            line.end()
    summary = {"model": str(base.model), "backend": be.name, "threads": threads, "streams": summaries,
               "batching": be.report(), "stopped_by": signals.received}
    if base.summary_path:
        path = Path(base.summary_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2))
    return summary


def _open_engines(base, cfg, be, sinks, sources, log, summaries) -> dict[str, Engine]:
    """An Engine per stream whose sources open; a stream whose source cannot open is
    reported failed in its summary and the others go on."""
    from hearflow.engine.sources import open_sources

    engines = {}
    for spec in cfg.streams:
        o = stream_options(base, spec)
        slog = (lambda message, name=spec.name: log(f"[{name}] {message}"))
        try:
            video, audio = open_sources(o.video, o.audio, be.preprocess, o.realtime)
        except HearflowError as exc:
            slog(f"error: {exc}")
            summaries[spec.name] = {"error": str(exc), "video": o.video, "audio": o.audio}
            continue
        for src in {id(s): s for s in (video, audio) if s is not None}.values():
            sources.enter_context(src)
        engines[spec.name] = Engine(be, video, audio, sinks[spec.name], o.engine, realtime=o.realtime,
                                    duration=o.duration, log=slog, status=None,
                                    camera=parse_camera(o.camera_fov, o.camera_info),
                                    device=None if o.device == "auto" else o.device)
        be.register()
    return engines


def _run_all(engines: dict[str, Engine], be: BatchingBackend, summaries: dict, line) -> None:
    """One thread per stream runs its Engine; this thread shows one status line for all."""

    def run_one(name: str, engine: Engine) -> None:
        try:
            summaries[name] = engine.run()
        except Exception as exc:  # a stream's failure is its own
            summaries[name] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            be.unregister()

    threads = [threading.Thread(target=run_one, args=item, name=f"stream-{item[0]}", daemon=True)
               for item in engines.items()]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        if line:
            line(" | ".join(f"{n} {e.counters.processed / max(1e-6, time.monotonic() - e.counters.started):4.1f} fps"
                            for n, e in engines.items()))
        for t in threads:
            t.join(timeout=0.5 / max(1, len(threads)))


def streams_exit_code(summary: dict) -> int:
    """1 when any stream failed, else 3 when any lost output, else 130 for SIGINT, else 0."""
    codes = {exit_code(s) for s in summary["streams"].values()}
    for code in (EXIT_FAILURE, EXIT_OUTPUT_LOST):
        if code in codes:
            return code
    return EXIT_SIGINT if summary.get("stopped_by") == "SIGINT" else EXIT_OK


__all__ = ["StreamSpec", "StreamsConfig", "check_streams", "load_streams", "run_streams", "streams_exit_code"]
