"""Time each preprocessing step, numpy (hearflow.media) against torch (hearflow.media.preprocess_torch).

    python scripts/bench_preprocess.py                       # CPU, one thread, 640×480 frames
    python scripts/bench_preprocess.py --device cuda --size 1280x720

Per step, the median of --repeat calls in milliseconds: resize (each filter), grayscale,
normalisation, signed flow encoding (native-resolution field) and the 3 s log spectrogram.
torch runs on --device (CUDA timings synchronise after each call); numpy always on the
CPU. "upload" is the host→device copy of one uint8 frame (the torch path's extra step).
One thread for both (torch.set_num_threads(1); OpenCV's setNumThreads(1)) unless --threads.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import cv2
import numpy as np
import torch

from hearflow.media import preprocess_torch as pt
from hearflow.media.audio import log_spectrogram
from hearflow.media.flow import encode_flow
from hearflow.media.frames import normalize_frame, resize_frame, to_gray
from hearflow.media.preprocess import PreprocessConfig


def median_ms(fn, repeat: int, sync=lambda: None) -> float:
    fn()
    sync()  # warm-up: tap tables, kernels, allocator
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def steps(rgb: np.ndarray, device: torch.device):
    """(name, numpy callable, torch callable) per step, on the same inputs."""
    cfg = PreprocessConfig()
    h, w = rgb.shape[:2]
    x = torch.from_numpy(rgb).to(device).movedim(-1, -3)  # uint8 (3, H, W) view, as the engine passes it
    small = resize_frame(rgb, cfg)
    xs = pt.to_chw(torch.from_numpy(small).to(device))
    raw = np.random.default_rng(0).standard_normal((h, w, 2)).astype(np.float32)
    raw_t = torch.from_numpy(raw).to(device)
    wave = (np.random.default_rng(1).standard_normal(cfg.window_samples(22050)) * 0.1).astype(np.float32)
    wave_t = torch.from_numpy(wave).to(device)
    out = [("upload uint8 frame", None, lambda: torch.from_numpy(rgb).to(device))]
    for mode in pt.FILTERS:
        c = cfg.replace(image_resize=mode)
        out.append((f"resize {mode}", lambda c=c: resize_frame(rgb, c), lambda c=c: pt.resize(x, c)))
    out += [
        ("gray (model size)", lambda: to_gray(small), lambda: pt.to_gray(xs)),
        ("normalise", lambda: normalize_frame(small, cfg), lambda: pt.normalize(xs, cfg)),
        ("flow encode signed (native)", lambda: encode_flow(raw, 30.0, cfg), lambda: pt.encode_flow(raw_t, 30.0, cfg)),
        ("log spectrogram 3 s", lambda: log_spectrogram(wave, 22050, cfg), lambda: pt.log_spectrogram(wave_t, 22050, cfg)),
    ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", default="640x480", help="frame WIDTHxHEIGHT (default 640x480)")
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    w, h = (int(v) for v in args.size.split("x"))
    rgb = np.random.default_rng(2).integers(0, 256, (h, w, 3), dtype=np.uint8)
    print(f"{args.size} frames, {args.threads} thread(s), torch {torch.__version__} on {device}, "
          f"cpu {platform.processor() or platform.machine()}")
    print(f"{'step':32s} {'numpy ms':>9s} {'torch ms':>9s}")
    for name, np_fn, torch_fn in steps(rgb, device):
        a = f"{median_ms(np_fn, args.repeat):9.3f}" if np_fn else f"{'-':>9s}"
        b = median_ms(torch_fn, args.repeat, sync)
        print(f"{name:32s} {a} {b:9.3f}")


if __name__ == "__main__":
    main()
