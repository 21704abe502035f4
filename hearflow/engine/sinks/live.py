"""What the live views (``--sink http``, ``--sink foxglove``) share: the ``[ADDR:]PORT``
argument, a bind check made while parsing ``--sink`` (so a taken port fails before the
model loads), and the engine state they show, computed from the results a sink receives.
"""

from __future__ import annotations

import collections
import ipaddress
import math
import socket
import threading
import time

from hearflow.engine.packets import Result, finite

STATS_WINDOW_S = 5.0
"""Seconds of results the rates and latency percentiles are computed over."""
STALE_S = 2.0
"""No result for this long: the source is reported as stalled."""


def parse_bind(arg: str, default_host: str, default_port: int, kind: str) -> tuple[str, int]:
    """``""``, ``PORT``, ``ADDR:PORT`` or ``[IPv6]:PORT`` → (host, port); port 0 picks a free one.

    Raises ValueError (one line) for a port out of range or a malformed item.
    """
    arg = arg.strip()
    if not arg:
        return default_host, default_port
    host, port_s = default_host, arg
    if arg.startswith("["):  # [::1]:8080
        end = arg.find("]")
        if end < 0 or not arg[end + 1:].startswith(":"):
            raise ValueError(f"expected {kind}:[IPV6]:PORT, got {arg!r}")
        host, port_s = arg[1:end], arg[end + 2:]
    elif ":" in arg:
        host, _, port_s = arg.rpartition(":")
        if ":" in host:
            raise ValueError(f"write an IPv6 address in brackets: {kind}:[{host}]:{port_s}")
    if not port_s.strip().isdigit():
        raise ValueError(f"port must be a number 0..65535, got {port_s!r} (use {kind}:[ADDR:]PORT)")
    port = int(port_s)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0..65535")
    if not host:
        raise ValueError(f"no address before the port in {arg!r}")
    return host, port


def check_bind(host: str, port: int) -> None:
    """Bind and release (host, port) as a listening server would; ValueError if impossible.

    A free port can still be taken between this check and the real bind; the sink's open
    then fails with one line too. This check is what makes the usual case fail early.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ValueError(f"unknown address {host!r} ({exc.strerror})") from None
    family, type_, proto, _, addr = infos[0]
    with socket.socket(family, type_, proto) as s:
        # servers set SO_REUSEADDR (a restart must not wait for TIME_WAIT); so does this check
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
            s.listen(1)
        except OSError as exc:
            raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def is_loopback_host(host: str) -> bool:
    """True when only this machine can reach a server bound to ``host``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    """``host`` as written in a URL (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host else host


class LiveStats:
    """Rolling engine state from the results one sink receives (fps, latency, drops, levels).

    Called from the sink thread (``add``) and from server threads (``status``), hence the
    lock. All of it is computed here from Result fields, so ``status`` is the one place to
    change when the engine reports its own state.
    """

    def __init__(self, window_s: float = STATS_WINDOW_S):
        self.window_s = window_s
        self._lock = threading.Lock()
        # (arrival time, t_capture, capture_seq) of recent results
        self._recent: collections.deque = collections.deque()
        self._last: Result | None = None
        self._received = 0
        self._first_seq: int | None = None
        self._first_capture_seq: int | None = None
        self._t_last: float | None = None
        self._engine: dict | None = None

    def set_engine(self, status: dict) -> None:
        """The engine's own heartbeat (``hearflow.status``): its state and last error win
        over what the results alone can tell (a lost camera, a reconnect)."""
        with self._lock:
            self._engine = dict(status)

    def add(self, result: Result, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._first_seq is None:
                self._first_seq, self._first_capture_seq = result.seq, result.capture_seq
            self._recent.append((now, result.t_capture, result.capture_seq))
            while self._recent and self._recent[0][0] < now - self.window_s:
                self._recent.popleft()
            self._last = result
            self._received += 1
            self._t_last = now

    def status(self, now: float | None = None, ended: bool = False) -> dict:
        """The engine state as /status.json and the Foxglove status channel show it."""
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = list(self._recent)
            last, received, t_last = self._last, self._received, self._t_last
            first_seq, first_cseq = self._first_seq, self._first_capture_seq
            engine = self._engine
        out: dict = {
            "computed_from": f"the results this sink received in the last {self.window_s:g} s "
                             "(latency: capture -> received by this sink)",
            "source": _source_state(last, t_last, now, ended),
            "received": received,
        }
        if engine is not None:
            out["engine"] = {k: engine.get(k) for k in ("state", "last_error") if k in engine}
            if engine.get("state") not in (None, "running"):
                out["source"] = engine["state"]  # starting, source lost, reconnecting, stopping
        if last is None:
            return out
        in_window = [r for r in recent if r[0] >= now - self.window_s]
        lat = sorted((a - t) * 1000.0 for a, t, _ in in_window)
        fps_out = fps_in = None
        if len(in_window) >= 2:
            (a0, t0, c0), (a1, t1, c1) = in_window[0], in_window[-1]
            fps_out = (len(in_window) - 1) / (a1 - a0) if a1 > a0 else None
            fps_in = (c1 - c0) / (t1 - t0) if t1 > t0 else None
        out.update(
            seq=int(last.seq),
            capture_seq=int(last.capture_seq),
            t_media=finite(last.t_media),
            confidence=finite(last.confidence),
            peak={"x": finite(last.peak[0]), "y": finite(last.peak[1]), "value": finite(last.peak_value)},
            audio_rms_db=finite(last.audio_rms_db),
            warming_up=bool(last.warming_up),
            frame_size=[int(last.frame_size[0]), int(last.frame_size[1])],
            fps_in=_round(fps_in),
            fps_out=_round(fps_out),
            latency_ms={"p50": _round(_percentile(lat, 50)), "p99": _round(_percentile(lat, 99))},
            # capture_seq gaps: frames the engine skipped to stay real-time; seq gaps:
            # results this sink's queue dropped because it fell behind
            dropped={
                "before_inference": int(last.capture_seq - first_cseq - (last.seq - first_seq)),
                "before_this_sink": int(last.seq - first_seq + 1 - received),
            },
        )
        return out


def _source_state(last: Result | None, t_last: float | None, now: float, ended: bool) -> str:
    if ended:
        return "ended"
    if last is None:
        return "waiting for the first frame"
    if now - t_last > STALE_S:
        return f"stalled (no frame for {now - t_last:.0f} s)"
    return "warming up" if last.warming_up else "live"


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def _round(x: float | None, nd: int = 2) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, nd)


__all__ = ["LiveStats", "check_bind", "is_loopback_host", "parse_bind", "url_host"]
