"""Typed errors for expected failures.

Every expected condition (a bad file, a bad config key, a missing optional package)
raises a subclass of :class:`HearflowError` whose message is one line saying what is
wrong and, where possible, what to do. The CLI prints that line without a traceback and
exits with :data:`EXIT_USAGE`; the other exit codes of the ``hearflow`` command are here too.
"""

# What the ``hearflow`` command exits with (a launch script can branch on them).
EXIT_OK = 0
"""Everything requested was delivered (also: ``hearflow run`` stopped by SIGTERM)."""
EXIT_FAILURE = 1
"""A runtime failure (a source or the inference failed, an unexpected error)."""
EXIT_USAGE = 2
"""Bad usage or input (an option, a file, a model folder): nothing was run."""
EXIT_OUTPUT_LOST = 3
"""A sink failed while writing or finishing its output (a full disk): output was lost."""
EXIT_SIGINT = 130
"""Stopped by Ctrl-C / SIGINT (after the outputs were finished), as shells report it."""


class HearflowError(Exception):
    """Base class of every error the CLI reports as one line."""


class ConfigError(HearflowError):
    """A config file or override names an unknown key or has a value of the wrong type."""


class MissingDependency(HearflowError):
    """An optional package or system library is not installed."""


class GPUUnavailable(HearflowError):
    """A CUDA device was asked for (or is needed, TensorRT) but none is usable."""


class MediaError(HearflowError):
    """A media file cannot be used. ``path`` names the file."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class MediaNotFound(MediaError):
    """The file does not exist or cannot be opened."""


class CorruptMedia(MediaError):
    """The container or a stream cannot be decoded (corrupt or truncated data)."""


class EmptyMedia(MediaError):
    """The file decodes but holds no frames or no samples."""


class NoVideoStream(MediaError):
    """The file has no video stream."""


class NoAudioStream(MediaError):
    """The file has no audio stream."""
