"""``--video <index>``: a camera through OpenCV.

Live: t_capture is when the frame was read, on the engine clock, and t_media =
t_capture - clock0. A camera that disappears is logged and reopened with exponential
backoff while the rest of the engine keeps running.
"""

from __future__ import annotations

import contextlib
import time

from hearflow.engine.capture import Backoff, CaptureContext, FrameBuilder
from hearflow.engine.sources.base import VideoSource
from hearflow.errors import HearflowError
from hearflow.media.preprocess import PreprocessConfig

DEFAULT_CAMERA_FPS = 30.0
"""Frame rate assumed until a camera's own rate is known (it reports none or nonsense)."""


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


class CameraSource(VideoSource):
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

        builder = FrameBuilder(self.cfg, ctx)
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


__all__ = ["CameraSource"]
