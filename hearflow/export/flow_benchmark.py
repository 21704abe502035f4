"""``hearflow bench flow``: speed and agreement of the optical flow providers.

For each frame size, every provider computes the flow of the same frame pairs (decoded
from ``--video`` and resized, or a generated textured scene panned by known sub-pixel
amounts, encoded to H.264 and decoded); the providers take turns on each pair.
Reported per provider: the median and p99 time
per pair (what :class:`~hearflow.media.flow.FlowEstimator` costs a caller: uint8 frames
in, a float32 field out, device copies included), the endpoint error against the first
provider (mean, p99), the share of pixels where HTF's 8-bit flow image is the same, the
error against the true motion when it is known (generated scene), and with ``--model``
how an HTF model's similarity map changes (argmax agreement, Pearson correlation).

Providers: ``opencv-dis``, ``opencv-farneback``, ``torch-farneback`` (on each device
torch sees, or one named as ``torch-farneback:cuda``) and ``none`` (zero flow); ``@N``
after a name computes at a working size whose longest side is N (``flow_max_side``),
e.g. ``opencv-farneback@320``. Also compared with the first provider: the flow input an
``htf_compat`` model gets (8-bit, resized to 224²), as mean absolute difference in 8-bit
levels: what a model sees, whatever its weights.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import av
import cv2
import numpy as np
import torch

from hearflow.errors import HearflowError
from hearflow.export.model_benchmark import machine_info
from hearflow.media.flow import FARNEBACK_PARAMS, FlowEstimator, encode_flow
from hearflow.media.frames import frame_input, to_gray
from hearflow.media.preprocess import htf_compat

KINDS = {"opencv-dis": "dis", "opencv-farneback": "farneback", "torch-farneback": "torch_farneback",
         "none": "none"}  # none: zero flow, the floor for how much a map depends on flow at all
SCENE_FPS = 25.0


@dataclass(frozen=True)
class Provider:
    kind: str  # a key of KINDS
    device: str = "cpu"
    max_side: int | None = None

    @property
    def label(self) -> str:
        name = f"{self.kind}:{self.device}" if self.kind == "torch-farneback" else self.kind
        return name + (f"@{self.max_side}" if self.max_side else "")


# --------------------------------------------------------------------------- arguments
def parse_providers(text: str) -> list[Provider]:
    """``a,b@320,torch-farneback:cuda`` → providers; plain torch-farneback: every device."""
    out = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        name, _, side = item.partition("@")
        kind, _, device = name.partition(":")
        if kind not in KINDS:
            raise HearflowError(f"unknown flow provider {kind!r} (known: {', '.join(KINDS)})")
        if device and kind != "torch-farneback":
            raise HearflowError(f"provider {kind!r} runs on the CPU only (got {item!r})")
        try:
            max_side = int(side) if side else None
        except ValueError:
            raise HearflowError(f"provider {item!r}: the working size after @ must be an integer") from None
        if max_side is not None and max_side < 32:
            raise HearflowError(f"provider {item!r}: the working size must be at least 32")
        for dev in ([device] if device or kind != "torch-farneback" else _devices()):
            _check_device(dev or "cpu")
            out.append(Provider(kind, dev or "cpu", max_side))
    if not out:
        raise HearflowError("no flow provider given")
    return out


def _devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _check_device(device: str) -> None:
    if device != "cpu" and not (device.startswith("cuda") and torch.cuda.is_available()):
        raise HearflowError(f"device {device!r} is not available here (torch sees: {', '.join(_devices())})")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``640x480,224x224`` → [(640, 480), (224, 224)]."""
    sizes = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        try:
            w, h = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise HearflowError(f"size {item!r} is not of the form WIDTHxHEIGHT") from None
        if w < 32 or h < 32:
            raise HearflowError(f"size {item!r}: both sides must be at least 32")
        sizes.append((w, h))
    if not sizes:
        raise HearflowError("no frame size given")
    return sizes


def parse_params(text: str | None) -> tuple:
    """Farneback's seven parameters, comma-separated in OpenCV's order (None: HTF's)."""
    if not text:
        return FARNEBACK_PARAMS
    parts = [p.strip() for p in text.split(",")]
    kinds = (float, int, int, int, int, float, int)
    if len(parts) != len(kinds):
        raise HearflowError("--params takes 7 values: pyr_scale,levels,winsize,iterations,"
                            f"poly_n,poly_sigma,flags (got {text!r})")
    try:
        params = tuple(k(p) for k, p in zip(kinds, parts))
    except ValueError:
        raise HearflowError(f"--params {text!r}: levels, winsize, iterations, poly_n and flags "
                            "must be integers, pyr_scale and poly_sigma numbers") from None
    if not 0 < params[0] < 1 or params[2] < 1 or params[3] < 1 or params[4] < 1:
        raise HearflowError(f"--params {text!r}: need 0 < pyr_scale < 1 and winsize, iterations, poly_n >= 1")
    return params


# --------------------------------------------------------------------------- frames
def moving_scene(width: int, height: int, count: int = 6, seed: int = 0):
    """A textured scene panned by known sub-pixel amounts: (RGB frames, true (dx, dy) of
    each consecutive pair). Content moves right by dx and down by dy pixels."""
    rng = np.random.default_rng(seed)
    pad = 24
    big = (height + 2 * pad, width + 2 * pad)
    # Texture at several scales, plus hard-edged shapes (what real scenes also have).
    tex = sum(cv2.GaussianBlur(rng.standard_normal(big).astype(np.float32), (0, 0), s) * s
              for s in (1.0, 3.0, 8.0))
    tex = (tex - tex.min()) / (tex.max() - tex.min()) * 200 + 20
    for _ in range(6):
        x, y = int(rng.integers(0, big[1])), int(rng.integers(0, big[0]))
        r = int(rng.integers(8, max(9, min(big) // 5)))
        cv2.circle(tex, (x, y), r, float(rng.uniform(0, 255)), -1)
    steps = rng.uniform(-2.5, 2.5, size=(count - 1, 2))
    pos = np.vstack([[0.0, 0.0], np.cumsum(steps, axis=0)])
    frames = []
    for dx, dy in pos:
        m = np.float32([[1, 0, dx - pad], [0, 1, dy - pad]])
        img = cv2.warpAffine(tex, m, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        frames.append(np.repeat(np.clip(np.rint(img), 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    return frames, [tuple(s) for s in steps]


def h264_roundtrip(frames: list[np.ndarray], fps: float = SCENE_FPS, crf: int = 20) -> list[np.ndarray]:
    """RGB frames encoded to H.264 (yuv420p, in memory) and decoded again, as real video is."""
    buf = io.BytesIO()
    height, width = frames[0].shape[:2]
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=int(round(fps)), options={"crf": str(crf), "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width + width % 2, height + height % 2, "yuv420p"
        for rgb in frames:
            rgb = np.pad(rgb, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))
    buf.seek(0)
    with av.open(buf) as src:
        return [f.to_ndarray(format="rgb24")[:height, :width] for f in src.decode(video=0)]


def _video_frames(path, count: int) -> tuple[list[np.ndarray], float]:
    """The first ``count`` frames of a file and its frame rate."""
    from hearflow.media.decode.video import read_frames

    frames, times = [], []
    for frame in read_frames(path):
        frames.append(frame.rgb)
        times.append(frame.t)
        if len(frames) == count:
            break
    if len(frames) < 2:
        raise HearflowError(f"{path}: needs at least 2 video frames")
    fps = (len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else SCENE_FPS
    return frames, fps


def _frames_at(size, video_frames, pairs: int, seed: int):
    """(RGB frames at size, true motion per pair or None)."""
    w, h = size
    if video_frames is not None:
        return [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in video_frames], None
    frames, truth = moving_scene(w, h, pairs + 1, seed)
    return h264_roundtrip(frames), truth


# --------------------------------------------------------------------------- measurements
def endpoint_error(flows, refs, margin: int = 0) -> dict:
    """Mean and p99 endpoint error (pixels) of flows against refs (fields or (dx, dy))."""
    errs = []
    for f, r in zip(flows, refs):
        f = f[margin:f.shape[0] - margin, margin:f.shape[1] - margin]
        errs.append(np.hypot(f[..., 0] - np.asarray(r)[..., 0], f[..., 1] - np.asarray(r)[..., 1]).ravel())
    e = np.concatenate(errs)
    return {"mean": float(e.mean()), "p99": float(np.percentile(e, 99))}


def htf_image_agreement(flows, refs) -> float:
    """Share of pixels where HTF's 8-bit flow image (rounded, saturated to 0..255) is equal."""
    def image(f):
        return np.clip(np.rint(f), 0, 255)
    return float(np.mean([np.mean(image(f) == image(r)) for f, r in zip(flows, refs)]))


def load_map_model(spec: str, seed: int = 0):
    """``htf-random``: HTF's architecture (as the importer builds it) with seeded random
    weights; otherwise a checkpoint folder. Returns (model in eval mode, its preprocessing)."""
    from hearflow.model import create_model
    from hearflow.model.htf import ModelConfig

    if spec == "htf-random":
        torch.manual_seed(seed)
        cfg = ModelConfig(backbone="resnet18", flow="cnn", feature_size=7, proj_dim=0, pretrained="none")
        return create_model(cfg).eval(), htf_compat()
    from hearflow.model.checkpoint import load_checkpoint

    ck = load_checkpoint(spec)
    return ck.model.eval(), ck.preprocess


@torch.no_grad()
def similarity_maps(model, preprocess, frames, flows, fps: float, seed: int = 0) -> np.ndarray:
    """(pairs, m, n) maps of frame i with flow i against one seeded random audio embedding."""
    gen = torch.Generator().manual_seed(seed)
    audio = torch.nn.functional.normalize(torch.randn(1, model.cfg.embed_dim, generator=gen), dim=1)
    maps = []
    for rgb, flow in zip(frames, flows):
        x = torch.from_numpy(frame_input(rgb, preprocess)).unsqueeze(0)
        f = torch.from_numpy(encode_flow(flow, fps, preprocess)).unsqueeze(0)
        maps.append(model.localize(x, f, audio)[0].numpy())
    return np.stack(maps)


def map_agreement(maps, ref_maps) -> dict:
    """Share of pairs whose map has its maximum in the same cell, and mean Pearson r."""
    same = [np.argmax(a) == np.argmax(b) for a, b in zip(maps, ref_maps)]
    corr = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(maps, ref_maps)]
    return {"argmax_agreement": float(np.mean(same)), "correlation": float(np.mean(corr))}


class _ErrorStats:
    """Mean and p99 of endpoint errors added pair by pair without keeping them: the p99
    comes from a log histogram (100 bins per decade, so within 2.3 %)."""

    EDGES = np.concatenate([[0.0], np.logspace(-9, 4, 1301)])

    def __init__(self):
        self.total, self.count = 0.0, 0
        self.hist = np.zeros(len(self.EDGES) - 1, np.int64)

    def add(self, flow: np.ndarray, ref) -> None:
        err = np.hypot(flow[..., 0] - np.asarray(ref)[..., 0], flow[..., 1] - np.asarray(ref)[..., 1]).ravel()
        self.total += float(err.sum(dtype=np.float64))
        self.count += err.size
        self.hist += np.histogram(np.minimum(err, self.EDGES[-1]), self.EDGES)[0]

    def result(self) -> dict:
        i = int(np.searchsorted(np.cumsum(self.hist), 0.99 * self.count))
        return {"mean": self.total / self.count, "p99": float(self.EDGES[min(i + 1, len(self.EDGES) - 1)])}


class _Run:
    """One provider on one size: its estimator, timings and running comparisons."""

    def __init__(self, provider: Provider, params: tuple):
        self.provider = provider
        self.est = None
        if provider.kind != "none":
            cfg = htf_compat().replace(flow=KINDS[provider.kind], flow_max_side=provider.max_side)
            self.est = FlowEstimator(cfg, params, provider.device)
        self.seconds, self.equal, self.input_diff, self.maps = [], [], [], []
        self.vs_first, self.truth = _ErrorStats(), _ErrorStats()

    def flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.est.raw(a, b) if self.est else np.zeros(a.shape + (2,), np.float32)
        self.seconds.append(time.perf_counter() - t0)
        return out

    def compare(self, flow, ref, model_input, ref_input) -> None:
        self.vs_first.add(flow, ref)
        self.equal.append(htf_image_agreement([flow], [ref]))
        self.input_diff.append(float(np.abs(model_input - ref_input).mean()))

    def row(self, size, first: "_Run") -> dict:
        secs = np.array(self.seconds)
        p = self.provider
        row = {"provider": p.kind, "device": p.device, "max_side": p.max_side, "label": p.label,
               "size": f"{size[0]}x{size[1]}",
               "median_ms": float(np.median(secs) * 1e3), "p99_ms": float(np.percentile(secs, 99) * 1e3)}
        if self.truth.count:
            row["epe_truth"] = self.truth.result()
        if self is not first:
            row["epe_vs_first"] = self.vs_first.result()
            row["htf_uint8_equal"] = float(np.mean(self.equal))
            row["htf_input_mean_abs_levels"] = float(np.mean(self.input_diff))
            if self.maps:
                row["map_vs_first"] = map_agreement(self.maps, first.maps)
        return row


def _bench_size(size, providers, params, frames, truth, fps, model) -> list[dict]:
    """Every provider on the frames of one size, interleaved pair by pair (so a change of
    load on a shared machine reaches all of them alike); comparisons against the first."""
    grays = [to_gray(f) for f in frames]
    runs = [_Run(p, params) for p in providers]
    for run in runs:  # warm-up, untimed
        run.flow(grays[0], grays[1])
        run.seconds.clear()
    m = max(8, min(size) // 20)  # true motion: leave out the border the scene enters at
    for i in range(len(grays) - 1):
        ref = ref_input = None
        for run in runs:
            flow = run.flow(grays[i], grays[i + 1])
            model_input = encode_flow(flow, fps, htf_compat()) * 255
            if truth is not None:
                run.truth.add(flow[m:-m, m:-m], truth[i])
            if model is not None:
                run.maps.append(similarity_maps(*model, [frames[i]], [flow], fps)[0])
            if ref is None:
                ref, ref_input = flow, model_input
            else:
                run.compare(flow, ref, model_input, ref_input)
    return [run.row(size, runs[0]) for run in runs]


def bench_flow(video=None, providers: str = "opencv-farneback,torch-farneback", sizes: str = "640x480",
               params: str | None = None, pairs: int = 5, threads: int = 0, model: str | None = None,
               seed: int = 0) -> dict:
    """Run every provider at every size; returns a JSON-ready dict (see :func:`format_flow_bench`)."""
    chosen, size_list, fb = parse_providers(providers), parse_sizes(sizes), parse_params(params)
    if pairs < 1:
        raise HearflowError("--pairs must be at least 1")
    if threads > 0:
        cv2.setNumThreads(threads)
        torch.set_num_threads(threads)
    video_frames, fps = _video_frames(video, pairs + 1) if video else (None, SCENE_FPS)
    net = load_map_model(model, seed) if model else None
    rows = []
    for size in size_list:
        frames, truth = _frames_at(size, video_frames, pairs, seed)
        rows += _bench_size(size, chosen, fb, frames, truth, fps, net)
    return {"machine": machine_info(), "threads": {"opencv": cv2.getNumThreads(), "torch": torch.get_num_threads()},
            "source": str(video) if video else "generated scene (H.264)", "pairs": pairs,
            "params": list(fb), "model": model, "runs": rows}


def format_flow_bench(result: dict) -> str:
    """A table: one line per size and provider."""
    m = result["machine"]
    lines = [f"CPU: {m['cpu']} ({result['threads']['opencv']} OpenCV / {result['threads']['torch']} torch threads)"
             + (f"; GPU: {m['gpu']}" if "gpu" in m else ""),
             f"source: {result['source']}, {result['pairs']} pairs; Farneback params {tuple(result['params'])}",
             f"{'size':>9}  {'provider':<26} {'ms/pair':>8} {'p99':>8}  {'EPE vs first':>14} {'p99':>7}"
             f" {'8-bit =':>8} {'input Δ':>7}  {'EPE truth':>9}  {'map argmax':>10} {'map r':>6}"]
    for r in result["runs"]:
        vs, truth, mp = r.get("epe_vs_first"), r.get("epe_truth"), r.get("map_vs_first")
        lines.append(
            f"{r['size']:>9}  {r['label']:<26} {r['median_ms']:8.1f} {r['p99_ms']:8.1f}  "
            + (f"{vs['mean']:14.3g} {vs['p99']:7.3g} {r['htf_uint8_equal']:8.2%} {r['htf_input_mean_abs_levels']:7.3f}"
               if vs else f"{'(first)':>14} {'':>7} {'':>8} {'':>7}")
            + (f"  {truth['mean']:9.3f}" if truth else f"  {'':>9}")
            + (f"  {mp['argmax_agreement']:10.0%} {mp['correlation']:6.3f}" if mp else ""))
    return "\n".join(lines)
