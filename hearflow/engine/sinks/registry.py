"""The kinds of ``--sink``: a sink class registers itself under its kind with
:func:`register_sink`, and :func:`parse_sinks` builds sinks from the ``--sink`` text.

    @register_sink("jsonl", "jsonl:FILE")
    class JsonlSink(Sink):
        @classmethod
        def from_spec(cls, arg, options): ...

A new kind of sink is one new module with such a class, imported by
``hearflow/engine/sinks/__init__.py``.
"""

from __future__ import annotations

from hearflow.engine.sinks.base import Sink, SinkOptions
from hearflow.errors import HearflowError

SINK_KINDS: dict[str, type[Sink]] = {}
"""kind → Sink class, in registration order."""
SINK_USAGE: dict[str, str] = {}
"""kind → how it is written in --sink (for help and errors)."""


def register_sink(kind: str, usage: str):
    """Class decorator: ``--sink KIND[:ARG]`` is built by ``cls.from_spec(ARG, options)``.

    kind: the name before the colon (lower case).
    usage: how the item is written, for --help and error messages (e.g. "video:FILE.mp4").
    """

    def register(cls: type[Sink]) -> type[Sink]:
        if kind in SINK_KINDS:
            raise ValueError(f"sink kind {kind!r} is already registered by {SINK_KINDS[kind].__name__}")
        SINK_KINDS[kind] = cls
        SINK_USAGE[kind] = usage
        return cls

    return register


def sink_help() -> str:
    """The --sink kinds as help text: "overlay, video:FILE.mp4, ... (comma-separated)"."""
    return f"{', '.join(SINK_USAGE.values())} (comma-separated)"


def parse_sinks(
    spec: str,
    zmq_overlay: bool = False,
    frame_id: str = "camera",
    jpeg_quality: int = 80,
    alpha: float = 0.45,
    stream: str = "",
) -> list[Sink]:
    """Build sinks from the --sink text, e.g. "overlay,video:out/a.mp4,zmq,jsonl:out/a.jsonl".

    spec: comma-separated KIND[:ARG] items; the ARG is everything after the first colon
        (so endpoints and Windows paths keep theirs). ``zmq`` alone publishes on
        tcp://127.0.0.1:5555, ``zmq:PORT`` on that port of the loopback.
    zmq_overlay: zmq sinks also publish the blended frame as JPEG (topic hearflow.overlay).
    frame_id: ROS-style frame_id in the zmq headers.
    jpeg_quality: quality of those JPEGs (1..100).
    alpha: heatmap blend weight of the overlay, video and zmq-overlay drawings.
    stream: the stream's name with ``--streams`` (zmq topics get it as a suffix).

    Raises HearflowError (one line) on an unknown kind or a missing/extra argument.
    """
    options = SinkOptions(zmq_overlay=zmq_overlay, frame_id=frame_id, jpeg_quality=jpeg_quality, alpha=alpha,
                          stream=stream)
    items = [s.strip() for s in (spec or "").split(",")]
    if not any(items):
        raise HearflowError(f"--sink: no sink given (use {sink_help()})")
    sinks: list[Sink] = []
    seen: set[str] = set()
    for item in filter(None, items):
        sink = _build(item, options)
        key = sink.spec_key()
        if key in seen:
            raise HearflowError(f"--sink: {item!r} is given twice")
        seen.add(key)
        sinks.append(sink)
    return sinks


def _build(item: str, options: SinkOptions) -> Sink:
    """The sink for one KIND[:ARG] item."""
    kind, _, arg = item.partition(":")
    kind, arg = kind.strip().lower(), arg.strip()
    cls = SINK_KINDS.get(kind)
    if cls is None:
        raise HearflowError(f"--sink: unknown sink {kind!r} in {item!r} (use {sink_help()})")
    try:
        return cls.from_spec(arg, options)
    except ValueError as exc:
        raise HearflowError(f"--sink {item!r}: {exc}") from None


__all__ = ["SINK_KINDS", "SINK_USAGE", "parse_sinks", "register_sink", "sink_help"]
