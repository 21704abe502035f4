"""Live devices: a camera (OpenCV) and a microphone (sounddevice / PortAudio).

Both are live: t_capture is when the device captured the data, mapped to the engine
clock, and t_media = t_capture - clock0. A device that disappears is logged and reopened
with exponential backoff while the rest of the engine keeps running.
"""

from __future__ import annotations

import contextlib
import time

from hearflow.engine.capture import Backoff, CaptureContext, FrameBuilder
from hearflow.errors import HearflowError, MissingDependency
from hearflow.media.preprocess import PreprocessConfig

DEFAULT_CAMERA_FPS = 30.0
"""Frame rate assumed until a camera's own rate is known (it reports none or nonsense)."""
MIC_MAX_SKEW = 0.05
"""Seconds the mic's sample-count timeline may drift from the engine clock before the
ring's timeline is shifted back onto it (sound cards run on their own crystal)."""
MIC_WATCHDOG = 2.0
"""A microphone whose callback has not run for this long is treated as lost."""
AUDIO_INSTALL_HINT = "pip install 'hearflow[audio]' (sounddevice) and apt install libportaudio2 (PortAudio)"


# --------------------------------------------------------------------------- camera
@contextlib.contextmanager
def _quiet_opencv():
    """OpenCV prints several WARN/ERROR lines when a camera index does not exist; we
    report that ourselves in one line, so silence its logger while opening."""
    import cv2

    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    old = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(old)


def _default_capture(index: int):
    import cv2

    return cv2.VideoCapture(index)


class CameraSource:
    """A camera by index, read in its own thread that always delivers the newest frame.

    index: camera index (0, 1, ...: /dev/video<index> on Linux).
    cfg: preprocessing config (frame size, flow).
    capture_factory: callable(index) → a cv2.VideoCapture-like object (isOpened, read,
        get, set, release); cv2.VideoCapture by default. Tests inject a fake camera here.
    backoff: (first, limit) seconds between reopening attempts after the camera is lost.

    Why a dedicated reader: OpenCV (V4L2, DirectShow, ...) queues several frames, and
    whoever reads slower than the camera gets ever older ones. This thread reads every
    frame as soon as it exists (the buffer is also set to 1 where the backend allows),
    turns it into a FramePacket (cheap: one resize, one grayscale) and puts it in the
    latest-wins mailbox, so inference always takes the newest frame and prev_gray is the
    frame captured just before it.
    """

    def __init__(self, index: int, cfg: PreprocessConfig, capture_factory=None, backoff: tuple[float, float] = (0.5, 8.0)):
        self.index, self.cfg = int(index), cfg
        self.factory = capture_factory or _default_capture
        self.backoff = backoff
        self.name = f"camera {self.index}"
        self.cap = None
        self.fps = DEFAULT_CAMERA_FPS
        self.size = (0, 0)
        self.rate = None
        self.full_audio = None

    def _open_capture(self):
        """A working capture object, or None when the camera cannot be opened."""
        import cv2

        try:
            with _quiet_opencv():
                cap = self.factory(self.index)
        except Exception:  # noqa: BLE001 - any backend failure means "not available"
            return None
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            return None
        with contextlib.suppress(Exception):
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # not every backend supports it
        reported = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if 1.0 <= reported <= 1000.0:
            self.fps = reported
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if width and height:
            self.size = (width, height)
        return cap

    def open(self) -> None:
        self.cap = self._open_capture()
        if self.cap is None:
            raise HearflowError(
                f"camera {self.index} is not available (no such device, or in use by another program)"
            )

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None

    def run(self, ctx: CaptureContext) -> None:
        import cv2

        builder = FrameBuilder(self.cfg)
        backoff = Backoff(*self.backoff)
        fps = self.fps
        last_t = None
        try:
            while not ctx.stop.is_set():
                if self.cap is None:  # lost: wait, then try to reopen
                    delay = backoff.next()
                    if ctx.stop.wait(delay):
                        return
                    self.cap = self._open_capture()
                    if self.cap is None:
                        ctx.log(f"warning: camera {self.index} still unavailable; retrying in {backoff.delay:.1f} s")
                        continue
                    ctx.counters.add("reconnects")
                    ctx.log(f"camera {self.index} is back")
                    backoff.reset()
                    builder.reset()  # no flow across the gap
                    last_t = None
                ok, bgr = self.cap.read()
                now = time.monotonic()
                if not ok or bgr is None:
                    ctx.counters.add("errors")
                    ctx.log(f"warning: camera {self.index} lost; retrying in {backoff.delay:.1f} s")
                    self.close()
                    continue
                t_media = now - ctx.clock0
                if ctx.past_duration(t_media):
                    return
                if last_t is not None and now > last_t:
                    # the real frame interval is the flow's time step: follow it (a camera
                    # in low light may halve its rate whatever it reported)
                    fps = 0.9 * fps + 0.1 / (now - last_t)
                last_t = now
                rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGR2RGB)
                self.size = (rgb.shape[1], rgb.shape[0])
                if not ctx.deliver(builder.build(rgb, t_media, now, fps)):
                    return
        finally:
            self.close()


# --------------------------------------------------------------------------- microphone
def import_sounddevice():
    """The sounddevice module, or MissingDependency saying what to install."""
    try:
        import sounddevice
    except ImportError:
        raise MissingDependency(f"microphone input needs sounddevice: {AUDIO_INSTALL_HINT}") from None
    except OSError:  # the package is there but libportaudio is not
        raise MissingDependency(f"microphone input needs the PortAudio library: {AUDIO_INSTALL_HINT}") from None
    return sounddevice


class MicSource:
    """A microphone through sounddevice (PortAudio): mono float32 at the engine rate.

    device: PortAudio device index or (part of its) name; None = the default input.
    cfg: preprocessing config (the rate: cfg.sample_rate, or 22050 for ``native``).
    backoff: (first, limit) seconds between reopening attempts after the device is lost.
    blocksize: frames per callback (0: PortAudio's choice, lowest latency).

    The PortAudio callback only copies into ctx.ring and hands the block to the taps: no
    logging, no locks, nothing large allocated. Its first sample's time is the ADC time
    PortAudio reports (``inputBufferAdcTime``), mapped to the engine clock through
    ``currentTime`` (both on the stream's clock). After the first block the ring's
    timeline advances by sample count; when that drifts from the engine clock by more
    than MIC_MAX_SKEW the timeline is shifted back (ring.retime), keeping the samples.
    """

    def __init__(self, device, cfg: PreprocessConfig, backoff: tuple[float, float] = (0.5, 8.0), blocksize: int = 0):
        self.device, self.cfg, self.backoff, self.blocksize = device, cfg, backoff, blocksize
        self.name = "microphone" if device is None else f"microphone {device!r}"
        self.rate = cfg.rate_for(22050)
        self.full_audio = None
        self.sd = None
        self._ctx = None
        self._anchor = True  # next block starts a new stretch (first block, reopen)
        self._last_callback = 0.0
        self._status_flags = 0  # callback-side count, folded into counters by run()
        self._callback_errors = 0
        self.retimes = 0

    def open(self) -> None:
        sd = import_sounddevice()
        listing = "list them with: python -m sounddevice"
        try:
            sd.query_devices(self.device, "input")
        except Exception:  # noqa: BLE001 - PortAudioError or ValueError: no such device
            which = "no default input device" if self.device is None else f"no input device {self.device!r}"
            raise HearflowError(f"no microphone: PortAudio finds {which} ({listing})") from None
        try:
            sd.check_input_settings(device=self.device, channels=1, samplerate=self.rate, dtype="float32")
        except Exception as exc:  # noqa: BLE001 - the device refuses mono float32 at this rate
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise HearflowError(f"{self.name} cannot record mono at {self.rate} Hz: {why}") from None
        self.sd = sd

    def close(self) -> None:
        pass  # the stream lives inside run()

    def _callback(self, indata, frames, time_info, status) -> None:
        """PortAudio's audio thread: copy into the ring and taps, nothing else."""
        now = time.monotonic()
        self._last_callback = now
        if status:
            self._status_flags += 1
        try:
            ctx = self._ctx
            adc, current = time_info.inputBufferAdcTime, time_info.currentTime
            if adc > 0 and current >= adc:
                t_first = now - (current - adc)
            else:  # the host API gives no times: the block ends about now
                t_first = now - frames / self.rate
            t_media = t_first - ctx.clock0
            x = indata[:, 0]
            if self._anchor:
                self._anchor = False
                ctx.emit_audio(x, t_media, t_first, self.rate)
                return
            ring = ctx.ring
            if ring is not None and abs(t_media - ring.end_time) > MIC_MAX_SKEW:
                ring.retime(t_media)
                self.retimes += 1
            ctx.emit_audio(x, None, t_first, self.rate)
        except Exception:  # noqa: BLE001 - an exception would abort the stream
            self._callback_errors += 1

    def _start_stream(self):
        stream = self.sd.InputStream(
            device=self.device, channels=1, samplerate=self.rate, dtype="float32",
            blocksize=self.blocksize, callback=self._callback,
        )
        self._anchor = True
        self._last_callback = time.monotonic()
        stream.start()
        return stream

    def run(self, ctx: CaptureContext) -> None:
        self._ctx = ctx
        backoff = Backoff(*self.backoff)
        stream = None
        lost = False
        seen_flags = seen_errors = 0
        try:
            while not ctx.stop.is_set():
                if stream is None:
                    try:
                        stream = self._start_stream()
                    except Exception as exc:  # noqa: BLE001 - device gone or busy
                        delay = backoff.next()
                        ctx.log(f"warning: {self.name} unavailable ({exc}); retrying in {delay:.1f} s")
                        if ctx.stop.wait(delay):
                            return
                        continue
                    if lost:
                        ctx.counters.add("reconnects")
                        ctx.log(f"{self.name} is back")
                        lost = False
                    backoff.reset()
                if ctx.stop.wait(0.2):
                    return
                # the callback only bumps plain ints; fold them into the shared counters here
                if self._status_flags != seen_flags:
                    ctx.counters.add("overflows", self._status_flags - seen_flags)
                    seen_flags = self._status_flags
                if self._callback_errors != seen_errors:
                    ctx.counters.add("errors", self._callback_errors - seen_errors)
                    seen_errors = self._callback_errors
                if not stream.active or time.monotonic() - self._last_callback > MIC_WATCHDOG:
                    ctx.counters.add("errors")
                    delay = backoff.next()
                    ctx.log(f"warning: {self.name} lost; reopening in {delay:.1f} s")
                    with contextlib.suppress(Exception):
                        stream.close()
                    stream, lost = None, True
                    if ctx.stop.wait(delay):
                        return
        finally:
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()


__all__ = ["CameraSource", "MicSource", "import_sounddevice"]
