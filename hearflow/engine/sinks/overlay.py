"""``--sink overlay``: a live OpenCV window with the heatmap."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from hearflow.engine import draw
from hearflow.engine.packets import Result
from hearflow.engine.sinks.base import Sink, SinkOptions, StreamInfo
from hearflow.engine.sinks.registry import register_sink
from hearflow.errors import HearflowError

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


@register_sink("overlay", "overlay")
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
        self._display_checked = False
        self.shown = 0

    @classmethod
    def from_spec(cls, arg: str, options: SinkOptions) -> OverlaySink:
        if arg:
            raise ValueError("the overlay sink takes no argument")
        return cls(alpha=options.alpha)

    def check(self) -> None:
        check_display()
        self._display_checked = True

    def open(self, info: StreamInfo) -> None:
        if not self._display_checked:  # the probe costs a process start: once is enough
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


__all__ = ["NO_DISPLAY", "OverlaySink", "check_display"]
