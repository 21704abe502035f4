"""Where does the sound come from at time T of a video? The library calls, step by step.

    python examples/localize_one_frame.py checkpoints/synth_tiny clip.mp4 --t 1.5 --out where.png

The same functions prepare training samples and feed the engine, with the preprocessing
stored in the model (checkpoint or export folder), so what you see here is what the model
saw in training.
"""

import argparse

import cv2

from hearflow.runtime.backends import load_backend
from hearflow.engine.draw import overlay
from hearflow.engine.pipeline import map_peak
from hearflow.media.audio import log_spectrogram
from hearflow.media.frames import normalize_frame
from hearflow.media.sample import video_sample


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="checkpoint folder or export folder")
    ap.add_argument("video", help="a video file with an audio track")
    ap.add_argument("--t", type=float, default=None, help="time in seconds (default: the middle)")
    ap.add_argument("--out", default=None, help="write the frame with the heatmap to this image")
    args = ap.parse_args()

    backend = load_backend(args.model)  # torch for a checkpoint, the manifest's runtime for an export
    pre = backend.preprocess  # the PreprocessConfig the model was trained with
    s = video_sample(args.video, args.t, pre)  # frame, flow into it, audio window around it

    embedding = backend.embed_audio(log_spectrogram(s.audio, s.rate, pre)[None, None])  # (1, D)
    flow = s.flow[None] if backend.uses_flow else None
    heat_map = backend.localize(normalize_frame(s.frame, pre)[None], flow, embedding)[0]  # m×n cosines
    (x, y), value = map_peak(heat_map)
    print(f"t={s.t:.3f} s: sound at x={x:.2f}, y={y:.2f} of the frame (similarity {value:.3f}, "
          f"map {heat_map.shape[0]}x{heat_map.shape[1]})")
    if args.out:
        cv2.imwrite(args.out, overlay(s.frame, heat_map, (x, y), order="rgb")[:, :, ::-1])


if __name__ == "__main__":
    main()
