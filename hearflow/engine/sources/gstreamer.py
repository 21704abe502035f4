"""GStreamer sources: ``gst:<pipeline ending in appsink>`` for video or audio.

The user's pipeline is built with ``Gst.parse_launch``; hearflow finds its appsink and
sets the caps it needs (video/x-raw,format=RGB or audio/x-raw,format=F32LE,channels=1,
rate=<engine rate>; put videoconvert / audioconvert ! audioresample before it), pulls
samples from it in the capture thread and maps buffer timestamps to the engine clock.

Timestamps: a buffer's PTS, converted to running time by its segment, plus the
pipeline's base time is the pipeline-clock time it was captured at (live sources) or is
due at (sync=true); the offset between the pipeline clock and time.monotonic() is
measured when each sample is pulled, so no assumption is made about which clock the
pipeline uses. t_capture is that time (never later than now); t_media is
t_capture - clock0 in realtime runs and the running time in offline runs.
"""

from __future__ import annotations

import importlib.machinery
import sys
import time
from pathlib import Path

import numpy as np

from hearflow.engine.capture import CaptureContext, FrameBuilder
from hearflow.engine.sources.base import LIVE_RATE, AudioSource, Source, VideoSource
from hearflow.errors import HearflowError, MissingDependency
from hearflow.media.preprocess import PreprocessConfig

GST_INSTALL_HINT = "apt install python3-gst-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good"
DEBIAN_DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
"""Where Debian's python3-gi / python3-gst-1.0 install PyGObject (the well-known path)."""
PULL_TIMEOUT = 0.1
"""Seconds a pull waits for a sample before checking ctx.stop and the bus again."""
OPEN_TIMEOUT = 5.0
"""Seconds open() waits for the pipeline to start (preroll) to report errors early."""
GST_AUDIO_MAX_SKEW = 0.05
"""Seconds a live pipeline's sample-count timeline may drift before it is re-anchored."""

_GST = None


def _debian_gi_path() -> str | None:
    """Debian's dist-packages if it holds a PyGObject built for this Python, else None."""
    gi_dir = DEBIAN_DIST_PACKAGES / "gi"
    if not (gi_dir / "__init__.py").is_file():
        return None
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    if any(p.name.startswith("_gi") and any(p.name.endswith(s) for s in suffixes) for p in gi_dir.iterdir()):
        return str(DEBIAN_DIST_PACKAGES)
    return None


def import_gst():
    """Gst (initialised), or MissingDependency with what to install.

    PyGObject is not on PyPI in a form that finds the system's GStreamer typelibs
    easily, so hearflow uses Debian's python3-gst-1.0. That installs into the system
    Python's dist-packages, which a virtual environment (or another Python of the same
    version) does not see: when ``import gi`` fails, that directory is appended to
    sys.path — at the end, so the environment's own packages still win — provided its
    compiled module matches this Python.
    """
    global _GST
    if _GST is not None:
        return _GST
    _load_cxx_extensions_first()
    try:
        import gi
    except ImportError:
        path = _debian_gi_path()
        if path is None:
            raise MissingDependency(f"gst: sources need PyGObject and GStreamer for this Python: {GST_INSTALL_HINT}") from None
        sys.path.append(path)
        try:
            import gi
        except ImportError as exc:
            raise MissingDependency(f"gst: cannot import PyGObject ({exc}): {GST_INSTALL_HINT}") from None
    try:
        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
    except (ValueError, ImportError) as exc:
        raise MissingDependency(f"gst: GStreamer's Python bindings are missing ({exc}): {GST_INSTALL_HINT}") from None
    Gst.init(None)
    _GST = Gst
    return Gst


# C++ extension modules hearflow uses. One first imported *after* Debian's GStreamer was
# initialised in this process aborts the interpreter on its first C++ exception
# (std::terminate: seen with torch, onnx, onnxruntime, OpenCV and PyAV, e.g. when an
# export follows a GStreamer run); imported before, they work.
CXX_EXTENSIONS = ("cv2", "av", "torch", "onnx", "onnxruntime")


def _load_cxx_extensions_first() -> None:
    import importlib

    for name in CXX_EXTENSIONS:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # not installed: nothing of it can be loaded later either


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else "unknown error"


class _GstSource(Source):
    """Common part: build the pipeline, find the appsink, pull samples, map times.

    pipeline: the gst-launch style description (without ``gst:``), ending in an appsink.
    cfg: preprocessing config.
    realtime: live behaviour (appsink sync on, see subclasses) vs as fast as possible.
    """

    kind = ""

    def __init__(self, pipeline: str, cfg: PreprocessConfig, realtime: bool = True):
        self.description, self.cfg, self.realtime = pipeline, cfg, realtime
        self.name = f"gst:{pipeline}"
        self.pipeline = None
        self.sink = None
        self.Gst = None

    # --- subclass hooks
    def _caps(self) -> str:
        raise NotImplementedError

    def _sink_props(self) -> dict:
        raise NotImplementedError

    # --- opening
    def _bus_error(self) -> str | None:
        bus = self.pipeline.get_bus()
        msg = bus.pop_filtered(self.Gst.MessageType.ERROR) if bus is not None else None
        if msg is None:
            return None
        err, debug = msg.parse_error()
        return _first_line(err.message)

    def open(self) -> None:
        Gst = self.Gst = import_gst()
        from gi.repository import GLib

        try:
            pipeline = Gst.parse_launch(self.description)
        except GLib.Error as exc:
            raise HearflowError(f"gst ({self.kind}): cannot build the pipeline: {_first_line(exc.message)}") from None
        sink = None
        if isinstance(pipeline, Gst.Bin):
            it = pipeline.iterate_sinks()
            while True:
                res, element = it.next()
                if res != Gst.IteratorResult.OK:
                    break
                factory = element.get_factory()
                if factory is not None and factory.get_name() == "appsink":
                    sink = element
                    break
        if sink is None:
            raise HearflowError(f"gst ({self.kind}): the pipeline must end in an appsink (… ! appsink)")
        self.pipeline, self.sink = pipeline, sink
        sink.set_property("caps", Gst.Caps.from_string(self._caps()))
        sink.set_property("emit-signals", False)
        for key, value in self._sink_props().items():
            sink.set_property(key, value)
        try:
            # PAUSED (preroll) only: bad caps, missing devices and unreachable streams fail
            # here, in one line; data starts flowing in run() (PLAYING), after clock0.
            if pipeline.set_state(Gst.State.PAUSED) == Gst.StateChangeReturn.FAILURE:
                raise HearflowError(f"gst ({self.kind}): the pipeline does not start: {self._bus_error() or 'state change failed'}")
            ret, _, _ = pipeline.get_state(int(OPEN_TIMEOUT * Gst.SECOND))
            problem = self._bus_error()
            if ret == Gst.StateChangeReturn.FAILURE or problem:
                raise HearflowError(f"gst ({self.kind}): the pipeline does not start: {problem or 'state change failed'}")
        except BaseException:
            self.close()
            raise

    def _play(self) -> None:
        if self.pipeline.set_state(self.Gst.State.PLAYING) == self.Gst.StateChangeReturn.FAILURE:
            raise HearflowError(f"gst ({self.kind}): the pipeline does not play: {self._bus_error() or 'state change failed'}")

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.set_state(self.Gst.State.NULL)
            self.pipeline = None

    # --- capture
    def _pull(self, ctx: CaptureContext):
        """(sample, t_capture, running_time_s) items until EOS / stop; raises on pipeline errors."""
        Gst = self.Gst
        timeout = int(PULL_TIMEOUT * Gst.SECOND)
        self._play()
        while not ctx.stop.is_set():
            sample = self.sink.emit("try-pull-sample", timeout)
            if sample is None:
                problem = self._bus_error()
                if problem:
                    raise HearflowError(f"gst ({self.kind}): {problem}")
                if self.sink.get_property("eos"):
                    return
                continue
            now = time.monotonic()
            buf = sample.get_buffer()
            running = None
            if buf.pts != Gst.CLOCK_TIME_NONE:
                rt = sample.get_segment().to_running_time(Gst.Format.TIME, buf.pts)
                if rt != Gst.CLOCK_TIME_NONE:
                    running = rt / Gst.SECOND
            t_capture = now
            clock = self.pipeline.get_clock()
            if running is not None and clock is not None:
                # pipeline-clock time of the buffer, moved onto the monotonic clock via the
                # offset measured right now; a buffer due later (unsynced, as fast as
                # possible) counts as captured now
                due = (self.pipeline.get_base_time() + running * Gst.SECOND) / Gst.SECOND
                t_capture = min(now, now - (clock.get_time() / Gst.SECOND - due))
            yield sample, buf, t_capture, running

    def _t_media(self, ctx: CaptureContext, t_capture: float, running: float | None, fallback: float) -> float:
        if self.realtime:
            return t_capture - ctx.clock0
        return running if running is not None else fallback


class GstVideoSource(_GstSource, VideoSource):
    """``gst:… ! appsink`` as the video source (RGB frames).

    Realtime: appsink max-buffers=1 drop=true sync=true — the newest frame only, at its
    time. Offline: no dropping (the pipeline waits for inference) and no syncing.
    """

    kind = "video"

    def __init__(self, pipeline: str, cfg: PreprocessConfig, realtime: bool = True):
        super().__init__(pipeline, cfg, realtime)
        self.fps = 0.0
        self.size = (0, 0)
        self.rate = None

    def _caps(self) -> str:
        return "video/x-raw,format=RGB"

    def _sink_props(self) -> dict:
        if self.realtime:
            return {"max-buffers": 1, "drop": True, "sync": True}
        return {"max-buffers": 2, "drop": False, "sync": False}

    def open(self) -> None:
        super().open()
        pad = self.sink.get_static_pad("sink")
        caps = pad.get_current_caps() if pad is not None else None
        if caps is not None and caps.get_size():
            self._read_caps(caps.get_structure(0))

    def _read_caps(self, s) -> None:
        ok_w, w = s.get_int("width")
        ok_h, h = s.get_int("height")
        if ok_w and ok_h:
            self.size = (w, h)
        ok, num, den = s.get_fraction("framerate")
        if ok and num > 0 and den > 0:
            self.fps = num / den

    def run(self, ctx: CaptureContext) -> None:
        builder = FrameBuilder(self.cfg, ctx)
        count = 0
        try:
            for sample, buf, t_capture, running in self._pull(ctx):
                s = sample.get_caps().get_structure(0)
                self._read_caps(s)
                w, h = self.size
                fps = self.fps or 30.0
                ok, info = buf.map(self.Gst.MapFlags.READ)
                if not ok:
                    continue
                try:
                    data = np.frombuffer(info.data, dtype=np.uint8)
                    stride = len(data) // h  # rows are padded to 4 bytes for odd widths
                    rgb = data[: stride * h].reshape(h, stride)[:, : w * 3].reshape(h, w, 3).copy()
                finally:
                    buf.unmap(info)
                t_media = self._t_media(ctx, t_capture, running, count / fps)
                if ctx.past_duration(t_media):
                    return
                count += 1
                if not ctx.deliver(builder.build(rgb, t_media, t_capture, fps)):
                    return
        finally:
            self.close()


class GstAudioSource(_GstSource, AudioSource):
    """``gst:… ! appsink`` as the audio source (mono float32 at the engine rate).

    Nothing is dropped (max-buffers bounds the backlog and back-pressures the pipeline);
    realtime syncs to the clock. The first buffer anchors the ring's timeline; after
    that it advances by sample count, re-anchored if it drifts by more than
    GST_AUDIO_MAX_SKEW from the buffers' own times.
    """

    kind = "audio"

    def __init__(self, pipeline: str, cfg: PreprocessConfig, realtime: bool = True):
        super().__init__(pipeline, cfg, realtime)
        self.rate = cfg.rate_for(LIVE_RATE)

    def _caps(self) -> str:
        return f"audio/x-raw,format=F32LE,channels=1,rate={self.rate},layout=interleaved"

    def _sink_props(self) -> dict:
        return {"max-buffers": 64, "drop": False, "sync": self.realtime}

    def run(self, ctx: CaptureContext) -> None:
        first = True
        done = 0
        try:
            for sample, buf, t_capture, running in self._pull(ctx):
                ok, info = buf.map(self.Gst.MapFlags.READ)
                if not ok:
                    continue
                try:
                    x = np.frombuffer(info.data, dtype="<f4").copy()
                finally:
                    buf.unmap(info)
                t_media = self._t_media(ctx, t_capture, running, done / self.rate)
                if ctx.past_duration(t_media):
                    return
                done += len(x)
                ring = ctx.ring
                if first:
                    ctx.emit_audio(x, t_media, t_capture, self.rate)
                    first = False
                    continue
                if ring is not None and abs(t_media - ring.end_time) > GST_AUDIO_MAX_SKEW:
                    ring.retime(t_media)
                ctx.emit_audio(x, None, t_capture, self.rate)
        finally:
            self.close()


__all__ = ["GstAudioSource", "GstVideoSource", "import_gst"]
