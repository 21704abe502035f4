"""Several streams in one process (hearflow run --streams): one batched backend, each
stream its own topics, summary and failures. Real processes, files, sockets."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from hearflow.engine.batching import BatchingBackend
from hearflow.engine.benchmark import camera_clip
from hearflow.runtime.backends import load_backend
from loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "checkpoints" / "synth_tiny"


def hearflow(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "hearflow.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def write_streams(path: Path, streams: list[dict], **top) -> Path:
    path.write_text(json.dumps({**top, "streams": streams}))  # JSON is YAML
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return camera_clip(tmp_path_factory.mktemp("streams") / "cam.mp4", 160, 120, 15.0, 1.5)


@pytest.fixture(scope="module")
def backend():
    return load_backend(MODEL)


# --------------------------------------------------------------------------- batching
def test_concurrent_calls_run_as_one_batch_with_the_same_maps(backend):
    rng = np.random.default_rng(0)
    s = backend.preprocess.image_size
    spec = rng.standard_normal((1, 1, backend.preprocess.spectrogram_bins,
                                backend.preprocess.spectrogram_frames(22050))).astype(np.float32)
    frames = [rng.standard_normal((1, 3, s, s)).astype(np.float32) for _ in range(3)]
    flows = [rng.uniform(-1, 1, (1, 2, s, s)).astype(np.float32) for _ in range(3)]
    emb = backend.embed_audio(spec)
    direct = [backend.localize(f, fl, emb) for f, fl in zip(frames, flows)]

    batcher = BatchingBackend(backend, max_wait=2.0)  # long: the three calls must meet
    for _ in range(3):
        batcher.register()
    out = [None] * 3
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, batcher.localize(frames[i], flows[i], emb)))
               for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    batcher.close()
    report = batcher.report()
    assert report["visual"] == {"3": report["visual"]["3"]} and report["visual"]["3"]["calls"] == 1
    for got, want in zip(out, direct):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_lone_call_waits_at_most_max_wait_and_errors_reach_every_caller(backend):
    batcher = BatchingBackend(backend, max_wait=0.2)
    for _ in range(4):
        batcher.register()  # four streams, but only one sends: the batch must not wait for the others
    s = backend.preprocess.image_size
    emb = np.zeros((1, backend.embed_audio(np.zeros((1, 1, backend.preprocess.spectrogram_bins,
                                                     backend.preprocess.spectrogram_frames(22050)),
                                                    np.float32)).shape[1]), np.float32)
    start = time.monotonic()
    m = batcher.localize(np.zeros((1, 3, s, s), np.float32), np.zeros((1, 2, s, s), np.float32), emb)
    assert m.shape[0] == 1 and time.monotonic() - start < 10
    with pytest.raises(Exception):
        batcher.localize(np.zeros((1, 3, s + 1, s - 3, 2), np.float32), None, emb)  # a malformed frame
    # the batcher survives a failed batch
    m2 = batcher.localize(np.zeros((1, 3, s, s), np.float32), np.zeros((1, 2, s, s), np.float32), emb)
    np.testing.assert_allclose(m2, m, atol=1e-6)
    batcher.close()


# --------------------------------------------------------------------------- hearflow run --streams
@pytest.mark.slow
def test_two_streams_give_each_its_own_results_equal_to_a_single_run(clip, tmp_path):
    single = hearflow("run", "--model", MODEL, "--video", clip, "--sink", f"jsonl:{tmp_path}/single.jsonl",
                      "--no-status")
    assert single.returncode == 0, single.stderr[-2000:]
    streams = write_streams(tmp_path / "streams.yaml", [
        {"name": "left", "video": str(clip), "sink": f"jsonl:{tmp_path}/left.jsonl"},
        {"name": "right", "video": str(clip), "sink": f"jsonl:{tmp_path}/right.jsonl"}])
    proc = hearflow("run", "--model", MODEL, "--streams", streams, "--no-status")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert set(summary["streams"]) == {"left", "right"}
    want = [json.loads(line) for line in (tmp_path / "single.jsonl").read_text().splitlines()]
    for name in ("left", "right"):
        assert summary["streams"][name]["processed"] == len(want) == 22  # offline: every frame of 1.5 s at 15 fps
        got = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert [g["peak"] for g in got] == [w["peak"] for w in want]
        np.testing.assert_allclose([g["peak_value"] for g in got], [w["peak_value"] for w in want], atol=1e-5)
    # the two streams' frames met in batches of 2 at least once
    assert int(summary["batching"]["visual"].get("2", {}).get("calls", 0)) > 0


@pytest.mark.slow
def test_streams_share_one_zmq_endpoint_with_a_topic_each(tmp_path):
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    streams = write_streams(tmp_path / "streams.yaml", [
        {"name": name, "video": "synth", "audio": "synth", "sink": f"zmq:{endpoint}"} for name in ("front", "back")])
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"hearflow.heatmap")  # the prefix: every stream
    sub.setsockopt(zmq.SUBSCRIBE, b"hearflow.status.back")
    sub.connect(endpoint)
    proc = subprocess.Popen([sys.executable, "-m", "hearflow.cli", "run", "--model", MODEL, "--streams", streams,
                             "--duration", "4", "--no-status"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen: dict[str, set] = {}
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if sub.poll(200):
                topic, header, _ = sub.recv_multipart()
                seen.setdefault(topic.decode(), set()).add(json.loads(header).get("stream"))
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        sub.close(0)
        ctx.term()
    assert proc.returncode == 0, err[-2000:]
    assert seen.get("hearflow.heatmap.front") == {"front"} and seen.get("hearflow.heatmap.back") == {"back"}
    assert seen.get("hearflow.status.back") == {"back"} and "hearflow.status.front" not in seen
    summary = json.loads(out)
    assert {k: v["processed"] > 0 for k, v in summary["streams"].items()} == {"front": True, "back": True}


@pytest.mark.slow
def test_a_stream_that_cannot_open_fails_alone(clip, tmp_path):
    streams = write_streams(tmp_path / "streams.yaml", [
        {"name": "ok", "video": str(clip), "audio": "none", "sink": f"jsonl:{tmp_path}/ok.jsonl"},
        {"name": "cam", "video": 7, "audio": "none", "sink": f"jsonl:{tmp_path}/cam.jsonl"}])
    proc = hearflow("run", "--model", MODEL, "--streams", streams, "--no-status")  # the file offline, the camera live
    assert proc.returncode == 1  # a stream failed
    summary = json.loads(proc.stdout)
    assert "camera 7" in summary["streams"]["cam"]["error"]
    assert summary["streams"]["ok"]["processed"] == 22 and summary["streams"]["ok"]["error"] is None
    assert "[cam] error: camera 7" in proc.stderr


@pytest.mark.parametrize("streams, message", [
    ([{"name": "a", "video": "synth"}, {"name": "a", "video": "synth"}], "stream name 'a' is used twice"),
    ([{"name": "a/b", "video": "synth"}], "must be 1-64 letters"),
    ([{"name": "a", "video": "synth", "sink": "jsonl:OUT"}, {"name": "b", "video": "synth", "sink": "jsonl:OUT"}],
     "streams a and b both write to jsonl:"),
    ([{"name": "a", "video": "missing.mp4"}], "stream a: "),
    ([], "no streams given"),
])
def test_bad_streams_files_are_one_line_before_the_model_loads(tmp_path, streams, message):
    for s in streams:
        s["sink"] = s.get("sink", "zmq").replace("OUT", str(tmp_path / "x.jsonl"))
    proc = hearflow("run", "--model", MODEL, "--streams", write_streams(tmp_path / "s.yaml", streams), timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
    assert "loading" not in proc.stderr


def test_video_and_streams_together_is_a_usage_error(tmp_path):
    proc = hearflow("run", "--model", MODEL, "--video", "synth", "--streams",
                    write_streams(tmp_path / "s.yaml", [{"name": "a", "video": "synth"}]), timeout=60)
    assert proc.returncode == 2 and "not both" in proc.stderr
