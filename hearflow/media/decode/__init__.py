"""Reading audio, video and still images (PyAV for media, OpenCV for images).

Every function here speaks one clock: seconds relative to the **container start**, the
earliest start time of the file's chosen video and audio streams (0 in nearly every
file). A video frame's ``t`` and an audio sample's position ``i / rate`` are on that
clock, so the audio window of a frame is found by time alone.

Audio is always float32 mono in [-1, 1]. The downmix is ffmpeg's resampler
(libswresample) with ``rematrix_maxval=1``: its default matrix for float output gives
each stereo channel a gain of 1/√2 (so L = R = 0.9 would come out as 1.27); normalised,
stereo becomes (L + R) / 2, 5.1 becomes 0.207·(FL+FR) + 0.293·FC + 0.146·(BL+BR) (LFE
dropped). libswresample normalises like this by itself whenever it writes integer
samples, so this is also what ``ffmpeg -i clip.mp4 -ac 1 clip.wav`` (16-bit) gives.

Alignment of audio with time 0: ffmpeg's decoders drop the encoder's priming samples
when the container says how many there are (MP4/MOV edit lists, Opus pre-skip), so the
first decoded AAC sample is the first real one. Audio that starts after the container
start (a gap at the beginning or in the middle of the stream) is filled with silence,
audio that starts before it is cut, and the end is trimmed to the duration the
container declares for the stream (this removes AAC's end padding in MP4/MOV). What no
decoder can fix: AAC in a container without an edit list keeps its ~1024 priming
samples (a constant ~23 ms delay at 44.1 kHz); Matroska does not store AAC's end
padding, so up to one codec frame of silence remains at the end there.

Errors are the typed :mod:`hearflow.errors`: every public function raises a
:class:`~hearflow.errors.MediaError` subclass whose message names the file and the
problem in one line; no PyAV/ffmpeg exception escapes.

Damaged files are decoded as far as they can be, as ffmpeg does (see
:mod:`~hearflow.media.decode.damage`): iter_media, read_frames, frames_around and
read_audio skip undecodable packets (lost audio becomes silence at its time, so audio
stays in sync) and end a truncated file at the cut; what was lost goes into the
:class:`DamageReport` given as ``report=``, else into a :class:`DamagedMediaWarning`.
Files that cannot be opened, or where a wanted stream has nothing decodable, still raise.
:func:`probe` with ``decode=True`` is the strict check: it raises CorruptMedia for any damage.

Modules: :mod:`~hearflow.media.decode.container` (opening, errors, streams, the clock),
:mod:`~hearflow.media.decode.damage` (decoding past damage, the report),
:mod:`~hearflow.media.decode.audio`, :mod:`~hearflow.media.decode.video` (and still images),
:mod:`~hearflow.media.decode.interleave` (both streams in time order) and
:mod:`~hearflow.media.decode.probe`.
"""

from hearflow.media.decode.audio import read_audio
from hearflow.media.decode.container import AUDIO_GAP, SLACK, TRUNCATION_SLACK
from hearflow.media.decode.damage import DamagedMediaWarning, DamageReport
from hearflow.media.decode.interleave import AudioBlock, iter_media
from hearflow.media.decode.probe import (
    AudioStreamInfo,
    DecodeStats,
    MediaInfo,
    VideoStreamInfo,
    probe,
    video_fps,
)
from hearflow.media.decode.video import VideoFrame, frames_around, read_frames, read_image

__all__ = [
    "SLACK",
    "AUDIO_GAP",
    "TRUNCATION_SLACK",
    "VideoFrame",
    "AudioBlock",
    "DamageReport",
    "DamagedMediaWarning",
    "VideoStreamInfo",
    "AudioStreamInfo",
    "DecodeStats",
    "MediaInfo",
    "read_audio",
    "read_frames",
    "video_fps",
    "frames_around",
    "iter_media",
    "probe",
    "read_image",
]
