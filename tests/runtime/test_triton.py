"""Serving through Triton Inference Server: the repository ``hearflow export --format triton``
writes, checked against its manifest; and the ``triton:grpc://`` backend against a real
Triton server (PyTriton's bundled tritonserver, serving the exported ONNX graphs through ONNX
Runtime in its Python backend; Triton's own ONNX Runtime backend is not in that package)
on loopback: the same maps as local onnxruntime (<= 1e-5), two engines sharing the server, and a
server paused and killed mid-run losing only the frames of those outages.

One tiny model is exported and one server started per module (it takes ~10 s to start).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
import zmq
from google.protobuf import text_format

from hearflow.config import from_dict
from hearflow.errors import HearflowError
from hearflow.export import ExportError, export_model
from hearflow.export.onnx import example_inputs
from hearflow.media.preprocess import PreprocessConfig
from hearflow.model import ModelConfig, create_model
from hearflow.model.checkpoint import file_sha256, save_checkpoint
from hearflow.runtime.backends import load_backend
from hearflow.runtime.triton_client import parse_url
from triton_server import ROOT, SKIP_REASON, TritonServer, available, free_ports

CFG = ModelConfig(backbone="resnet18_w16", flow="cnn")
PRE = PreprocessConfig(image_size=128)
MAX_BATCH = 4  # small, so a batch of 6 is sent in two requests
needs_server = pytest.mark.skipif(not available(), reason=SKIP_REASON)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("triton")
    torch.manual_seed(0)
    save_checkpoint(root / "ckpt", create_model(CFG), PRE)
    export_model(root / "ckpt", root / "export", check=False, format="triton", max_batch=MAX_BATCH)
    return root / "export"


@pytest.fixture(scope="module")
def server(export_dir, tmp_path_factory):
    if not available():
        pytest.skip(SKIP_REASON)
    srv = TritonServer(export_dir, tmp_path_factory.mktemp("triton-log") / "server.log")
    srv.start()
    yield srv
    srv.kill()


def test_repository_matches_the_manifest(export_dir):
    from tritonclient.grpc import model_config_pb2

    manifest = json.loads((export_dir / "manifest.json").read_text())
    triton = manifest["triton"]
    assert triton["prefix"] == "hearflow" and triton["max_batch_size"] == MAX_BATCH
    assert triton["plan_models"] == {}  # no GPU here: no TensorRT plans
    for graph in ("audio", "visual"):
        model = triton["models"][graph]
        assert model["name"] == f"hearflow_{graph}"
        folder = export_dir / model["name"]
        assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == \
            ["1", "1/model.onnx", "config.pbtxt"]
        # the model file is the manifest's graph, byte for byte
        assert file_sha256(folder / "1" / "model.onnx") == manifest["graphs"][graph]["sha256"]
        cfg = text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        assert cfg.name == model["name"] and cfg.platform == "onnxruntime_onnx"
        assert cfg.max_batch_size == MAX_BATCH and cfg.HasField("dynamic_batching")
        assert len(cfg.instance_group) == 1 and cfg.instance_group[0].count == 1
        spec = manifest["graphs"][graph]
        for got, want in ((cfg.input, spec["inputs"]), (cfg.output, spec["outputs"])):
            assert [t.name for t in got] == [t["name"] for t in want]
            assert [list(t.dims) for t in got] == [[d if isinstance(d, int) else -1 for d in t["shape"][1:]]
                                                   for t in want]
            assert all(t.data_type == model_config_pb2.TYPE_FP32 for t in got)
        params = {k: v.string_value for k, v in cfg.parameters.items()}
        assert params["hearflow.source_sha256"] == manifest["source"]["weights_sha256"]
        assert PreprocessConfig.from_dict(json.loads(params["hearflow.preprocess"])) == PRE
    # the audio graph's time axis stays dynamic
    audio = (export_dir / "hearflow_audio" / "config.pbtxt").read_text()
    assert f"dims: [ 1, {PRE.spectrogram_bins}, -1 ]" in audio


def test_bad_prefix_and_urls_are_one_line_errors(export_dir, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(ExportError, match="prefix"):  # refused before the (slow) ONNX export
        export_model(export_dir.parent / "ckpt", tmp_path / "x", format="triton", triton_prefix="a b")
    assert time.monotonic() - t0 < 2 and not (tmp_path / "x").exists()
    assert parse_url("triton:grpc://10.0.0.2:8001/cams?timeout=0.5") == \
        {"address": "10.0.0.2:8001", "prefix": "cams", "timeout": 0.5, "trt": False}
    for bad in ("triton:http://h:8000", "triton:grpc://h", "triton:grpc://h:1?timeout=0", "triton:grpc://h:1?x=1"):
        with pytest.raises(HearflowError):
            parse_url(bad)
    with pytest.raises(HearflowError, match="export folder"):
        load_backend(export_dir.parent / "ckpt", "triton:grpc://127.0.0.1:1")
    # nothing listens on port 1: a clear error at once, not a hang
    t0 = time.monotonic()
    with pytest.raises(HearflowError, match="not reachable"):
        load_backend(export_dir, "triton:grpc://127.0.0.1:1?timeout=0.5")
    assert time.monotonic() - t0 < 5


@needs_server
@pytest.mark.slow
def test_maps_through_triton_equal_local_onnxruntime(server, export_dir):
    remote = load_backend(export_dir, server.url)
    local = load_backend(export_dir, "onnxruntime", device="cpu")
    assert remote.preprocess == local.preprocess and remote.max_batch == {"audio": MAX_BATCH, "visual": MAX_BATCH}
    x = example_inputs(from_dict(ModelConfig, local.model_config, "m"), PRE, batch=6)  # two requests per graph
    emb = local.embed_audio(x["spectrogram"])
    assert np.abs(remote.embed_audio(x["spectrogram"]) - emb).max() <= 1e-5
    maps = remote.localize(x["frame"], x["flow"], emb)
    assert maps.shape == (6, *local.manifest.graphs["visual"]["outputs"][0]["shape"][1:])
    assert np.abs(maps - local.localize(x["frame"], x["flow"], emb)).max() <= 1e-5


def hearflow_run(export_dir, url, *args):
    cmd = [sys.executable, "-m", "hearflow.cli", "run", "--model", str(export_dir), "--backend", url,
           "--video", "synth", "--audio", "synth", "--no-status", *map(str, args)]
    return subprocess.Popen(cmd, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@needs_server
@pytest.mark.slow
def test_two_engines_share_the_server(server, export_dir, tmp_path):
    runs = {name: hearflow_run(export_dir, server.url, "--no-realtime", "--duration", 1.2, "--threads", 1,
                               "--sink", f"jsonl:{tmp_path / name}.jsonl") for name in ("a", "b")}
    summaries = {}
    for name, proc in runs.items():
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        summaries[name] = json.loads(out)
    maps = {name: np.array([json.loads(line)["map"] for line in open(tmp_path / f"{name}.jsonl")]) for name in runs}
    for s in summaries.values():
        assert s["backend"] == "triton" and s["processed"] > 20 and s["inference_failed"]["frames"] == 0
    # both processed every frame of the same scene, so both got the same maps from the shared server
    assert summaries["a"]["processed"] == summaries["b"]["processed"]
    assert np.abs(maps["a"] - maps["b"]).max() <= 1e-4  # the jsonl sink rounds maps to 4 decimals


@needs_server
@pytest.mark.slow
def test_a_paused_or_killed_server_loses_only_the_frames_of_the_outage(server, export_dir, tmp_path):
    results = tmp_path / "run.jsonl"
    port = free_ports(1)[0]
    run = hearflow_run(export_dir, server.url + "?timeout=0.3", "--realtime", "--duration", 120, "--threads", 1,
                       "--sink", f"jsonl:{results},zmq:tcp://127.0.0.1:{port}", "--summary", tmp_path / "summary.json")
    states = []

    def listen():  # the engine's hearflow.status messages, as a robot would see them
        with zmq.Context() as ctx, ctx.socket(zmq.SUB) as sub:
            sub.connect(f"tcp://127.0.0.1:{port}")
            sub.setsockopt(zmq.SUBSCRIBE, b"hearflow.status")
            while run.poll() is None:
                if sub.poll(100):
                    states.append(json.loads(sub.recv_multipart()[1])["state"])

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()

    def results_after(t, n=5, timeout=90.0):
        """Wait for n results captured after monotonic time t; the run must stay alive.
        Returns t, or when the server had died and was restarted, the time it was ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert run.poll() is None, run.stderr.read()
            # tritonserver's Python backend can crash when its processes resume under load
            # (a Triton fault, not the engine's): the serve script exits and, as a supervisor
            # would, the test starts it again; the outage then lasts until it is back
            t = server.restart_if_died() or t
            if results.exists():
                times = [json.loads(line)["t_capture"] for line in results.read_text().splitlines()]
                if sum(tc > t for tc in times) >= n:
                    return t
            time.sleep(0.2)
        raise AssertionError(f"no results after {t}")

    try:
        results_after(0.0)
        outages = []
        # 1. a hung server (tritonserver stopped, connections open): requests time out instead of hanging
        t0, pid = time.monotonic(), server.tritonserver_pid()
        os.kill(pid, signal.SIGSTOP)
        time.sleep(1.5)
        os.kill(pid, signal.SIGCONT)
        outages.append((t0, results_after(time.monotonic())))
        # 2. tritonserver dies: the serve script exits 1 (for its supervisor), and the server
        # restarted on the same port is picked up again
        t0 = time.monotonic()
        os.kill(server.tritonserver_pid(), signal.SIGKILL)
        assert server.proc.wait(timeout=60) == 1
        assert "died; exiting so it can be restarted" in server.log.read_text()
        server.kill()
        outages.append((t0, results_after(server.start())))
    finally:
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
        listener.join(timeout=10)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["error"] is None, err
    lost = summary["inference_failed"]
    assert lost["frames"] > 10 and "Triton server" in lost["last_error"]
    assert "timed out" in err and "unreachable" in err and "answering again" in err
    # the status said so, and said running again once the server was back
    changes = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    assert changes.count("backend unavailable") >= 2, changes
    assert changes[changes.index("backend unavailable") + 1] == "running", changes
    # every captured frame was either processed, lost to an outage, or dropped to stay real-time
    accounted = summary["processed"] + lost["frames"] + summary["dropped"]["before_inference"]
    assert 0 <= summary["captured"] - accounted <= 2
    # and every gap in the results lies in an outage (plus the client's backoff, <= 2 s, and a timeout)
    times = [json.loads(line)["t_capture"] for line in results.read_text().splitlines()]
    for before, after in zip(times, times[1:]):
        if after - before > 0.5:
            assert any(start - 0.5 <= before and after <= end + 3.0 for start, end in outages), (before, after, outages)
