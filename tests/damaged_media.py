"""Damaged media files made here (shared by the media and engine tests): real H.264 + AAC
clips written with PyAV, then damaged at the bytes of chosen packets (found by demuxing, so
the damage always hits packet data) or cut short."""

import av
import numpy as np

from hearflow.media.encode import write_clip

FPS, N, RATE, SECONDS = 25, 100, 44100, 4.0
H, W = 96, 128


def moving_texture(n):
    """A random texture sliding right by 3 px a frame: every frame differs, P-frames carry real data."""
    tex = np.random.default_rng(0).integers(0, 256, (H, 2 * W, 3), np.uint8)
    return np.stack([np.roll(tex, 3 * i, axis=1)[:, :W] for i in range(n)])


def two_tones(seconds, rate):
    t = np.arange(round(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)


def packets(path, kind):
    """(pts seconds, byte position, size) of every stored packet of the first ``kind`` stream."""
    with av.open(str(path)) as c:
        s = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return [(float(p.pts * p.time_base), p.pos, p.size) for p in c.demux(s) if p.dts is not None]


def overwrite(src, dst, spans):
    """Copy ``src`` with the bytes of each (offset, length) span replaced by fixed junk."""
    data = bytearray(src.read_bytes())
    for offset, length in spans:
        data[offset : offset + length] = np.random.default_rng(offset).bytes(length)
    dst.write_bytes(bytes(data))
    return dst


def remux_faststart(src, dst):
    """Copy an mp4 with the moov atom (the index) moved to the front."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst


def reference_video_frames(path):
    """What PyAV decodes when it skips the packets that fail (single-threaded, as ffmpeg -threads 1)."""
    n = 0
    with av.open(str(path)) as c:
        for packet in c.demux(c.streams.video[0]):
            try:
                n += len(packet.decode())
            except av.FFmpegError:
                pass
    return n


def make_damaged_files(d):
    """clip.mp4 and its damaged copies in folder ``d``; a dict of paths and where the damage is."""
    clip = write_clip(d / "clip.mp4", moving_texture(N), FPS, two_tones(SECONDS, RATE), RATE, video_options={"g": 25})
    data = clip.read_bytes()
    assert data.find(b"mdat") < data.find(b"moov")  # index at the end: the damage lands in packet data

    # a) a few hundred bytes overwritten inside three video packets in the middle of the file
    video = packets(clip, "video")
    spans = [(pos + 8, min(300, size - 8)) for _, pos, size in (video[35], video[50], video[62])]
    corrupt = overwrite(clip, d / "corrupt.mp4", spans)
    # c) three AAC packets overwritten whole (two adjacent, one alone): audio-only damage
    audio = packets(clip, "audio")
    lost = [audio[k] for k in (40, 41, 120)]
    corrupt_audio = overwrite(clip, d / "corrupt_audio.mp4", [(pos, size) for _, pos, size in lost])
    # b) index at the front, file cut at half its size
    faststart = remux_faststart(clip, d / "faststart.mp4")
    fs = faststart.read_bytes()
    assert fs.find(b"moov") < fs.find(b"mdat")
    truncated = d / "truncated.mp4"
    truncated.write_bytes(fs[: len(fs) // 2])
    return {"clip": clip, "corrupt": corrupt, "damaged_at": [video[k][0] for k in (35, 50, 62)],
            "corrupt_audio": corrupt_audio, "audio_lost": lost, "truncated": truncated}
