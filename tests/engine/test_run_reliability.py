"""`hearflow run` as a launch script sees it: real processes, real signals, a real full disk.

A SIGKILLed run leaves a playable recording; a sink that cannot write makes the run exit 3;
bad input exits 2 in well under a second, before the model loads.
"""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from hearflow.media.synth import SynthConfig, scene_from_config
from loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "checkpoints" / "synth_tiny"
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def hearflow_run(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hearflow.cli", "run", "--model", str(MODEL), "--no-status",
                             *map(str, args)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def read_recording(path):
    """(video frame times, gray frames, mono PCM float, audio rate) of a media file."""
    with av.open(str(path)) as c:
        assert c.streams.video and c.streams.audio, f"{path}: needs video and audio"
        frames = [(float(f.time), f.to_ndarray(format="gray")) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].rate
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]).astype(np.float32)
    if np.abs(pcm).max() > 2:  # s16
        pcm /= 32768.0
    return [t for t, _ in frames], [g for _, g in frames], pcm, rate


def check_synth_sync(times, grays, pcm, rate, seed=0):
    """The recording of `--video synth --audio synth` keeps sound and picture together: the
    audio is found in the scene's sound at an offset t0, and each frame at file time t is
    the scene's frame at t + t0, not one of its neighbours (compared by their edges: the
    heatmap blended over the picture is smooth, the scene's objects are not)."""
    scene = scene_from_config(SynthConfig(sample_rate=rate), seed=seed)
    fps = scene.fps
    seg = pcm[rate:2 * rate]  # 1 s from file time 1 s
    ref = scene.audio(0, len(pcm) + 2 * rate)
    n = len(ref) + len(seg)
    corr = np.fft.irfft(np.fft.rfft(ref, n) * np.conj(np.fft.rfft(seg, n)), n)[:len(ref) - len(seg)]
    lag = int(np.argmax(corr))
    match = np.corrcoef(ref[lag:lag + len(seg)], seg)[0, 1]
    assert match > 0.9, f"the recorded sound is not the scene's (correlation {match:.2f})"
    t0 = lag / rate - 1.0
    checked = hits = 0

    def edges(gray):  # the lower two thirds: the status text is at the top
        g = gray.astype(np.float32)
        return (g - cv2.GaussianBlur(g, (0, 0), 3))[g.shape[0] // 3:]

    for t, gray in list(zip(times, grays))[5::max(1, len(times) // 12)]:
        k = round((t + t0) * fps)
        assert abs((t + t0) * fps - k) < 0.05, f"frame at {t:.3f} s is off the source's frame grid (t0 {t0:.3f})"
        err = {j: np.abs(edges(gray) - edges(cv2.cvtColor(scene.frame(j), cv2.COLOR_RGB2GRAY))).mean()
               for j in range(max(0, k - 2), k + 3)}
        checked += 1
        hits += err[k] <= min(err.values()) + 0.02  # ties: the scene may stand still for a moment
    assert hits >= 0.8 * checked, f"only {hits}/{checked} frames show the scene at their audio time"
    return t0


# ------------------------------------------------------------------------------------ SIGKILL
@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [3.0, 5.0, 8.0])
def test_sigkill_leaves_a_playable_synced_recording(tmp_path, kill_after):
    """SIGKILL ``kill_after`` seconds after the first frame reached the disk (one run at a
    time: parallel runs on a small machine starve each other's sink threads)."""
    partial = tmp_path / "k.mp4.partial.mkv"
    proc = hearflow_run("--video", "synth", "--audio", "synth", "--sink", f"video:{tmp_path}/k.mp4")
    try:
        deadline = time.monotonic() + 90
        while not (partial.exists() and partial.stat().st_size > 0):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.02)
        first = time.monotonic()
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
        elapsed = time.monotonic() - first
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "k.mp4").exists(), "the mp4 is only written at a clean end"
    times, grays, pcm, rate = read_recording(partial)
    media = min(times[-1], len(pcm) / rate)
    print(f"killed {elapsed:.2f} s after the first frame: {media:.2f} s recovered "
          f"(video {times[-1]:.2f} s, audio {len(pcm) / rate:.2f} s)")
    assert media >= elapsed - 2.0, f"killed after {elapsed:.2f} s, only {media:.2f} s recovered"
    check_synth_sync(times, grays, pcm, rate)


@pytest.mark.slow
def test_clean_stop_remuxes_to_mp4_and_keeps_sync(tmp_path):
    proc = hearflow_run("--video", "synth", "--audio", "synth", "--duration", "3", "--sink",
                        f"video:{tmp_path}/a.mp4")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"recording to {tmp_path}/a.mp4.partial.mkv while running (a crash leaves a playable .mkv there)" in err
    assert not (tmp_path / "a.mp4.partial.mkv").exists()
    with av.open(str(tmp_path / "a.mp4")) as c:
        assert c.format.name.startswith("mov") and c.streams.audio[0].codec_context.name == "aac"
    times, grays, pcm, rate = read_recording(tmp_path / "a.mp4")
    assert len(times) == json.loads(out)["sinks"][f"video:{tmp_path}/a.mp4"]["written"]
    check_synth_sync(times, grays, pcm, rate)


# ---------------------------------------------------------------------------------- full disk
@pytest.mark.slow
def test_full_disk_fails_the_sinks_and_exit_code_3(tmp_path):
    limit = 60_000  # bytes any file of the run may hold: both outputs hit it within 2 s of media

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    port = free_port()
    video, jsonl, zmq = f"video:{tmp_path}/f.mp4", f"jsonl:{tmp_path}/f.jsonl", f"zmq:tcp://127.0.0.1:{port}"
    proc = hearflow_run("--video", "synth", "--audio", "synth", "--no-realtime", "--duration", "4",
                        "--sink", f"{video},{jsonl},{zmq}", preexec_fn=small_disk)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 3, err
    summary = json.loads(out)
    sinks = summary["sinks"]
    assert sinks[video]["failed"] and "File too large" in sinks[video]["error"]
    assert f"{tmp_path}/f.mp4.partial.mkv" in sinks[video]["error"]
    assert sinks[jsonl]["failed"] and "File too large" in sinks[jsonl]["error"]
    assert not sinks[zmq]["failed"] and sinks[zmq]["written"] == summary["processed"] == 100, "the others go on"
    assert summary["error"] is None
    failed_lines = [line for line in err.splitlines() if " failed: " in line]
    assert len(failed_lines) == 2 and "Traceback" not in err
    # what reached the disk is usable: whole JSON lines, a recording that plays
    lines = (tmp_path / "f.jsonl").read_text().splitlines()
    assert 0 < len(lines) == sinks[jsonl]["written"] and all(json.loads(line) for line in lines)
    assert not (tmp_path / "f.mp4").exists(), "no unplayable mp4 is left"
    times, _, pcm, _ = read_recording(tmp_path / "f.mp4.partial.mkv")
    assert len(times) > 5 and len(pcm) > 0


# --------------------------------------------------------------------------------- exit codes
@pytest.mark.parametrize("args, message", [
    (["--video", "/no/such/clip.mp4"], "/no/such/clip.mp4: no such file"),
    (["--video", "synth", "--audio", "/no/such.wav"], "/no/such.wav: no such file"),
    (["--video", "synth", "--audio", "synth", "--duration", "-1"], "--duration must be a positive number"),
    (["--video", "synth", "--audio", "synth", "--sink", "jsonl:{tmp}/file/a.jsonl"], "file is not a folder"),
    (["--video", "synth", "--audio", "synth", "--sink", "video:{tmp}/file/sub/a.mp4"], "file is not a folder"),
    (["--video", "synth", "--audio", "synth", "--sink", "video:{tmp}/dir.mp4"], "is a directory"),
])
def test_bad_input_exits_2_before_the_model_loads(args, message, tmp_path):
    (tmp_path / "file").write_text("in the way")
    (tmp_path / "dir.mp4").mkdir()
    t = time.monotonic()
    proc = hearflow_run(*[a.format(tmp=tmp_path) for a in args])
    out, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - t
    assert proc.returncode == 2, err
    assert err.splitlines() == [err.splitlines()[0]] and err.startswith("error: ") and message in err, err
    assert "loading" not in err and out == ""
    # the process start and imports included; loading the model alone takes longer
    assert elapsed < 5.0, f"{elapsed:.1f} s"
