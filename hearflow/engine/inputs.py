"""Model inputs for the engine's inference thread: on the host (numpy) or on a torch device.

:class:`HostInputs` (the default) uses what the capture thread already made — the frame
resized on the host and its grayscale — and :mod:`hearflow.media`'s numpy functions.
:class:`DeviceInputs` (``--device cpu|cuda|cuda:N``) takes the captured uint8 frame and the
audio window, moves each once to the device, and builds frame, flow and spectrogram there
(:class:`hearflow.runtime.device_frames.DeviceFrames`); the model reads them in place and
only the map comes back.

Both answer the same questions for a FramePacket, so the inference loop does not care:
``frame(pkt)``, ``gray(pkt)`` / ``prev_gray(pkt)`` (opaque handles for the flow),
``flow(earlier, pkt)``, ``spectrogram(wave)``, ``localize(backend, pkt, flows, emb)``.
:class:`FrameGraphInputs` hands the captured frames to an export's frame graph instead.
"""

from __future__ import annotations

import numpy as np

from hearflow.engine.packets import FramePacket
from hearflow.media.audio import log_spectrogram
from hearflow.media.flow import FlowEstimator, zero_flow
from hearflow.media.frames import normalize_frame
from hearflow.media.preprocess import PreprocessConfig


class HostInputs:
    """numpy inputs from the capture thread's resized frame and grayscale."""

    frames_on_host = True
    """The capture thread resizes each frame (FramePacket.frame)."""

    def __init__(self, pre: PreprocessConfig, rate: int, uses_flow: bool):
        self.pre, self.rate = pre, rate
        self.gray_on_host = uses_flow
        """The capture thread makes each frame's grayscale (FramePacket.gray) for a host flow."""
        self.estimator = FlowEstimator(pre) if uses_flow else None

    def frame(self, pkt: FramePacket):
        return normalize_frame(pkt.frame, self.pre)[None]

    def gray(self, pkt: FramePacket):
        return pkt.gray

    def prev_gray(self, pkt: FramePacket):
        return pkt.prev_gray

    def flow(self, earlier, later: FramePacket):
        """(1, 2, S, S) flow from ``earlier`` (a gray handle) into ``later``; zeros when unknown;
        None for a model without flow."""
        if self.estimator is None:
            return None
        later_gray = self.gray(later)
        if earlier is None or later_gray is None:
            return self.zero_flow()
        return self._host_flow(earlier, later_gray, later.fps)

    def localize(self, be, pkt: FramePacket, flows, emb):
        """The map (1, m, n) of ``pkt``'s frame with ``flows`` (from :meth:`flow`)."""
        return be.localize(self.frame(pkt), flows, emb)

    def _host_flow(self, gray_a, gray_b, fps):
        return self.estimator(gray_a, gray_b, fps)[None]

    def zero_flow(self):
        return zero_flow(self.pre)[None]

    def spectrogram(self, wave: np.ndarray):
        return log_spectrogram(wave, self.rate, self.pre)[None, None]

    def blank_spectrogram(self):
        """Zeros shaped like one audio-graph input (1, 1, F, T)."""
        return np.zeros((1, 1, self.pre.spectrogram_bins, self.pre.spectrogram_frames(self.rate)), np.float32)

    def blank_frame(self):
        s = self.pre.image_size
        return np.zeros((1, 3, s, s), np.float32)

    def warm_up(self, size: tuple[int, int]) -> None:
        """One flow on zero frames of the source's size (DIS allocates its pyramids on the first pair)."""
        if self.estimator is not None:
            w, h = size
            gray = self.estimator.gray(np.zeros((h, w, 3), np.uint8))
            self.estimator(gray, gray, 30.0)


class DeviceInputs(HostInputs):
    """Inputs built on a torch device from the captured uint8 frames and audio windows.

    device: 'cpu', 'cuda' or 'cuda:N'. Each packet's frame is uploaded once (the previous
    frame's too when inference skipped it and the flow needs it); its input and gray are
    kept for the next packet.
    """

    frames_on_host = False

    def __init__(self, pre: PreprocessConfig, rate: int, uses_flow: bool, device: str, log=None):
        from hearflow.runtime.device_frames import DeviceFrames

        self.dev = DeviceFrames(pre, device, log=log if uses_flow else None)
        super().__init__(pre, rate, uses_flow and not self.dev.flow_on_device)
        self.uses_flow = uses_flow
        self._recent: dict[int, object] = {}  # capture seq → Uploaded, the last two packets

    def _uploaded(self, pkt: FramePacket):
        up = self._recent.get(pkt.seq)
        if up is None:
            up = self.dev.frame(pkt.rgb)
            self._recent = {s: u for s, u in self._recent.items() if s >= pkt.seq - 1}
            self._recent[pkt.seq] = up
        return up

    def frame(self, pkt: FramePacket):
        return self._uploaded(pkt).frame

    def gray(self, pkt: FramePacket):
        if not self.dev.flow_on_device:
            return pkt.gray  # host flow: the capture thread's grayscale
        return self._uploaded(pkt).gray

    def prev_gray(self, pkt: FramePacket):
        if not self.dev.flow_on_device:
            return pkt.prev_gray
        if pkt.prev_rgb is None:
            return None
        up = self._recent.get(pkt.seq - 1)
        return up.gray if up is not None else self.dev.gray(pkt.prev_rgb)  # skipped frame: upload it now

    def flow(self, earlier, later: FramePacket):
        if not self.uses_flow:
            return None
        later_gray = self.gray(later)
        if earlier is None or later_gray is None:
            return self.dev.zero_flow()
        if self.dev.flow_on_device:
            return self.dev.flow(earlier, later_gray, later.fps)
        return self.dev.upload_flow(self.estimator(earlier, later_gray, later.fps))

    def zero_flow(self):
        return self.dev.zero_flow()

    def spectrogram(self, wave: np.ndarray):
        return self.dev.spectrogram(wave, self.rate)

    def blank_spectrogram(self):
        return self.dev.blank_spectrogram(self.rate)

    def blank_frame(self):
        s = self.pre.image_size
        return self.dev.frame(np.zeros((s, s, 3), np.uint8)).frame

    def warm_up(self, size: tuple[int, int]) -> None:
        """Every device step once on a zero frame of the source's size (kernels, tap tables, buffers)."""
        w, h = size
        self.dev.spectrogram(np.zeros(self.pre.window_samples(self.rate), np.float32), self.rate)
        up = self.dev.frame(np.zeros((h, w, 3), np.uint8))
        if self.dev.flow_on_device:
            self.dev.flow(up.gray, up.gray, 30.0)
        else:
            super().warm_up(size)


class FrameGraphInputs(HostInputs):
    """The export's frame graph (frame.onnx) does resize, flow and normalisation itself:
    the captured uint8 frames go to the backend as they are, in pairs.

    The flow "handle" of a frame is its captured RGB; :meth:`flow` returns the pair
    (earlier RGB, later packet) that :meth:`localize` hands to ``localize_frames``.
    """

    frames_on_host = False

    def __init__(self, pre: PreprocessConfig, rate: int, backend):
        super().__init__(pre, rate, uses_flow=False)  # no host flow estimator
        self.gray_on_host = False  # the capture thread keeps the previous RGB instead
        self.backend = backend

    def gray(self, pkt: FramePacket):
        return pkt.rgb

    def prev_gray(self, pkt: FramePacket):
        return pkt.prev_rgb

    def flow(self, earlier, later: FramePacket):
        return (earlier, later)

    def localize(self, be, pkt: FramePacket, flows, emb):
        earlier, later = flows if flows is not None else (None, pkt)
        if earlier is None or (later is pkt and self.pre.flow_pair == "next"):
            # no other frame (the first one; or the last one with HTF's flow to the next):
            # the frame with itself, i.e. zero flow, as the two-graph path does
            earlier, later = pkt.rgb, pkt
        return be.localize_frames(earlier[None], later.rgb[None], emb, later.fps)

    def warm_up(self, size: tuple[int, int]) -> None:
        w, h = size
        zeros = np.zeros((1, h, w, 3), np.uint8)
        self.backend.localize_frames(zeros, zeros, self.backend.embed_audio(self.blank_spectrogram()), 30.0)


def make_inputs(pre: PreprocessConfig, rate: int, backend, device: str | None = None, size=None, log=None):
    """FrameGraphInputs when ``backend`` runs a frame graph for frames of ``size`` (W, H) and
    no device is asked for; else HostInputs for ``device`` None (or 'auto'), else
    DeviceInputs on that torch device."""
    frame_size = getattr(backend, "frame_size", None)
    if device in (None, "auto") and frame_size is not None:
        if size is not None and tuple(size) == tuple(frame_size):
            return FrameGraphInputs(pre, rate, backend)
        if log is not None:
            log(f"note: the export's frame graph takes {frame_size[0]}x{frame_size[1]} frames and this source gives "
                f"{'an unknown size' if size is None else '%dx%d' % tuple(size)}: running the audio and visual graphs")
    if device in (None, "auto"):
        return HostInputs(pre, rate, backend.uses_flow)
    return DeviceInputs(pre, rate, backend.uses_flow, device, log=log)
