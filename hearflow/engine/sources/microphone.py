"""``--audio mic[:<device>]``: a microphone through sounddevice (PortAudio).

Live: t_capture is when the device captured the block (PortAudio's ADC time), mapped to
the engine clock, and t_media = t_capture - clock0. A device that disappears is logged
and reopened with exponential backoff while the rest of the engine keeps running.
"""

from __future__ import annotations

import contextlib
import time

from hearflow.engine.capture import Backoff, CaptureContext
from hearflow.engine.sources.base import LIVE_RATE, AudioSource
from hearflow.errors import HearflowError, MissingDependency
from hearflow.media.preprocess import PreprocessConfig

MIC_MAX_SKEW = 0.05
"""Seconds the mic's sample-count timeline may drift from the engine clock before the
ring's timeline is shifted back onto it (sound cards run on their own crystal)."""
MIC_WATCHDOG = 2.0
"""A microphone whose callback has not run for this long is treated as lost."""
AUDIO_INSTALL_HINT = "pip install 'hearflow[audio]' (sounddevice) and apt install libportaudio2 (PortAudio)"


def import_sounddevice():
    """The sounddevice module, or MissingDependency saying what to install."""
    try:
        import sounddevice
    except ImportError:
        raise MissingDependency(f"microphone input needs sounddevice: {AUDIO_INSTALL_HINT}") from None
    except OSError:  # the package is there but libportaudio is not
        raise MissingDependency(f"microphone input needs the PortAudio library: {AUDIO_INSTALL_HINT}") from None
    return sounddevice


class MicSource(AudioSource):
    """A microphone through sounddevice (PortAudio): mono float32 at the engine rate.

    device: PortAudio device index or (part of its) name; None = the default input.
    cfg: preprocessing config (the rate: cfg.sample_rate, or LIVE_RATE for ``native``).
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
        self.rate = cfg.rate_for(LIVE_RATE)
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

    # the stream lives inside run(): close() has nothing to do

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


__all__ = ["MicSource", "import_sounddevice"]
