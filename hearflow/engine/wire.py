"""The ZeroMQ wire format: encoding and decoding messages, and the reference subscriber.

Every message is three frames ``[topic, header, payload]`` (docs/wire_format.md):

- topic ``hearflow.heatmap``: header JSON (utf-8) shaped like ROS ``sensor_msgs/Image``
  plus hearflow's fields; payload the raw m×n similarity map, little-endian float32,
  row-major.
- topic ``hearflow.overlay`` (optional): same header with ``encoding: "jpeg"``; payload
  the JPEG of the frame with the heatmap blended in.
- topic ``hearflow.status``: the engine's heartbeat (state, rates, drops, latency, last
  error), once a second and on every state change; header JSON, empty payload.

The publisher is :class:`hearflow.engine.sinks.zmq.ZmqSink` (``--sink zmq``), bound to
``tcp://127.0.0.1:5555`` by default (loopback only). :func:`listen` is the reference
subscriber (``hearflow listen``, ``python -m hearflow.engine.wire``).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import zmq

from hearflow.engine.packets import finite
from hearflow.errors import HearflowError

HEATMAP_TOPIC = "hearflow.heatmap"
OVERLAY_TOPIC = "hearflow.overlay"
HEATMAP_SCHEMA = "hearflow.heatmap/1"
OVERLAY_SCHEMA = "hearflow.overlay/1"
STATUS_TOPIC = "hearflow.status"
STATUS_SCHEMA = "hearflow.status/1"
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


class WireError(HearflowError):
    """A message that does not follow the wire format."""


def normalize_endpoint(endpoint: str) -> str:
    """A ZeroMQ endpoint; a bare port number means that port on the loopback.

    Raises ValueError (one line, naming the value) for text that is no endpoint and for a
    tcp endpoint without a valid port (1..65535, or ``*`` for a free one when binding):
    ZeroMQ itself would wrap a port like 70000 around without a word.
    """
    endpoint = str(endpoint).strip()
    if endpoint.isdigit():
        _check_port(endpoint)
        return f"tcp://127.0.0.1:{int(endpoint)}"
    if "://" not in endpoint:
        raise ValueError(f"not a ZeroMQ endpoint: {endpoint!r} (e.g. tcp://127.0.0.1:5555, ipc:///tmp/hf, or a port)")
    if endpoint.partition("://")[0] == "tcp":
        _tcp_host_port(endpoint)
    return endpoint


def check_endpoint(endpoint: str, bind: bool) -> str:
    """:func:`normalize_endpoint`, and for tcp that the host exists: an IP address, a name
    that resolves, or (``bind``) ``*`` or a network interface of this machine. Raises
    ValueError naming the host: ZeroMQ reports an unknown host as "No such device" on
    bind and not at all on connect (it would wait forever)."""
    endpoint = normalize_endpoint(endpoint)
    if endpoint.partition("://")[0] != "tcp":
        return endpoint
    host, _ = _tcp_host_port(endpoint)
    if host == "*":
        if not bind:
            raise ValueError(f"'*' in {endpoint} (all interfaces) is for binding; connect to the publisher's address")
        return endpoint
    try:
        ipaddress.ip_address(host.strip("[]"))
        return endpoint
    except ValueError:
        pass
    if bind and host in {name for _, name in socket.if_nameindex()}:
        return endpoint
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        raise ValueError(f"cannot resolve host {host!r}"
                         + (" (give an IP address, a host name, an interface or * for all)" if bind else "")) from None
    return endpoint


def _tcp_host_port(endpoint: str) -> tuple[str, str]:
    """(host, port) of a tcp:// endpoint (a connect endpoint's ``source;`` part dropped)."""
    rest = endpoint.partition("://")[2].rpartition(";")[2]
    host, colon, port = rest.rpartition(":")
    if not colon or not host or rest.endswith("]"):  # "[::1]" alone has colons but no port
        raise ValueError(f"{endpoint!r} needs HOST:PORT, e.g. tcp://127.0.0.1:5555")
    _check_port(port)
    return host, port


def _check_port(port: str) -> None:
    if port == "*":
        return
    if not port.isdigit():
        raise ValueError(f"port {port!r} is not a number (1..65535, or * for a free one)")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port {int(port)} is out of range (1..65535)")


def is_loopback(endpoint: str) -> bool:
    """True when only this machine can reach the endpoint."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    host = rest.rsplit(":", 1)[0]
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


# --------------------------------------------------------------------------- encoding
def stamp(t_wall: float) -> dict:
    """ROS-style {sec, nanosec} of a UNIX time in seconds."""
    ns = int(round(t_wall * 1e9))
    return {"sec": ns // 1_000_000_000, "nanosec": ns % 1_000_000_000}


def encode_message(
    result,
    *,
    frame_id: str = "camera",
    jpeg: bytes | None = None,
    jpeg_size: tuple[int, int] | None = None,
    t_publish: float | None = None,
    wall_offset: float | None = None,
    model: str = "",
    stream: str = "",
) -> list[bytes]:
    """Encode a Result as ``[topic, header, payload]``.

    result: hearflow.engine.packets.Result.
    frame_id: ROS frame_id of the camera.
    jpeg: when given, an overlay message carrying these JPEG bytes instead of the map.
    jpeg_size: (width, height) of that JPEG (default: the result's frame_size).
    t_publish: engine-clock (time.monotonic) time of publishing, for latency_ms; now if None.
    wall_offset: time.time() − time.monotonic() (engine clock → wall clock); measured now if None.
    model: model name for the header (empty = left out).
    stream: the stream's name (``--streams``): topic suffix and header field (empty = left out).
    """
    if t_publish is None:
        t_publish = time.monotonic()
    if wall_offset is None:
        wall_offset = time.time() - time.monotonic()
    heat = np.asarray(result.map)
    w, h = int(result.frame_size[0]), int(result.frame_size[1])
    header = {
        "schema": HEATMAP_SCHEMA if jpeg is None else OVERLAY_SCHEMA,
        "stamp": stamp(result.t_capture + wall_offset),
        "frame_id": frame_id,
        "seq": int(result.seq),
        "capture_seq": int(result.capture_seq),
    }
    if jpeg is None:
        m, n = heat.shape
        header.update(height=int(m), width=int(n), encoding="32FC1", is_bigendian=0, step=4 * int(n))
        payload = np.ascontiguousarray(heat, dtype="<f4").tobytes()
    else:
        jw, jh = jpeg_size or (w, h)
        header.update(height=int(jh), width=int(jw), encoding="jpeg", is_bigendian=0, step=0)
        payload = bytes(jpeg)
    header.update(
        peak={"x": finite(result.peak[0]), "y": finite(result.peak[1]), "value": finite(result.peak_value)},
        confidence=finite(result.confidence),
        audio_rms_db=finite(result.audio_rms_db),
        warming_up=bool(result.warming_up),
        latency_ms=round((t_publish - result.t_capture) * 1000.0, 3),
        frame_size=[w, h],
        map_shape=[int(s) for s in heat.shape],
        t_capture=finite(result.t_capture),
        t_media=finite(result.t_media),
    )
    header.update(direction_fields(result))
    if result.camera is not None:
        header["camera"] = result.camera.as_dict()
    header.update({k: v for k, v in (("model", model), ("stream", stream)) if v})  # left out when empty
    topic = stream_topic(HEATMAP_TOPIC if jpeg is None else OVERLAY_TOPIC, stream)
    return [topic.encode(), json.dumps(header, allow_nan=False).encode("utf-8"), payload]


def stream_topic(topic: str, stream: str = "") -> str:
    """``hearflow.heatmap`` → ``hearflow.heatmap.NAME`` for a named stream. ZeroMQ matches
    subscriptions by prefix, so a subscriber to ``hearflow.heatmap`` still gets every stream."""
    return f"{topic}.{stream}" if stream else topic


def direction_fields(result) -> dict:
    """The header fields of a Result's peaks and direction: ``peaks`` (always), and with
    a camera model ``bearing``, ``azimuth``, ``elevation`` of the peak."""
    out = _direction(result.direction) if result.direction is not None else {}
    out["peaks"] = [_peak(p) for p in result.peaks]
    return out


def _direction(d) -> dict:
    """bearing {x, y, z} (unit, camera optical frame), azimuth and elevation (radians)."""
    x, y, z = d.bearing
    return {"bearing": {"x": finite(x), "y": finite(y), "z": finite(z)},
            "azimuth": finite(d.azimuth), "elevation": finite(d.elevation)}


def _peak(p) -> dict:
    out = {"x": finite(p.x), "y": finite(p.y), "value": finite(p.value), "track_id": int(p.track_id)}
    if p.direction is not None:
        out.update(_direction(p.direction))
    return out


def encode_status(status: dict, *, frame_id: str = "camera", wall_offset: float | None = None,
                  stream: str = "") -> list[bytes]:
    """Encode an engine status dict (Engine heartbeat) as ``[topic, header, b""]``; its
    ``stamp`` is the wall-clock time of ``status["t_monotonic"]`` (now when absent)."""
    if wall_offset is None:
        wall_offset = time.time() - time.monotonic()
    t = status.get("t_monotonic")
    header = {"schema": STATUS_SCHEMA, "stamp": stamp((time.monotonic() if t is None else t) + wall_offset),
              "frame_id": frame_id}
    if stream:
        header["stream"] = stream
    header.update(status)
    return [stream_topic(STATUS_TOPIC, stream).encode(), json.dumps(_json_safe(header), allow_nan=False).encode("utf-8"), b""]


def _json_safe(v):
    """NaN/inf → None, recursively (JSON cannot hold them)."""
    if isinstance(v, float):
        return finite(v)
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def decode_message(parts: list) -> tuple[str, dict, np.ndarray | bytes]:
    """``[topic, header, payload]`` → (topic, header dict, map array or JPEG bytes).

    The map is an m×n float32 array (native byte order, read-only view of the payload).
    Raises WireError on a malformed message.
    """
    if len(parts) != 3:
        raise WireError(f"expected 3 frames [topic, header, payload], got {len(parts)}")
    topic_b, header_b, payload = (bytes(p) if not isinstance(p, bytes) else p for p in parts)
    try:
        topic = topic_b.decode("utf-8")
        header = json.loads(header_b.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"bad header: {exc}") from None
    if not isinstance(header, dict) or not str(header.get("schema", "")).startswith("hearflow."):
        raise WireError("header is not a hearflow header (no 'schema')")
    if str(header["schema"]).startswith("hearflow.status/"):
        if not isinstance(header.get("state"), str):
            raise WireError("status message without a 'state'")
        return topic, header, payload
    enc = header.get("encoding")
    if enc == "jpeg":
        return topic, header, payload
    if enc != "32FC1":
        raise WireError(f"unknown encoding {enc!r}")
    try:
        h, w, step = int(header["height"]), int(header["width"]), int(header["step"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"bad image fields: {exc}") from None
    if step != 4 * w or len(payload) != h * step:
        raise WireError(f"payload is {len(payload)} bytes; {h}×{w} float32 with step {step} needs {h * step}")
    dtype = ">f4" if header.get("is_bigendian") else "<f4"
    heat = np.frombuffer(payload, dtype=dtype).reshape(h, w).astype(np.float32, copy=False)
    return topic, header, heat


def encode_jpeg(bgr: np.ndarray, quality: int = 80) -> bytes:
    """JPEG bytes of a BGR uint8 image."""
    import cv2

    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


# --------------------------------------------------------------------------- subscriber
def _num(v, fmt):
    return "nan" if v is None else format(v, fmt)


def _angles(h: dict) -> str:
    """" az +12.3° el -4.0°" from a header or peak with azimuth/elevation (radians); "" without."""
    if h.get("azimuth") is None or h.get("elevation") is None:
        return ""
    return f" az {math.degrees(h['azimuth']):+.1f}° el {math.degrees(h['elevation']):+.1f}°"


def format_status_line(topic: str, header: dict) -> str:
    """One line for a hearflow.status message."""
    st = header.get("stamp") or {}
    lat = header.get("latency_ms") or {}
    dropped = header.get("dropped") or {}
    sink_drops = sum((dropped.get("sinks") or {}).values())
    age = header.get("last_frame_age_s")
    line = (f"{topic} seq {header.get('seq')} stamp {st.get('sec', 0)}.{st.get('nanosec', 0):09d} "
            f"state {header.get('state')} | in {_num(header.get('fps_in'), '.1f')} fps "
            f"out {_num(header.get('fps_out'), '.1f')} fps | dropped {dropped.get('before_inference', 0)}"
            f"+{sink_drops} | latency p50/p99 {_num(lat.get('p50'), '.0f')}/{_num(lat.get('p99'), '.0f')} ms | "
            f"audio {_num(header.get('audio_rms_db'), '.1f')} dB | last frame {_num(age, '.1f')} s ago")
    if header.get("last_error"):
        line += f" | last error: {header['last_error']}"
    return line


def format_line(topic: str, header: dict, payload) -> str:
    """One line describing a message (what ``hearflow listen`` prints)."""
    if str(header.get("schema", "")).startswith("hearflow.status/"):
        return format_status_line(topic, header)
    st = header.get("stamp") or {}
    peak = header.get("peak") or {}
    num = _num

    what = (f"map {header.get('height')}x{header.get('width')}" if header.get("encoding") == "32FC1"
            else f"jpeg {header.get('width')}x{header.get('height')} {len(payload)} B")
    line = (f"{topic} seq {header.get('seq')} stamp {st.get('sec', 0)}.{st.get('nanosec', 0):09d} "
            f"peak ({num(peak.get('x'), '.3f')}, {num(peak.get('y'), '.3f')}) {num(peak.get('value'), '+.3f')}"
            f"{_angles(header)} conf {num(header.get('confidence'), '.2f')} latency {num(header.get('latency_ms'), '.1f')} ms {what}")
    if header.get("warming_up"):
        line += " warming-up"
    peaks = header.get("peaks")
    if peaks is not None:
        line += f" | peaks {len(peaks)}" + "".join(
            f" #{p.get('track_id')} ({num(p.get('x'), '.2f')}, {num(p.get('y'), '.2f')}) "
            f"{num(p.get('value'), '+.2f')}{_angles(p)}" for p in peaks)
    return line


def listen(
    endpoint: str = DEFAULT_ENDPOINT,
    count: int | None = None,
    save_dir=None,
    topics: Iterable[str] = (HEATMAP_TOPIC, STATUS_TOPIC),
    timeout: float | None = None,
    out: Callable[[str], None] = print,
    newest_only: bool = False,
    status: Callable[[str], None] | None = None,
    stats: dict | None = None,
) -> int:
    """Subscribe to a hearflow stream and print one line per message.

    Returns how many heatmap/overlay messages came.

    endpoint: the publisher's endpoint (connected to, not bound).
    count: stop after this many heatmap/overlay messages (None = until timeout or Ctrl-C);
        status messages are printed but not counted.
    save_dir: also save each map as ``<seq>.npy``, each overlay as ``<seq>.jpg`` and every
        header as one line of ``headers.jsonl`` there.
    topics: topics to subscribe to (hearflow.heatmap, hearflow.overlay, hearflow.status).
    timeout: give up after this many seconds in all (None = no limit).
    out: where lines go (gaps in seq and rejected messages get their own line).
    newest_only: keep only the newest message when several are waiting (a slow reader
        skips ahead instead of falling behind).
    status: where "waiting for messages on ..." goes once at the start (and a note when
        the timeout passes with nothing received); None = nowhere.
    stats: when given, filled with ``received``, ``rejected`` (malformed messages, not
        counted in the return value), ``missed`` (messages lost in gaps of ``seq``) and
        ``status`` (status messages shown).

    Raises WireError (one line) when ``endpoint`` is not a usable ZeroMQ endpoint.
    """
    endpoint = _checked(endpoint)
    saver = _Saver(save_dir) if save_dir is not None else None
    ctx = zmq.Context()
    tally = _Tally(stats if stats is not None else {}, out)
    try:
        sock = _subscribe(ctx, endpoint, topics, newest_only)
    except zmq.ZMQError as exc:
        ctx.term()
        raise WireError(f"{endpoint}: cannot connect: {exc}") from None
    if status is not None:
        status(f"waiting for messages on {endpoint} (topics {', '.join(topics)})")
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        _print_messages(sock, tally, saver, count, deadline, newest_only)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close(linger=0)
        ctx.term()
        if saver is not None:
            saver.close()
    if status is not None and not tally.counts["received"] and timeout is not None:
        status(f"no messages from {endpoint} within {timeout:g} s (is `hearflow run ... --sink zmq` publishing there?)")
    return tally.counts["received"]


def _print_messages(sock, tally: "_Tally", saver, count: int | None, deadline: float | None,
                    newest_only: bool) -> None:
    """The listener's loop: one line per message until ``count`` data messages or the deadline."""
    while count is None or tally.counts["received"] < count:
        parts = _receive(sock, deadline, newest_only)
        if parts is _TIMED_OUT:
            return
        if parts is None:
            continue
        try:
            topic, header, payload = decode_message(parts)
        except WireError as exc:
            tally.rejected(parts, exc)
            continue
        seq = tally.arrived(topic, header)
        tally.out(format_line(topic, header, payload))
        if topic == STATUS_TOPIC:  # heartbeats are shown, not counted as data messages
            tally.counts["status"] += 1
            continue
        if saver is not None:
            saver.save(topic, header, payload, seq)
        tally.counts["received"] += 1


def _checked(endpoint: str) -> str:
    try:
        return check_endpoint(endpoint, bind=False)
    except ValueError as exc:
        msg = str(exc)
        raise WireError(msg if endpoint in msg else f"{endpoint}: {msg}") from None


class _Tally:
    """Counts of a listener and the gaps in each topic's ``seq`` (lines about them go to ``out``)."""

    def __init__(self, counts: dict, out: Callable[[str], None]):
        self.counts, self.out = counts, out
        counts.update(received=0, rejected=0, missed=0, status=0)
        self.last_seq: dict[str, int] = {}
        self.unplaced = 0  # rejected messages whose seq could not be read: they explain that much of the next gap

    def rejected(self, parts: list, exc: Exception) -> None:
        self.counts["rejected"] += 1
        topic, seq = _topic_seq(parts)
        self.out(f"rejected message{'' if seq is None else f' seq {seq}'}: {exc}")
        if seq is None or topic is None:
            self.unplaced += 1
        else:  # it arrived, so it is no gap
            self.last_seq[topic] = max(seq, self.last_seq.get(topic, seq))

    def arrived(self, topic: str, header: dict) -> int:
        """A well-formed message: report a gap before it; returns its seq."""
        seq = int(header.get("seq", -1))
        last = self.last_seq.get(topic)
        if last is not None and seq > last + 1:
            missed = seq - last - 1 - self.unplaced
            if missed > 0:
                self.out(f"{topic} gap: {missed} message(s) missed")
                self.counts["missed"] += missed
        self.unplaced = 0
        self.last_seq[topic] = seq
        return seq


def _topic_seq(parts: list) -> tuple[str | None, int | None]:
    """Topic and seq of a malformed message, where they can still be read."""
    try:
        topic = bytes(parts[0]).decode("utf-8")
        seq = json.loads(bytes(parts[1]).decode("utf-8")).get("seq")
        return topic, seq if isinstance(seq, int) and not isinstance(seq, bool) else None
    except (IndexError, UnicodeDecodeError, ValueError, AttributeError, TypeError):
        return None, None


_TIMED_OUT = object()


def _subscribe(ctx, endpoint: str, topics: Iterable[str], newest_only: bool):
    """A SUB socket connected to ``endpoint`` for ``topics``."""
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    if newest_only:
        sock.setsockopt(zmq.RCVHWM, 2)
    for t in topics:
        sock.setsockopt(zmq.SUBSCRIBE, t.encode())
    try:
        sock.connect(endpoint)
    except zmq.ZMQError:
        sock.close(linger=0)
        raise
    return sock


def _receive(sock, deadline: float | None, newest_only: bool):
    """The next message's frames (the newest waiting one when ``newest_only``), None when
    none came within a short poll, or _TIMED_OUT once ``deadline`` has passed."""
    wait = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
    if wait <= 0:
        return _TIMED_OUT
    if not sock.poll(int(math.ceil(wait * 1000))):  # short polls keep Ctrl-C responsive
        return None
    parts = sock.recv_multipart()
    while newest_only:
        try:
            parts = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            break
    return parts


class _Saver:
    """``listen --save DIR``: maps as <seq>.npy, overlays as <seq>.jpg, headers in headers.jsonl."""

    def __init__(self, save_dir):
        self.dir = Path(save_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.headers = open(self.dir / "headers.jsonl", "a", encoding="utf-8")

    def save(self, topic: str, header: dict, payload, seq: int) -> None:
        if isinstance(payload, np.ndarray):
            np.save(self.dir / f"{seq:08d}.npy", payload)
        else:
            (self.dir / f"{seq:08d}.jpg").write_bytes(payload)
        self.headers.write(json.dumps({"topic": topic, **header}) + "\n")
        self.headers.flush()

    def close(self) -> None:
        self.headers.close()


def main(argv=None) -> int:
    """``python -m hearflow.engine.wire [ENDPOINT] ...``: the reference subscriber."""
    p = argparse.ArgumentParser(prog="python -m hearflow.engine.wire", description=listen.__doc__.splitlines()[0])
    p.add_argument("endpoint", nargs="?", default=DEFAULT_ENDPOINT, help=f"publisher endpoint (default {DEFAULT_ENDPOINT})")
    p.add_argument("--count", type=int, default=None, help="stop after N messages")
    p.add_argument("--save", default=None, help="folder for <seq>.npy maps, <seq>.jpg overlays and headers.jsonl")
    p.add_argument("--overlay", action="store_true", help="also subscribe to the JPEG overlay topic")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    p.add_argument("--newest", action="store_true", help="skip to the newest message when behind")
    args = p.parse_args(argv)
    topics = (HEATMAP_TOPIC, STATUS_TOPIC) + ((OVERLAY_TOPIC,) if args.overlay else ())
    try:
        n = listen(args.endpoint, count=args.count, save_dir=args.save, topics=topics, timeout=args.timeout,
                   out=lambda line: print(line, flush=True), newest_only=args.newest,
                   status=lambda line: print(line, file=sys.stderr, flush=True))
    except HearflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if args.count is None or n >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
