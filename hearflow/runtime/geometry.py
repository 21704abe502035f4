"""Where a map position points in the world: the camera model and the bearing of a peak.

A :class:`CameraSpec` says what the user gave (``--camera-fov HFOV[,VFOV]`` or
``--camera-info FILE``, the ROS ``camera_info`` YAML that ``camera_calibration`` writes)
and is checked before anything loads. Once the frames' size is known it becomes a
:class:`CameraModel` (intrinsics for that size), which turns a normalised map position
into a :class:`Direction`:

- ``bearing``: unit vector in the camera **optical frame** (ROS REP 103 ``*_optical``
  frames): x right, y down, z forward.
- ``azimuth``: radians, **positive to the left** (counter-clockwise seen from above, the
  sign of a ROS yaw): ``atan2(-x, z)``.
- ``elevation``: radians, **positive up**: ``atan2(-y, hypot(x, z))``.

Pixel convention (OpenCV's and ROS's): pixel centres are at integer coordinates, so a
normalised position (x, y) in [0, 1] of the frame is the pixel ``u = x·W − 0.5``,
``v = y·H − 0.5``; x = 0 is the left edge of the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hearflow.errors import HearflowError

DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
"""camera_info distortion models handled: OpenCV's standard model (5 or 8 coefficients)
and its fisheye model (4 coefficients)."""


@dataclass(frozen=True)
class Direction:
    """Where a point of the image lies, seen from the camera."""

    bearing: tuple[float, float, float]
    """Unit vector (x right, y down, z forward) in the camera optical frame."""
    azimuth: float
    """Radians, positive to the left."""
    elevation: float
    """Radians, positive up."""

    def as_dict(self) -> dict:
        x, y, z = self.bearing
        return {"bearing": {"x": x, "y": y, "z": z}, "azimuth": self.azimuth, "elevation": self.elevation}


def direction_of_ray(x: float, y: float, z: float = 1.0) -> Direction:
    """The Direction of a ray (x right, y down, z forward), normalised."""
    n = math.sqrt(x * x + y * y + z * z)
    x, y, z = x / n, y / n, z / n
    return Direction((x, y, z), math.atan2(-x, z), math.atan2(-y, math.hypot(x, z)))


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics (and distortion) for frames of ``width × height`` pixels."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = "plumb_bob"
    distortion: tuple[float, ...] = ()
    """Coefficients in camera_info order (k1, k2, p1, p2, k3[, k4, k5, k6]; fisheye: k1..k4)."""
    source: str = ""
    """How it was given: "fov 90,60" or the camera_info path (for the summary and headers)."""

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float64)

    @property
    def hfov(self) -> float:
        """Horizontal field of view, radians (of the pinhole part)."""
        return math.atan2(self.cx + 0.5, self.fx) + math.atan2(self.width - 0.5 - self.cx, self.fx)

    @property
    def vfov(self) -> float:
        return math.atan2(self.cy + 0.5, self.fy) + math.atan2(self.height - 0.5 - self.cy, self.fy)

    def direction(self, x: float, y: float) -> Direction:
        """Direction of the normalised frame position (x, y) (0..1, 0 = left/top edge)."""
        u, v = x * self.width - 0.5, y * self.height - 0.5
        if not any(self.distortion):
            return direction_of_ray((u - self.cx) / self.fx, (v - self.cy) / self.fy)
        import cv2

        pt = np.array([[[u, v]]], np.float64)
        d = np.array(self.distortion, np.float64)
        if self.distortion_model == "equidistant":
            xn, yn = cv2.fisheye.undistortPoints(pt, self.K, d)[0, 0]
        else:
            xn, yn = cv2.undistortPoints(pt, self.K, d)[0, 0]
        return direction_of_ray(float(xn), float(yn))

    def scaled_to(self, width: int, height: int) -> CameraModel:
        """The same camera for frames resized to width × height (as ROS image pipelines
        scale camera_info for binned or resized images): focal lengths and centre scale per
        axis (about pixel corners, so the centre of the frame stays the centre)."""
        sx, sy = width / self.width, height / self.height
        return CameraModel(width, height, self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                           (self.cy + 0.5) * sy - 0.5, self.distortion_model, self.distortion, self.source)

    def as_dict(self) -> dict:
        """For the run summary and the wire header's ``camera`` field."""
        return {"source": self.source, "width": self.width, "height": self.height,
                "fx": round(self.fx, 6), "fy": round(self.fy, 6), "cx": round(self.cx, 6), "cy": round(self.cy, 6),
                "distortion_model": self.distortion_model, "distortion": [float(d) for d in self.distortion],
                "hfov_deg": round(math.degrees(self.hfov), 4), "vfov_deg": round(math.degrees(self.vfov), 4)}


@dataclass(frozen=True)
class CameraSpec:
    """What the user said about the camera, before the frame size is known.

    Either fields of view (``hfov``, optional ``vfov``; degrees) or a calibrated
    ``info`` model at its calibration size.
    """

    hfov: float | None = None
    vfov: float | None = None
    info: CameraModel | None = None

    def model(self, width: int, height: int, log=None) -> CameraModel:
        """The camera model for frames of width × height.

        FOV: an ideal centred pinhole (without VFOV, square pixels). camera_info of another
        size: the intrinsics scaled to the frames, with one warning line to ``log``.
        """
        if self.info is None:
            fx = (width / 2) / math.tan(math.radians(self.hfov) / 2)
            fy = fx if self.vfov is None else (height / 2) / math.tan(math.radians(self.vfov) / 2)
            src = f"fov {self.hfov:g}" + ("" if self.vfov is None else f",{self.vfov:g}")
            return CameraModel(width, height, fx, fy, width / 2 - 0.5, height / 2 - 0.5, "plumb_bob", (), src)
        info = self.info
        if (info.width, info.height) == (width, height):
            return info
        if log is not None:
            log(f"warning: {info.source} is for {info.width}x{info.height} frames but they are {width}x{height}; "
                "scaling its intrinsics (right only for a resized image, not a cropped one)")
        return info.scaled_to(width, height)


def parse_fov(text: str) -> CameraSpec:
    """``HFOV[,VFOV]`` in degrees → CameraSpec; HearflowError (one line) unless 0 < FOV < 180."""
    parts = [p.strip() for p in str(text).split(",")]
    if not 1 <= len(parts) <= 2:
        raise HearflowError(f"--camera-fov {text!r}: give HFOV or HFOV,VFOV in degrees, e.g. 90 or 90,60")
    values = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise HearflowError(f"--camera-fov {text!r}: {p!r} is not a number of degrees") from None
        if not (math.isfinite(v) and 0 < v < 180):
            raise HearflowError(f"--camera-fov {text!r}: a pinhole field of view must be between 0 and 180 degrees "
                                f"(exclusive), not {p}")
        values.append(v)
    return CameraSpec(hfov=values[0], vfov=values[1] if len(values) > 1 else None)


def load_camera_info(path) -> CameraSpec:
    """Read a ROS camera_info YAML (image_width, image_height, camera_matrix,
    distortion_model, distortion_coefficients); HearflowError (one line, naming the file
    and the field) when it is missing or malformed."""
    import yaml

    path = Path(path)
    where = f"--camera-info {path}"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HearflowError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HearflowError(f"{where}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise HearflowError(f"{where}: not valid YAML{at}") from None
    if not isinstance(doc, dict):
        raise HearflowError(f"{where}: not a camera_info file (expected a mapping with image_width, camera_matrix, ...)")

    def size(key):
        v = doc.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise HearflowError(f"{where}: {key} must be a positive integer, not {v!r}")
        return v

    def matrix(key, rows, cols, required=True):
        m = doc.get(key)
        if m is None and not required:
            return None
        data = m.get("data") if isinstance(m, dict) else None
        try:
            arr = np.asarray(data, np.float64).reshape(-1)
        except (TypeError, ValueError):
            arr = None
        if arr is None or not np.isfinite(arr).all() or (rows and arr.size != rows * cols):
            want = f"{rows}x{cols} numbers" if rows else "a list of numbers"
            raise HearflowError(f"{where}: {key} must have data: [{want}]")
        return arr

    w, h = size("image_width"), size("image_height")
    k = matrix("camera_matrix", 3, 3)
    fx, fy, cx, cy = k[0], k[4], k[2], k[5]
    if fx <= 0 or fy <= 0 or k[1] != 0 or list(k[6:]) != [0, 0, 1]:
        raise HearflowError(f"{where}: camera_matrix is not a pinhole matrix [fx 0 cx; 0 fy cy; 0 0 1] with fx, fy > 0")
    dm = str(doc.get("distortion_model") or "plumb_bob")
    if dm not in DISTORTION_MODELS:
        raise HearflowError(f"{where}: distortion_model {dm!r} is not one of {', '.join(DISTORTION_MODELS)}")
    d = matrix("distortion_coefficients", 0, 0, required=False)
    d = () if d is None else tuple(float(v) for v in d)
    allowed = {"plumb_bob": (0, 4, 5, 8, 12, 14), "rational_polynomial": (0, 8, 12, 14), "equidistant": (0, 4)}[dm]
    if len(d) not in allowed:
        raise HearflowError(f"{where}: {dm} takes {' or '.join(map(str, allowed[1:]))} distortion_coefficients, "
                            f"not {len(d)}")
    return CameraSpec(info=CameraModel(w, h, float(fx), float(fy), float(cx), float(cy), dm, d, str(path)))


def parse_camera(fov: str | None, info: str | None) -> CameraSpec | None:
    """The camera from ``--camera-fov`` / ``--camera-info`` (at most one); None without either."""
    if fov is not None and info is not None:
        raise HearflowError("give --camera-fov or --camera-info, not both")
    if fov is not None:
        return parse_fov(fov)
    if info is not None:
        return load_camera_info(info)
    return None


__all__ = ["CameraModel", "CameraSpec", "Direction", "direction_of_ray", "load_camera_info", "parse_camera",
           "parse_fov"]
