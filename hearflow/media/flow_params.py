"""Farneback parameters shared by the OpenCV and torch providers (no heavy imports here,
so :mod:`hearflow.media.flow` and :mod:`hearflow.media.flow_torch` can both use them)."""

# HTF's Farneback parameters: pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags.
FARNEBACK_PARAMS = (0.5, 3, 15, 3, 5, 1.2, 0)

# OpenCV's flag values (cv2.OPTFLOW_USE_INITIAL_FLOW, cv2.OPTFLOW_FARNEBACK_GAUSSIAN).
OPTFLOW_USE_INITIAL_FLOW = 4
OPTFLOW_FARNEBACK_GAUSSIAN = 256

def working_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) flow is computed at: the frame's own, or shrunk so that its longest
    side is ``max_side`` (aspect kept, sides rounded)."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))
