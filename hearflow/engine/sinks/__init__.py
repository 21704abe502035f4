"""Where results go: the sink contract and runner (``base``), the ``--sink`` kinds
(``registry``) and one module per sink: ``overlay``, ``video``, ``zmq``, ``jsonl``, ``mcap``,
``http`` (the live page), ``foxglove``.

Importing this package registers every sink kind; the names other code uses are
re-exported here.
"""

from hearflow.engine.sinks.base import Sink, SinkOptions, SinkRunner, StreamInfo
from hearflow.engine.sinks.registry import SINK_KINDS, parse_sinks, register_sink, sink_help

# importing a sink module registers its kind; this order is the order --help lists them in
# isort: off
from hearflow.engine.sinks.overlay import NO_DISPLAY, OverlaySink, check_display
from hearflow.engine.sinks.video import VIDEO_SUFFIXES, VideoSink
from hearflow.engine.sinks.zmq import ZmqSink
from hearflow.engine.sinks.jsonl import JsonlSink
from hearflow.engine.sinks.mcap import McapSink
from hearflow.engine.sinks.http import HttpSink
from hearflow.engine.sinks.foxglove import FoxgloveSink
# isort: on

SINK_HELP = sink_help()
"""The --sink kinds as help text."""

__all__ = [
    "NO_DISPLAY",
    "SINK_HELP",
    "SINK_KINDS",
    "VIDEO_SUFFIXES",
    "FoxgloveSink",
    "HttpSink",
    "JsonlSink",
    "McapSink",
    "OverlaySink",
    "Sink",
    "SinkOptions",
    "SinkRunner",
    "StreamInfo",
    "VideoSink",
    "ZmqSink",
    "check_display",
    "parse_sinks",
    "register_sink",
    "sink_help",
]
