"""Robot-ready outputs end to end: directions and tracked peaks on the wire, the heartbeat,
MCAP recordings (read back with the mcap reader, also after a real SIGKILL), the ROS 2
bridge's messages (CDR through rosbags) and the camera options' bad input."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zmq

from hearflow.cli import main
from hearflow.engine.capture import FrameBuilder
from hearflow.engine.packets import Result
from hearflow.engine.pipeline import Engine, EngineConfig
from hearflow.engine.run import RunOptions, run_engine
from hearflow.engine.sinks import SinkRunner, StreamInfo
from hearflow.engine.sinks.mcap import MSGDEFS, McapSink
from hearflow.engine.sinks.zmq import ZmqSink
from hearflow.engine.sources.base import VideoSource
from hearflow.engine.wire import decode_message, encode_message, format_line
from hearflow.media.encode import write_clip
from hearflow.media.preprocess import PreprocessConfig
from hearflow.media.synth import SynthConfig, render_clip, sample_spec
from hearflow.model import ModelConfig, create_model
from hearflow.model.checkpoint import save_checkpoint
from hearflow.runtime.backends import load_backend
from hearflow.runtime.geometry import parse_fov
from hearflow.runtime.peaks import Peak
from loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
PRE = PreprocessConfig(image_size=64, audio_window="trailing")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model")
    save_checkpoint(path, create_model(ModelConfig(backbone="resnet18_w16")), PRE)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    spec = sample_spec(SynthConfig(width=128, height=96, duration=2.0), np.random.default_rng(3), negative=None)
    frames, audio, _ = render_clip(spec)
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_clip(path, frames, 25, audio, 22050)
    return path


# --------------------------------------------------------------------------- heartbeat
class StallingSource(VideoSource):
    """A camera that delivers for ``seconds`` and then stops delivering (unplugged), without ending."""

    def __init__(self, seconds: float, fps: float = 25.0, size=(64, 48)):
        self.seconds, self.fps, self.size = seconds, fps, size
        self.name = "stalling"
        self.last_frame_t: float | None = None

    def run(self, ctx) -> None:
        builder = FrameBuilder(ctx.preprocess)
        rgb = np.random.default_rng(0).integers(0, 255, (self.size[1], self.size[0], 3), dtype=np.uint8)
        t0, i = time.monotonic(), 0
        while not ctx.stop.is_set() and time.monotonic() - t0 < self.seconds:
            now = time.monotonic()
            ctx.deliver(builder.build(rgb, now - ctx.clock0, now, self.fps))
            self.last_frame_t = now
            i += 1
            ctx.stop.wait(max(0.0, t0 + i / self.fps - time.monotonic()))
        ctx.stop.wait()  # unplugged: nothing more, but the thread (and the engine) go on


@pytest.mark.slow
def test_source_that_stops_delivering_is_reported_lost_within_2s_while_the_engine_runs(model_dir):
    port = free_port()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"hearflow.status")
    sub.connect(f"tcp://127.0.0.1:{port}")
    source = StallingSource(seconds=1.5)
    engine = Engine(load_backend(model_dir, device="cpu", threads=1), source, None,
                    [ZmqSink(f"tcp://127.0.0.1:{port}")], EngineConfig(), realtime=True, log=lambda s: None)
    th = threading.Thread(target=lambda: box.append(engine.run()))
    box: list = []
    th.start()
    statuses: list[tuple[float, dict]] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if sub.poll(100):
                _, h, _ = decode_message(sub.recv_multipart())
                statuses.append((time.monotonic(), h))
                lost = [t for t, s in statuses if s["state"] == "source lost"]
                if len(lost) >= 3:  # reported, then repeated by the heartbeat: the engine lives on
                    break
        assert th.is_alive(), "the engine must keep running without frames"
    finally:
        engine.stop.set()
        th.join(30)
        while sub.poll(500):  # the last words: "stopping"
            _, h, _ = decode_message(sub.recv_multipart())
            statuses.append((time.monotonic(), h))
        sub.close(linger=0)
        ctx.term()
    states = [s["state"] for _, s in statuses]
    assert "running" in states, states
    first_lost = next(t for t, s in statuses if s["state"] == "source lost")
    assert first_lost - source.last_frame_t < 2.0, first_lost - source.last_frame_t
    lost = [s for _, s in statuses if s["state"] == "source lost"]
    assert lost[0]["fps_in"] < 25 and lost[-1]["fps_in"] == 0 and lost[-1]["last_frame_age_s"] >= 1.0
    assert lost[-1]["seq"] > lost[0]["seq"] and states[-1] == "stopping"
    seqs = [s["seq"] for _, s in statuses]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert box and box[0]["processed"] > 10 and box[0]["status_messages"] >= len(statuses)
    line = format_line("hearflow.status", lost[-1], b"")
    assert "state source lost" in line and "\n" not in line


# --------------------------------------------------------------------------- MCAP
def read_mcap(path) -> list:
    """(schema, channel, message, decoded or None) for every message, in file order; a file cut
    short by a crash is read up to its last whole chunk (the streaming reader)."""
    from mcap.exceptions import EndOfFile
    from mcap.reader import NonSeekingReader
    from mcap_ros2.decoder import DecoderFactory

    factory, out = DecoderFactory(), []
    reader = NonSeekingReader(io.BytesIO(Path(path).read_bytes()), validate_crcs=True)
    try:
        for schema, channel, msg in reader.iter_messages(log_time_order=False):
            if channel.message_encoding == "cdr":
                out.append((schema, channel, msg, factory.decoder_for("cdr", schema)(msg.data)))
            else:
                out.append((schema, channel, msg, json.loads(msg.data)))
    except EndOfFile:
        pass
    return out


def stamp_ns(s) -> int:
    sec, ns = (s["sec"], s["nanosec"]) if isinstance(s, dict) else (s.sec, s.nanosec)
    return sec * 1_000_000_000 + ns


def test_mcap_recording_holds_every_message_as_ros2(model_dir, clip, tmp_path):
    rec = tmp_path / "out" / "run.mcap"
    summary = run_engine(RunOptions(model_dir, str(clip), "same", f"mcap:{rec},jsonl:{tmp_path}/r.jsonl",
                                    realtime=False, status=False, zmq_overlay=True, camera_fov="90,70",
                                    frame_id="head_camera"))
    n = summary["processed"]
    assert n == 50 and summary["sinks"][f"mcap:{rec}"]["failed"] is False
    assert summary["camera"]["source"] == "fov 90,70" and summary["camera"]["width"] == 128
    rows = [json.loads(line) for line in open(tmp_path / "r.jsonl")]

    from mcap.reader import make_reader
    with open(rec, "rb") as f:  # a finished file has its summary: what ros2 bag and Foxglove index
        s = make_reader(f).get_summary()
    channels = {c.topic: (s.schemas[c.schema_id].name, s.schemas[c.schema_id].encoding, c.message_encoding,
                          s.statistics.channel_message_counts[cid]) for cid, c in s.channels.items()}
    status_n = channels.pop("/hearflow/status")[3]
    assert channels == {
        "/hearflow/heatmap": ("sensor_msgs/msg/Image", "ros2msg", "cdr", n),
        "/hearflow/bearing": ("geometry_msgs/msg/Vector3Stamped", "ros2msg", "cdr", n),
        "/hearflow/overlay": ("sensor_msgs/msg/CompressedImage", "ros2msg", "cdr", n),
        "/hearflow/heatmap_header": ("hearflow.heatmap/1", "jsonschema", "json", n),
    }
    assert status_n >= 2

    msgs = read_mcap(rec)
    by_topic: dict[str, list] = {}
    for schema, channel, msg, dec in msgs:
        by_topic.setdefault(channel.topic, []).append((msg, dec))
    headers = [dec for _, dec in by_topic["/hearflow/heatmap_header"]]
    assert [h["seq"] for h in headers] == list(range(n))
    for (msg, img), h, row in zip(by_topic["/hearflow/heatmap"], headers, rows):
        assert stamp_ns(img.header.stamp) == stamp_ns(h["stamp"]) == msg.log_time  # stamps as on the wire
        assert img.header.frame_id == "head_camera" and img.encoding == "32FC1" and img.is_bigendian == 0
        assert (img.height, img.width, img.step) == (2, 2, 8)
        heat = np.frombuffer(bytes(img.data), "<f4").reshape(2, 2)
        np.testing.assert_allclose(heat, row["map"], atol=1e-4)
        assert row["peaks"] == h["peaks"] and row["azimuth"] == pytest.approx(h["azimuth"])
    for (msg, vec), h in zip(by_topic["/hearflow/bearing"], headers):
        v = (vec.vector.x, vec.vector.y, vec.vector.z)
        assert v == pytest.approx((h["bearing"]["x"], h["bearing"]["y"], h["bearing"]["z"]))
        assert math.hypot(*v) == pytest.approx(1) and stamp_ns(vec.header.stamp) == msg.log_time
        assert math.atan2(-v[0], v[2]) == pytest.approx(h["azimuth"])
    for (msg, jpg), h in zip(by_topic["/hearflow/overlay"], headers):
        assert jpg.format == "jpeg" and bytes(jpg.data[:2]) == b"\xff\xd8" and stamp_ns(jpg.header.stamp) == msg.log_time
    states = [dec["state"] for _, dec in by_topic["/hearflow/status"]]
    assert states[0] == "starting" and states[-1] == "stopping"
    assert all(dec["schema"] == "hearflow.status/1" for _, dec in by_topic["/hearflow/status"])


def test_mcap_message_definitions_are_the_ros2_ones():
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    for name, text in MSGDEFS.items():
        assert text.strip() == ts.generate_msgdef(name, ros_version=2)[0].strip(), name


@pytest.mark.slow
def test_sigkill_leaves_a_readable_mcap_missing_at_most_2s(tmp_path):
    rec, lines = tmp_path / "live.mcap", tmp_path / "live.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hearflow.cli", "run", "--model", str(ROOT / "checkpoints" / "synth_tiny"),
         "--video", "synth", "--audio", "synth", "--sink", f"mcap:{rec},jsonl:{lines}", "--camera-fov", "90",
         "--no-status", "--realtime"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if lines.exists() and sum(1 for _ in open(lines)) >= 100:  # ~4 s of frames
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    last_jsonl = [json.loads(line) for line in open(lines)][-1]  # JSONL is flushed per line
    msgs = read_mcap(rec)
    heat = [(m, d) for _, c, m, d in msgs if c.topic == "/hearflow/heatmap"]
    assert len(heat) >= 25, len(heat)
    seqs = [d["seq"] for _, c, _, d in msgs if c.topic == "/hearflow/heatmap_header"]
    # increasing; a realtime sink that falls behind drops its oldest results, so gaps may occur
    assert seqs == sorted(set(seqs)) and len(seqs) == len(heat)
    assert all(d.encoding == "32FC1" for _, d in heat)
    lost = last_jsonl["stamp"] - stamp_ns(heat[-1][1].header.stamp) / 1e9
    assert lost <= 2.0, f"the recording misses {lost:.2f} s"
    assert any(c.topic == "/hearflow/status" for _, c, _, _ in msgs)


# --------------------------------------------------------------------------- the ROS 2 bridge
def load_bridge():
    spec = importlib.util.spec_from_file_location("ros2_bridge", ROOT / "examples" / "ros2_bridge.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rosbags_msg(ts, typename: str, fields: dict):
    """A rosbags message of ``typename`` from the bridge's field dict (nested dicts → nested messages)."""
    cls = ts.types[typename]
    _, fdefs = ts.fielddefs[typename]
    kwargs = {}
    for name, (kind, detail) in fdefs:
        v = fields[name]
        if isinstance(v, dict):
            kwargs[name] = rosbags_msg(ts, detail, v) if isinstance(detail, str) else rosbags_msg(ts, detail[0], v)
        elif isinstance(v, bytes):
            kwargs[name] = np.frombuffer(v, np.uint8)
        else:
            kwargs[name] = v
    if "__msgtype__" in cls.__dataclass_fields__:
        kwargs.pop("__msgtype__", None)
    return cls(**kwargs)


def make_result(camera: bool) -> Result:
    t = time.monotonic()
    m = np.arange(12, dtype=np.float32).reshape(3, 4) / 12
    cam = parse_fov("90").model(160, 120) if camera else None
    peaks = [Peak(0.875, 0.833, 0.92, 4), Peak(0.125, 0.167, 0.61, 7)]
    for p in peaks:
        p.direction = cam.direction(p.x, p.y) if cam else None
    return Result(seq=5, capture_seq=9, t_capture=t - 0.02, t_media=0.2, t_result=t, map=m, peak=(0.875, 0.833),
                  peak_value=0.92, confidence=0.7, audio_rms_db=-20.0, warming_up=False, frame_size=(160, 120),
                  peaks=peaks, camera=cam, direction=cam.direction(0.875, 0.833) if cam else None)


def test_bridge_messages_serialise_to_the_same_cdr_as_the_mcap_recording(tmp_path):
    from rosbags.typesys import Stores, get_typestore

    ts, bridge = get_typestore(Stores.ROS2_HUMBLE), load_bridge()
    result = make_result(camera=True)
    sink = McapSink(tmp_path / "one.mcap", frame_id="cam0")
    runner = SinkRunner(sink, lossless=True)
    runner.start(StreamInfo(model="m"))
    runner.put_result(result)
    runner.stop()
    recorded = {c.topic: (m, d) for _, c, m, d in read_mcap(tmp_path / "one.mcap")}
    header = recorded["/hearflow/heatmap_header"][1]
    payload = np.ascontiguousarray(result.map, "<f4").tobytes()
    out = bridge.messages("hearflow.heatmap", header, payload)
    assert [(t, ty) for t, ty, _ in out] == bridge.TOPICS["hearflow.heatmap"]
    for topic, typename, fields in out:
        msg = rosbags_msg(ts, typename, fields)
        cdr = ts.serialize_cdr(msg, typename)
        back = ts.deserialize_cdr(cdr, typename)
        if topic == "/hearflow/heatmap_header":
            assert json.loads(back.data) == header
            continue
        assert bytes(cdr) == bytes(recorded[topic][0].data), topic  # the bridge publishes what MCAP records
        assert (back.header.stamp.sec, back.header.stamp.nanosec) == (header["stamp"]["sec"], header["stamp"]["nanosec"])
        assert back.header.frame_id == "cam0"
        if typename == "sensor_msgs/msg/Image":
            np.testing.assert_array_equal(np.frombuffer(back.data.tobytes(), "<f4").reshape(3, 4), result.map)
            assert (back.height, back.width, back.encoding, back.step) == (3, 4, "32FC1", 16)
        else:
            assert (back.vector.x, back.vector.y, back.vector.z) == pytest.approx(result.direction.bearing)
    # no camera model: no bearing message; status and overlay map too
    plain = json.loads(encode_message(make_result(camera=False))[1])
    assert [t for t, _, _ in bridge.messages("hearflow.heatmap", plain, payload)] == [
        "/hearflow/heatmap", "/hearflow/heatmap_header"]
    jpeg = bridge.messages("hearflow.overlay", plain, b"\xff\xd8jpeg")[0]
    back = ts.deserialize_cdr(ts.serialize_cdr(rosbags_msg(ts, jpeg[1], jpeg[2]), jpeg[1]), jpeg[1])
    assert back.format == "jpeg" and back.data.tobytes() == b"\xff\xd8jpeg"
    assert bridge.messages("hearflow.status", {"state": "running"}, b"")[0][:2] == ("/hearflow/status",
                                                                                   "std_msgs/msg/String")


# --------------------------------------------------------------------------- the wire and bad input
def test_header_fields_and_listen_line():
    h = json.loads(encode_message(make_result(camera=True))[1])
    assert set(h["bearing"]) == {"x", "y", "z"} and h["camera"]["hfov_deg"] == pytest.approx(90)
    assert h["azimuth"] < 0 and h["elevation"] < 0  # peak right of and below the centre
    assert [(p["track_id"], p["value"]) for p in h["peaks"]] == [(4, 0.92), (7, 0.61)]
    assert h["peaks"][1]["azimuth"] > 0 and h["peaks"][1]["elevation"] > 0  # left of and above the centre
    line = format_line("hearflow.heatmap", h, None)
    assert f"az {math.degrees(h['azimuth']):+.1f}°" in line and "peaks 2 #4 (0.88, 0.83) +0.92" in line
    plain = json.loads(encode_message(make_result(camera=False))[1])
    assert not {"bearing", "azimuth", "elevation", "camera"} & set(plain)  # absent, not guessed
    assert [p.keys() for p in plain["peaks"]][0] == {"x", "y", "value", "track_id"}


@pytest.mark.parametrize("extra, words", [
    (["--camera-fov", "0"], ["--camera-fov", "between 0 and 180"]),
    (["--camera-fov", "180"], ["--camera-fov", "not 180"]),
    (["--camera-fov", "90,x"], ["'x' is not a number"]),
    (["--camera-info", "missing.yaml"], ["missing.yaml", "no such file"]),
    (["--camera-info", "BAD"], ["not valid YAML"]),
    (["--camera-fov", "90", "--camera-info", "BAD"], ["not both"]),
    (["peaks_k=-1"], ["peaks_k"]),
    (["track_gate=0"], ["track_gate"]),
])
def test_bad_camera_and_peak_options_are_one_line_before_the_model_loads(tmp_path, capsys, extra, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text("camera_matrix: {data: [1, 2\n")
    extra = [str(bad) if e == "BAD" else e for e in extra]
    t = time.monotonic()
    rc = main(["run", "--model", str(tmp_path / "no-model"), "--video", "synth", "--no-status"] + extra)
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and time.monotonic() - t < 5
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err
    assert "no-model" not in err and all(w in err for w in words), err  # found before the model is looked at
