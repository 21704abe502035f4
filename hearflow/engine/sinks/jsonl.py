"""``--sink jsonl:FILE``: one JSON object per line per result."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from hearflow.engine.packets import Result, finite
from hearflow.engine.sinks.base import Sink, SinkOptions, StreamInfo, check_writable
from hearflow.engine.sinks.registry import register_sink
from hearflow.engine.wire import direction_fields
from hearflow.errors import HearflowError


@register_sink("jsonl", "jsonl:FILE")
class JsonlSink(Sink):
    """One JSON object per line per result, written per line (a killed run leaves valid lines;
    a line that does not fit on the disk is taken back, so a full disk leaves whole lines).

    path: output file (parent folders are created; an existing file is replaced).
    map_decimals: the map is written as nested lists rounded to this many decimals.

    Fields: seq, capture_seq, t_capture, t_media, t_result (engine monotonic clock,
    seconds), stamp (wall-clock capture time, UNIX seconds), latency_ms (capture →
    written), peak [x, y] (normalised), peak_value, confidence, audio_rms_db, warming_up,
    frame_size [w, h], peaks (each {x, y, value, track_id} and, with a camera model,
    bearing, azimuth, elevation), with a camera model bearing/azimuth/elevation of the
    peak (as in the wire header, docs/wire_format.md), map. NaN/inf become null.
    """

    def __init__(self, path, map_decimals: int = 4):
        self.path = Path(path)
        self.map_decimals = map_decimals
        self.name = f"jsonl:{path}"
        self._f = None

    @classmethod
    def from_spec(cls, arg: str, options: SinkOptions) -> JsonlSink:
        if not arg:
            raise ValueError("give the output file, e.g. jsonl:out/run.jsonl")
        return cls(arg)

    def spec_key(self) -> str:
        return str(self.path.resolve())

    def check(self) -> None:
        check_writable(self.path, self.name)

    def open(self, info: StreamInfo) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "wb", buffering=0)  # unbuffered: each line reaches the OS whole
        except OSError as exc:
            raise HearflowError(f"{self.name}: cannot write {self.path}: {exc.strerror or exc}") from None

    def write(self, result: Result) -> None:
        now = time.monotonic()
        wall = time.time() - (now - result.t_capture)
        m = np.round(np.asarray(result.map, dtype=np.float64), self.map_decimals)
        record = {
            "seq": int(result.seq),
            "capture_seq": int(result.capture_seq),
            "t_capture": finite(result.t_capture),
            "t_media": finite(result.t_media),
            "t_result": finite(result.t_result),
            "stamp": round(wall, 6),
            "latency_ms": round((now - result.t_capture) * 1000.0, 3),
            "peak": [finite(result.peak[0]), finite(result.peak[1])],
            "peak_value": finite(result.peak_value),
            "confidence": finite(result.confidence),
            "audio_rms_db": finite(result.audio_rms_db),
            "warming_up": bool(result.warming_up),
            "frame_size": [int(result.frame_size[0]), int(result.frame_size[1])],
            **direction_fields(result),
            "map": m.tolist() if np.isfinite(m).all() else [[finite(v) for v in row] for row in m],
        }
        line = (json.dumps(record, allow_nan=False) + "\n").encode()
        end = self._f.tell()
        try:
            written = 0
            while written < len(line):  # a raw write may take part of the line
                written += self._f.write(line[written:])
        except OSError as exc:
            self._f.truncate(end)  # no half line: readers parse every line that is there
            raise HearflowError(f"{self.name}: writing {self.path} failed ({exc.strerror or exc})") from None

    def close(self) -> None:
        if self._f is not None:
            f, self._f = self._f, None
            f.close()


__all__ = ["JsonlSink"]
