"""The streaming engine: capture → inference → sinks, one job per thread.

    capture thread(s) ──FramePacket──► Mailbox (1 slot, newest wins) ──► inference thread
    audio source ──samples──► AudioRing (≥ 5 s)  ◄── window by timestamp ──┘      │
                                                                                  ▼
                                 one bounded queue + thread per sink ◄── Result ──┘

The inference thread computes the flow between the frame and the previous *captured*
frame, re-embeds the audio every ``audio_hop`` seconds of media time (not per frame),
runs the visual graph per frame and builds a :class:`Result`. The calling thread
supervises: it prints the status line, enforces ``--duration``, and on the end of the
source, Ctrl-C or an overlay's q/Esc stops everything and finalises every sink.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from hearflow.engine.capture import CaptureContext
from hearflow.engine.inputs import make_inputs
from hearflow.engine.log import stderr_log
from hearflow.engine.mailbox import Mailbox
from hearflow.engine.packets import FramePacket, Result
from hearflow.engine.ring import AudioRing
from hearflow.engine.sinks.base import Sink, SinkRunner, StreamInfo
from hearflow.engine.sources.base import LIVE_RATE, Source, VideoSource
from hearflow.media.audio import audio_window
from hearflow.runtime.confidence import confidence, rms_db
from hearflow.runtime.geometry import CameraModel, CameraSpec
from hearflow.runtime.interface import BackendUnavailable
from hearflow.runtime.peaks import PeakTracker, find_peaks


@dataclass(frozen=True)
class EngineConfig:
    audio_hop: float = 0.1
    """Seconds of media time between audio re-embeddings (the visual graph runs per frame)."""
    ring_seconds: float = 10.0
    """Audio ring buffer length (must exceed the model's window; ≥ 5 s)."""
    sink_queue: int = 4
    """Results buffered per sink; in realtime mode the oldest is dropped when full."""
    energy_gate_db: float = -40.0
    """Audio window RMS level (dBFS) at which the energy gate is half open. Calibrated with
    ``hearflow calibrate`` on synthetic negatives: silent clips sit at -51 dBFS, the
    quietest sounding ones at -24; -40 leaves room for quieter real microphones."""
    energy_gate_width_db: float = 4.0
    """Softness of the energy gate (dB per logistic unit)."""
    similarity_threshold: float = 0.6
    """Peak cosine similarity at which the similarity factor of the confidence is 0.5
    (``hearflow calibrate`` on synthetic clips with the committed tiny model: sounding
    clips peak at 0.76 (median), noise and off-screen sounds at 0.33; best split 0.61)."""
    similarity_width: float = 0.05
    """Softness of the similarity factor (cosine per logistic unit)."""
    status_interval: float = 0.5
    """Seconds between status-line refreshes."""
    peaks_k: int = 3
    """Most local maxima reported per frame (``peaks``; 0 = none)."""
    peaks_threshold: float = 0.5
    """Smallest map value (cosine similarity) a reported peak may have."""
    peaks_min_distance: float = 0.15
    """Non-maximum suppression: peaks closer than this (normalised frame units) to a
    stronger one are dropped."""
    track_gate: float = 0.2
    """Largest jump (normalised frame units) between a track's expected position and a
    peak for the peak to keep the track's id."""
    track_max_gap: float = 0.5
    """Seconds a track survives without a matching peak (then its id is retired)."""
    heartbeat_interval: float = 1.0
    """Seconds between hearflow.status messages (one is also sent on every state change)."""
    source_timeout: float = 1.0
    """No frame captured for this long (seconds, at least 3 frame periods) means the
    state is ``source lost``."""


def map_peak(m: np.ndarray) -> tuple[tuple[float, float], float]:
    """Peak of an m×n map as normalised (x, y) of the cell centre, and its value."""
    r, c = np.unravel_index(int(np.argmax(m)), m.shape)
    return ((c + 0.5) / m.shape[1], (r + 0.5) / m.shape[0]), float(m[r, c])


class LatencyStats:
    """Bounded record of latencies (seconds) for p50/p99 without growing memory."""

    def __init__(self, size: int = 2000):
        self.values = deque(maxlen=size)
        self.lock = threading.Lock()

    def add(self, v: float) -> None:
        with self.lock:
            self.values.append(v)

    def percentiles(self) -> tuple[float | None, float | None]:
        with self.lock:
            if not self.values:
                return None, None
            a = np.fromiter(self.values, float)
        return float(np.percentile(a, 50)), float(np.percentile(a, 99))


@dataclass
class Counters:
    processed: int = 0
    inference_dropped: int = 0
    """Captured frames never processed (overwritten in the mailbox)."""
    audio_embeddings: int = 0
    warming_up: int = 0
    inference_failed: int = 0
    """Frames lost because a remote backend could not answer (unreachable, timed out)."""
    last_confidence: float = 0.0
    result_latency: LatencyStats = field(default_factory=LatencyStats)
    publish_latency: LatencyStats = field(default_factory=LatencyStats)
    started: float = field(default_factory=time.monotonic)


class AudioWindows:
    """The audio window for a frame time, from the ring (live) or the whole track (offline).

    Live: the trailing window ending at the frame time; before enough audio exists it is
    padded as in training (``audio_window`` tiles what there is) and marked warming-up.
    Offline with the whole file available, the model's own placement (centred) is used.
    """

    def __init__(self, cfg, rate: int, ring: AudioRing | None, full: tuple[np.ndarray, int] | None):
        self.cfg, self.rate, self.ring, self.full = cfg, rate, ring, full
        self.n = cfg.window_samples(rate)
        self._buf = np.zeros(self.n, np.float32)

    def __call__(self, t: float) -> tuple[np.ndarray, bool]:
        if self.full is not None:
            wave, rate = self.full
            available = int(min(len(wave), round(t * rate)))
            warming = self.cfg.audio_window == "trailing" and available < self.n
            return audio_window(wave, rate, t, self.cfg), warming
        samples, k = self.ring.window(t, self.n, out=self._buf)
        if k >= self.n:
            return samples[: self.n], False
        # fewer samples than a window: pad exactly as training pads short clips
        return audio_window(samples[:k], self.rate, k / self.rate, self.cfg, placement="trailing"), True


class Engine:
    """Run a backend on a video source (+ optional audio source) into sinks.

    backend: a loaded inference backend (hearflow.runtime.backends).
    video / audio: opened sources (hearflow.engine.sources); audio may be None, or the
        video source itself when it writes the audio too.
    sinks: hearflow.engine.sinks.Sink instances.
    realtime: newest-frame-wins and drop-oldest sinks (live); False = lossless offline.
    duration: stop after this many seconds of media time (None = until the source ends).
    log: one-line logger for warnings and errors (default: the engine's stderr logger).
    status: callable(str) showing the status line, or None.
    camera: the camera (hearflow.runtime.geometry.CameraSpec) for peak directions, or None.
    device: None: inputs built on the host with numpy (the capture thread resizes); 'cpu',
        'cuda' or 'cuda:N': built there in torch from the captured frames
        (hearflow.engine.inputs).
    """

    def __init__(self, backend, video: VideoSource, audio: Source | None, sinks: list[Sink],
                 cfg: EngineConfig = EngineConfig(), realtime: bool = True, duration: float | None = None,
                 log=stderr_log, status=None, camera: CameraSpec | None = None, device: str | None = None):
        self.backend, self.video, self.audio, self.sinks = backend, video, audio, sinks
        self.cfg, self.realtime, self.duration = cfg, realtime, duration
        self.pre = backend.preprocess
        self.heartbeat = Heartbeat(self, cfg)
        self.log = self.heartbeat.watch_log(log)  # the heartbeat reports the last warning or error
        self.camera_spec = camera
        self.camera: CameraModel | None = None
        """The camera model for the frames' size (set at the first frame)."""
        self.tracker = PeakTracker(gate=cfg.track_gate, max_gap=cfg.track_max_gap)
        self.status = status
        self.stop = threading.Event()
        self.counters = Counters()
        self.mailbox = Mailbox(lossless=not realtime)
        self.rate = self._engine_rate()
        ring_seconds = max(cfg.ring_seconds, self.pre.audio_seconds + 2)
        self.ring = AudioRing(self.rate, ring_seconds) if audio is not None else None
        self.error: BaseException | None = None
        self.backend_down: str | None = None
        """While a remote backend fails: its last error (the heartbeat says 'backend unavailable')."""
        self.backend_error: str | None = None
        self.runners: list[SinkRunner] = []
        """One per sink, started by run()."""
        self.inputs = make_inputs(self.pre, self.rate, backend, device, size=video.size, log=self.log)
        """Builds the model inputs (host numpy, or torch on a device)."""
        self.ctx = CaptureContext(
            clock0=0.0, preprocess=self.pre, mailbox=self.mailbox, ring=self.ring, stop=self.stop,
            realtime=realtime, log=self.log, duration=duration,
            frames_on_host=self.inputs.frames_on_host, gray_on_host=self.inputs.gray_on_host,
        )
        """What the capture threads share; clock0 and the audio taps are set when run() starts."""
        self._capture_done = threading.Event()  # the video source has ended
        self._infer_done = threading.Event()
        self._threads: list[threading.Thread] = []  # capture threads, the video one last
        # inference-thread state: audio windows, the current audio embedding and its level
        self._windows = AudioWindows(self.pre, self.rate, self.ring, None) if audio is not None else None
        self._emb, self._emb_t, self._level, self._warming = None, -math.inf, -120.0, False

    def _engine_rate(self) -> int:
        if self.pre.sample_rate != "native":
            return int(self.pre.sample_rate)
        return int((self.audio.rate if self.audio is not None else None) or LIVE_RATE)

    def _full_audio(self) -> tuple[np.ndarray, int] | None:
        """The whole audio track for offline runs that have one (see Source.full_audio)."""
        if self.realtime:
            return None
        return self.video.full_audio or (self.audio.full_audio if self.audio is not None else None)

    # --- the inference thread ------------------------------------------------------
    def _infer_loop(self) -> None:
        pre, be, inputs = self.pre, self.backend, self.inputs
        if self._windows is not None:
            self._windows.full = self._full_audio()  # decoded here, not before the run starts
        last_seq, held = -1, None
        # flow_pair "next" (HTF's preprocessing): frame k is processed with the flow k → k+1,
        # so results come one captured frame late
        hold_for_next = be.uses_flow and pre.flow_pair == "next"
        while not self.stop.is_set():
            pkt: FramePacket | None = self.mailbox.get(timeout=0.05)
            if pkt is None:
                if self._capture_done.is_set() and self.mailbox.empty():
                    break
                continue
            if self.duration is not None and pkt.t_media >= self.duration:
                break
            if last_seq >= 0 and pkt.seq > last_seq + 1:
                self.counters.inference_dropped += pkt.seq - last_seq - 1
            last_seq = pkt.seq
            if not hold_for_next:
                self._process(pkt, inputs.flow(inputs.prev_gray(pkt), pkt))
                continue
            if held is not None:
                consecutive = pkt.seq == held.seq + 1
                earlier = inputs.gray(held) if consecutive else inputs.prev_gray(held)
                self._process(held, inputs.flow(earlier, pkt if consecutive else held))
            held = pkt
        if held is not None and not self.stop.is_set():  # the last frame has no next one
            self._process(held, inputs.flow(inputs.prev_gray(held), held))
        self.stop.set()

    def _process(self, pkt: FramePacket, flows) -> None:
        """One frame; a remote backend that cannot answer now loses this frame, not the run."""
        try:
            self._process_frame(pkt, flows)
        except BackendUnavailable as exc:
            self.counters.inference_failed += 1
            if self.backend_down is None:
                self.log(f"warning: inference: {exc}")
            self.backend_down = self.backend_error = str(exc)
            return
        if self.backend_down is not None:
            self.log(f"inference: {self.backend.name} backend answering again "
                     f"({self.counters.inference_failed} frames lost so far)")
            self.backend_down = None

    def _process_frame(self, pkt: FramePacket, flows) -> None:
        be, c = self.backend, self.counters
        t = pkt.t_media
        # audio: re-embed every hop of media time (or when time jumps back)
        if self._windows is not None and (t - self._emb_t >= self.cfg.audio_hop or t < self._emb_t):
            wave, self._warming = self._windows(t)
            self._level = rms_db(wave)
            self._emb, self._emb_t = be.embed_audio(self.inputs.spectrogram(wave)), t
            c.audio_embeddings += 1
        elif self._windows is None and self._emb is None:
            self._emb = be.embed_audio(self.inputs.blank_spectrogram()) * 0  # no audio: a zero map
        m = self.inputs.localize(be, pkt, flows, self._emb)[0]
        t_result = time.monotonic()
        peak, value = map_peak(m)
        conf = confidence(value, self._level, self.cfg) if self._windows is not None else 0.0
        warming = bool(self._warming) and self._windows is not None
        c.warming_up += warming
        h, w = pkt.rgb.shape[:2]
        camera = self._camera_for(w, h)
        peaks = find_peaks(m, self.cfg.peaks_k, self.cfg.peaks_threshold, self.cfg.peaks_min_distance)
        self.tracker.update(peaks, t)
        if camera is not None:
            for p in peaks:
                p.direction = camera.direction(p.x, p.y)
        result = Result(
            seq=c.processed, capture_seq=pkt.seq, t_capture=pkt.t_capture, t_media=t, t_result=t_result,
            map=m.astype(np.float32), peak=peak, peak_value=value, confidence=conf, audio_rms_db=self._level,
            warming_up=warming, frame_size=(w, h), rgb=pkt.rgb, peaks=peaks, camera=camera,
            direction=None if camera is None else camera.direction(*peak),
        )
        c.processed += 1
        c.last_confidence = conf
        c.result_latency.add(t_result - pkt.t_capture)
        for r in self.runners:
            r.put_result(result)

    def _camera_for(self, w: int, h: int) -> CameraModel | None:
        """The camera model for w × h frames (made once; again only if the size changes)."""
        if self.camera_spec is None:
            return None
        if self.camera is None or (self.camera.width, self.camera.height) != (w, h):
            self.camera = self.camera_spec.model(w, h, log=self.log)
        return self.camera

    def _infer_guarded(self) -> None:
        try:
            self._infer_loop()
        except Exception as exc:
            self.log(f"error: inference: {type(exc).__name__}: {exc}")
            self.error = exc
            self.stop.set()
        finally:
            self._infer_done.set()

    # --- starting ------------------------------------------------------------------
    def warm_up(self) -> None:
        """One call of each graph on zeros: runtimes allocate and pick kernels on their first
        call, which would otherwise make the first live frames late (and drop some)."""
        be, inputs, s = self.backend, self.inputs, self.pre.image_size
        emb = be.embed_audio(inputs.blank_spectrogram())
        be.localize(inputs.blank_frame(), inputs.zero_flow() if be.uses_flow else None, emb)
        inputs.warm_up(tuple(self.video.size or (s, s)))  # at the size live frames will have

    def _start_sinks(self) -> None:
        """Open every sink in its runner's thread (a sink that cannot open raises HearflowError)."""
        info = StreamInfo(
            fps=float(self.video.fps or 0.0), frame_size=tuple(self.video.size),
            audio_rate=self.rate if self.audio else None, model=self.backend.source, map_shape=None,
            realtime=self.realtime, stop=self.stop, log=self.log,
        )
        for sink in self.sinks:
            runner = SinkRunner(sink, queue_size=self.cfg.sink_queue, lossless=not self.realtime, log=self.log,
                                on_published=self._published)
            runner.start(info)
            self.runners.append(runner)

    def _start_threads(self, clock0: float) -> threading.Thread:
        """Start the capture threads (one per distinct source) and the inference thread;
        returns the video capture thread."""
        self.ctx.clock0 = clock0
        self.ctx.audio_taps.extend(r.put_audio for r in self.runners if r.sink.wants_audio)
        if self.audio is not None and self.audio is not self.video:
            self._threads.append(threading.Thread(target=self._capture, args=(self.audio,), name="audio-capture",
                                                  daemon=True))
        video_thread = threading.Thread(target=self._capture, args=(self.video,), name="video-capture", daemon=True)
        self._threads.append(video_thread)
        infer = threading.Thread(target=self._infer_guarded, name="inference", daemon=True)
        for t in self._threads + [infer]:
            t.start()
        return video_thread

    def _capture(self, source: Source) -> None:
        try:
            source.run(self.ctx)
        except Exception as exc:  # a source crash is reported and stops the run cleanly
            self.log(f"error: {type(source).__name__}: {exc}")
            self.error = exc
            self.stop.set()

    # --- supervision ---------------------------------------------------------------
    def run(self) -> dict:
        """Run until the source ends, ``duration``, Ctrl-C or a sink asks to stop; return the summary."""
        self.warm_up()
        clock0 = time.monotonic()
        self.counters.started = clock0
        self._start_sinks()
        self.heartbeat.beat()  # "starting": sinks are open, nothing captured yet
        video_thread = self._start_threads(clock0)
        interrupted = False
        try:
            self._supervise(video_thread)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self._shut_down()
        summary = self.summary(self.runners, interrupted)
        if interrupted:
            summary["interrupted"] = True
        for damage in summary["damaged_media"]:  # one line each: the run went on past it
            self.log(f"warning: {damage['note']}")
        return summary

    def _damage(self) -> list[dict]:
        """What the file sources could not decode (skipped packets, a truncated file)."""
        sources = [self.video] + ([self.audio] if self.audio is not None and self.audio is not self.video else [])
        return [{"source": r.path, "video_frames_lost": r.video_frames_lost,
                 "audio_seconds_lost": round(r.audio_seconds_lost, 3), "truncated": r.truncated,
                 "decoded_end": r.decoded_end, "note": r.describe()}
                for source in sources for r in source.damage()]

    def _supervise(self, video_thread: threading.Thread) -> None:
        """Until inference ends: notice the end of the video source, refresh the status line."""
        next_status = time.monotonic()
        # wait on an Event, not Thread.join: a Ctrl-C landing inside join() can leave
        # the thread marked as finished while it still runs (CPython bpo-45274)
        while not self._infer_done.wait(0.05):
            if not video_thread.is_alive():
                self._capture_done.set()
            if self.status and time.monotonic() >= next_status:
                self.status(self.status_line())
                next_status = time.monotonic() + self.cfg.status_interval
            self.heartbeat.beat()

    def _shut_down(self) -> None:
        """Stop every thread, then let each sink finish what is queued and close."""
        self.stop.set()
        self.heartbeat.stopping = True
        self.heartbeat.beat()
        self.mailbox.close()
        if not self._infer_done.wait(10):
            self.log("warning: inference did not stop within 10 s")
        for t in self._threads:
            t.join(timeout=5)
        for r in self.runners:
            r.stop()

    def _published(self, result: Result, t: float) -> None:
        self.counters.publish_latency.add(t - result.t_capture)

    def _captured(self) -> int:
        return int(self.ctx.counters.frames)

    def status_line(self) -> str:
        c = self.counters
        elapsed = max(1e-6, time.monotonic() - c.started)
        p50, p99 = c.result_latency.percentiles()
        lat = f"{p50 * 1000:.0f}/{p99 * 1000:.0f} ms" if p50 is not None else "-"
        return (f"in {self._captured() / elapsed:5.1f} fps | out {c.processed / elapsed:5.1f} fps | "
                f"latency p50/p99 {lat} | dropped {self.mailbox.dropped} | conf {c.last_confidence:.2f}"
                + (f" | BACKEND UNAVAILABLE ({c.inference_failed} frames lost)" if self.backend_down else ""))

    def _camera_summary(self) -> dict | None:
        if self.camera is not None:
            return self.camera.as_dict()
        if self.camera_spec is None:
            return None
        size = tuple(self.video.size or (0, 0))
        return self.camera_spec.model(*size).as_dict() if all(size) else None

    def summary(self, runners, interrupted: bool) -> dict:
        c = self.counters
        elapsed = max(1e-6, time.monotonic() - c.started)
        r50, r99 = c.result_latency.percentiles()
        p50, p99 = c.publish_latency.percentiles()
        ms = (lambda v: None if v is None else round(v * 1000, 2))
        return {
            "model": self.backend.source,
            "backend": self.backend.name,
            "precision": getattr(self.backend, "precision", "fp32"),
            "realtime": self.realtime,
            "seconds": round(elapsed, 3),
            "captured": self._captured(),
            "processed": c.processed,
            "dropped": {"before_inference": self.mailbox.dropped,
                        "sinks": {r.sink.name: r.dropped for r in runners}},
            "fps_in": round(self._captured() / elapsed, 2),
            "fps_out": round(c.processed / elapsed, 2),
            "latency_ms": {"capture_to_result_p50": ms(r50), "capture_to_result_p99": ms(r99),
                           "capture_to_published_p50": ms(p50), "capture_to_published_p99": ms(p99)},
            "audio_embeddings": c.audio_embeddings,
            "warming_up_frames": c.warming_up,
            "camera": self._camera_summary(),
            "peaks": {"k": self.cfg.peaks_k, "threshold": self.cfg.peaks_threshold,
                      "min_distance": self.cfg.peaks_min_distance, "track_gate": self.cfg.track_gate,
                      "track_max_gap": self.cfg.track_max_gap},
            "status_messages": self.heartbeat.sent,
            "sinks": {r.sink.name: r.report() for r in runners},
            "damaged_media": self._damage(),
            "inference_failed": {"frames": c.inference_failed, "last_error": self.backend_error},
            "error": None if self.error is None else str(self.error),
        }


ENGINE_STATES = ("starting", "running", "source lost", "reconnecting", "backend unavailable", "stopping")
"""The engine states a hearflow.status message reports (docs/wire_format.md)."""


class Heartbeat:
    """The engine's status messages: every ``heartbeat_interval`` seconds and at once on a
    state change, whether or not frames arrive, to every sink (Sink.write_status).

    Driven by the supervisor loop (every 50 ms), so it goes on while capture or inference
    is stuck: that is when a robot needs it most.
    """

    def __init__(self, engine: Engine, cfg: EngineConfig):
        self.engine, self.cfg = engine, cfg
        self.seq = 0
        self.sent = 0
        self.state: str | None = None
        self.stopping = False
        self.last_error: str | None = None
        self.last_error_t: float | None = None
        self._next = 0.0
        self._last_frames, self._last_frame_t = 0, None
        self._errors_at_last_frame = 0
        self._window = deque(maxlen=64)  # (t, captured, processed) for recent rates

    def watch_log(self, log):
        """``log``, remembering the last warning or error line for the status messages."""
        def logged(message: str) -> None:
            if message.startswith(("error", "warning")) or " failed" in message or " lost" in message:
                self.last_error, self.last_error_t = message, time.monotonic()
            log(message)
        return logged

    def current_state(self, now: float) -> str:
        e = self.engine
        if self.stopping or e.stop.is_set():
            return "stopping"
        frames = e._captured()
        counters = e.ctx.counters
        if frames != self._last_frames or self._last_frame_t is None and frames:
            self._last_frames, self._last_frame_t = frames, now
            self._errors_at_last_frame = counters.errors
        if self._last_frame_t is None:
            return "starting"
        fps = float(e.video.fps or 0.0)
        timeout = max(self.cfg.source_timeout, 3.0 / fps if fps > 0 else 0.0)
        if now - self._last_frame_t < timeout:
            return "backend unavailable" if e.backend_down else "running"
        # the source itself reported a loss since its last frame: it is retrying
        return "reconnecting" if counters.errors > self._errors_at_last_frame else "source lost"

    def beat(self) -> None:
        """Send a status message when one is due or the state changed."""
        now = time.monotonic()
        state = self.current_state(now)
        if state == self.state and now < self._next:
            return
        self.state = state
        self._next = now + self.cfg.heartbeat_interval
        status = self.message(now, state)
        for r in self.engine.runners:
            r.put_status(status)
        self.sent += 1
        self.seq += 1

    def message(self, now: float, state: str) -> dict:
        """The status dict (serialised by each sink; docs/wire_format.md, hearflow.status)."""
        e, c = self.engine, self.engine.counters
        captured, processed = e._captured(), c.processed
        self._window.append((now, captured, processed))
        # rates over the last ~2 s, so a stalled source shows as 0 fps, not as the run's average
        old = next((w for w in self._window if now - w[0] <= 2.0 + 1e-9), self._window[0])
        span = now - old[0]
        fps_in = (captured - old[1]) / span if span > 0 else 0.0
        fps_out = (processed - old[2]) / span if span > 0 else 0.0
        p50, p99 = c.result_latency.percentiles()
        ms = (lambda v: None if v is None else round(v * 1000, 2))
        return {
            "seq": self.seq,
            "state": state,
            "t_monotonic": now,
            "uptime_s": round(now - c.started, 3),
            "fps_in": round(fps_in, 2),
            "fps_out": round(fps_out, 2),
            "captured": captured,
            "processed": processed,
            "dropped": {"before_inference": e.mailbox.dropped,
                        "sinks": {r.sink.name: r.dropped for r in e.runners}},
            "latency_ms": {"p50": ms(p50), "p99": ms(p99)},
            # null until the first audio window was measured (and without audio)
            "audio_rms_db": round(e._level, 2) if e.audio is not None and c.audio_embeddings else None,
            "confidence": round(c.last_confidence, 4),
            "last_frame_age_s": None if self._last_frame_t is None else round(now - self._last_frame_t, 3),
            "reconnects": e.ctx.counters.reconnects,
            "last_error": self.last_error,
            "last_error_age_s": None if self.last_error_t is None else round(now - self.last_error_t, 3),
            "model": e.backend.source,
        }
