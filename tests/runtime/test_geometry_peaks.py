"""Peak directions (camera model, undistortion) and tracked peaks, against hand-computed cases."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from hearflow.errors import HearflowError
from hearflow.runtime.geometry import CameraSpec, load_camera_info, parse_camera, parse_fov
from hearflow.runtime.peaks import PeakTracker, find_peaks

CALIB = """image_width: 640
image_height: 480
camera_name: head_camera
camera_matrix:
  rows: 3
  cols: 3
  data: [500.0, 0.0, 330.0, 0.0, 510.0, 235.0, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.28, 0.09, 0.001, -0.0005, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
"""


def test_fov_centre_is_straight_ahead_and_edges_are_half_the_fov():
    cam = parse_fov("90,60").model(640, 480)
    c = cam.direction(0.5, 0.5)
    assert c.bearing == pytest.approx((0, 0, 1), abs=1e-12) and c.azimuth == pytest.approx(0, abs=1e-12)
    # REP 103 optical frame: x right, y down; azimuth positive LEFT, elevation positive UP
    assert cam.direction(0.0, 0.5).azimuth == pytest.approx(math.radians(45))
    assert cam.direction(1.0, 0.5).azimuth == pytest.approx(math.radians(-45))
    assert cam.direction(0.5, 0.0).elevation == pytest.approx(math.radians(30))
    assert cam.direction(0.5, 1.0).elevation == pytest.approx(math.radians(-30))
    right = cam.direction(1.0, 0.5).bearing
    assert right[0] > 0 and right[1] == pytest.approx(0) and math.hypot(*right) == pytest.approx(1)
    down = cam.direction(0.5, 1.0).bearing
    assert down[1] > 0 and down[0] == pytest.approx(0)
    # a corner: elevation is measured from the horizontal plane through the ray, not the image row
    d = cam.direction(0.0, 0.0)
    x, y, z = d.bearing
    assert (x, y) == pytest.approx((-z * 1.0, -z * math.tan(math.radians(30))), rel=1e-9)
    assert d.elevation == pytest.approx(math.atan2(math.tan(math.radians(30)), math.hypot(1, 1)))


def test_fov_without_vfov_has_square_pixels_and_summary_says_so():
    cam = parse_fov("60").model(320, 240)
    assert cam.fx == cam.fy == pytest.approx(160 / math.tan(math.radians(30)))
    assert cam.as_dict()["hfov_deg"] == pytest.approx(60)
    assert cam.as_dict()["vfov_deg"] == pytest.approx(2 * math.degrees(math.atan(120 / cam.fy)), abs=1e-3)


def test_camera_info_with_distortion_matches_opencv(tmp_path):
    f = tmp_path / "head.yaml"
    f.write_text(CALIB)
    cam = load_camera_info(f).model(640, 480)
    K = np.array([[500, 0, 330], [0, 510, 235], [0, 0, 1]], float)
    D = np.array([-0.28, 0.09, 0.001, -0.0005, 0.0])
    for x, y in [(0.1, 0.1), (0.5, 0.5), (0.9, 0.3), (0.02, 0.97)]:
        u, v = x * 640 - 0.5, y * 480 - 0.5  # pixel centres at integers (OpenCV, ROS)
        xn, yn = cv2.undistortPoints(np.array([[[u, v]]]), K, D)[0, 0]
        want = np.array([xn, yn, 1.0]) / math.sqrt(xn * xn + yn * yn + 1)
        d = cam.direction(x, y)
        np.testing.assert_allclose(d.bearing, want, atol=1e-9)
        assert d.azimuth == pytest.approx(math.atan2(-xn, 1)) and d.elevation == pytest.approx(
            math.atan2(-yn, math.hypot(xn, 1)))
    # barrel distortion: a corner point lies further out than the pinhole alone says
    plain = CameraSpec(info=cam.__class__(640, 480, 500, 510, 330, 235)).model(640, 480)
    assert abs(cam.direction(0.02, 0.02).azimuth) > abs(plain.direction(0.02, 0.02).azimuth)


def test_camera_info_of_another_size_is_scaled_with_one_warning(tmp_path):
    f = tmp_path / "head.yaml"
    f.write_text(CALIB)
    lines = []
    cam = load_camera_info(f).model(320, 240, log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("warning:") and "640x480" in lines[0] and "320x240" in lines[0]
    assert (cam.fx, cam.fy) == pytest.approx((250, 255))
    assert (cam.cx, cam.cy) == pytest.approx(((330 + 0.5) / 2 - 0.5, (235 + 0.5) / 2 - 0.5))
    full = load_camera_info(f).model(640, 480)
    # the same normalised point of the frame points the same way at either size
    for x, y in [(0.5, 0.5), (0.2, 0.8)]:
        np.testing.assert_allclose(cam.direction(x, y).bearing, full.direction(x, y).bearing, atol=1e-6)


@pytest.mark.parametrize("text, words", [
    ("0", ["between 0 and 180", "not 0"]), ("180", ["not 180"]), ("-5", ["not -5"]), ("90,190", ["not 190"]),
    ("wide", ["'wide' is not a number"]), ("90,60,30", ["HFOV or HFOV,VFOV"]), ("nan", ["not nan"]),
])
def test_bad_fov_is_one_line(text, words):
    with pytest.raises(HearflowError) as e:
        parse_fov(text)
    msg = str(e.value)
    assert "\n" not in msg and "--camera-fov" in msg and all(w in msg for w in words), msg


@pytest.mark.parametrize("content, words", [
    (None, ["no such file"]),
    ("image_width: [640\n", ["not valid YAML", "line"]),
    ("- a list\n", ["not a camera_info file"]),
    (CALIB.replace("image_width: 640", "image_width: -1"), ["image_width"]),
    (CALIB.replace("0.0, 0.0, 1.0]", "0.0, 1.0]"), ["camera_matrix", "3x3"]),
    (CALIB.replace("data: [500.0", "data: [-500.0"), ["not a pinhole matrix"]),
    (CALIB.replace("plumb_bob", "kannala"), ["distortion_model 'kannala'"]),
    (CALIB.replace("distortion_model: plumb_bob", "distortion_model: equidistant"), ["equidistant takes 4", "not 5"]),
])
def test_bad_camera_info_is_one_line_naming_the_file(tmp_path, content, words):
    f = tmp_path / "cam.yaml"
    if content is not None:
        f.write_text(content)
    with pytest.raises(HearflowError) as e:
        load_camera_info(f)
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and all(w in msg for w in words), msg


def test_fov_and_info_together_are_refused():
    with pytest.raises(HearflowError, match="not both"):
        parse_camera("90", "x.yaml")
    assert parse_camera(None, None) is None


# --------------------------------------------------------------------------- peaks and tracks
def blobs(points, shape=(14, 14), sigma=1.2) -> np.ndarray:
    """A map with a Gaussian blob of height 0.9 at each normalised (x, y), background 0."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.zeros(shape, np.float32)
    for x, y in points:
        cx, cy = x * w - 0.5, y * h - 0.5
        m = np.maximum(m, 0.9 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)))
    return m


def test_find_peaks_k_threshold_and_suppression():
    m = blobs([(2.5 / 14, 2.5 / 14), (11.5 / 14, 9.5 / 14)])  # on cell centres: exact maxima
    m[12, 2] = 0.55  # a weak third maximum
    ps = find_peaks(m, k=3, threshold=0.5)
    assert [round(p.value, 2) for p in ps] == [0.9, 0.9, 0.55]
    assert {(p.x * 14, p.y * 14) for p in ps[:2]} == {(2.5, 2.5), (11.5, 9.5)}
    assert (ps[2].x * 14, ps[2].y * 14) == (2.5, 12.5)
    assert len(find_peaks(m, k=2, threshold=0.5)) == 2
    assert len(find_peaks(m, k=3, threshold=0.6)) == 2
    # two maxima closer than min_distance: only the stronger survives
    near = np.zeros((14, 14), np.float32)
    near[5, 5], near[5, 7] = 0.9, 0.8
    assert [p.value for p in find_peaks(near, threshold=0.5, min_distance=0.15)] == pytest.approx([0.9])
    assert len(find_peaks(near, threshold=0.5, min_distance=0.1)) == 2
    assert find_peaks(np.full((7, 7), np.nan, np.float32)) == []


def test_tracks_follow_two_moving_sources_through_dropouts_and_new_sources_get_new_ids():
    tracker = PeakTracker(gate=0.2, max_gap=0.5)
    fps, ids = 25.0, []
    for i in range(50):  # 2 s: A moves right along y = 0.3, B moves left along y = 0.75 (no crossing)
        t = i / fps
        a, b = (0.15 + 0.012 * i, 0.3), (0.85 - 0.010 * i, 0.75)
        visible = [a] + ([] if 20 <= i < 28 else [b])  # B silent for 8 frames (0.32 s)
        if 35 <= i < 38:
            visible = [b]  # A silent for 3 frames
        ps = tracker.update(find_peaks(blobs(visible), threshold=0.5), t)
        ids.append({("A" if abs(p.y - 0.3) < 0.1 else "B"): p.track_id for p in ps})
    a_ids = {d["A"] for d in ids if "A" in d}
    b_ids = {d["B"] for d in ids if "B" in d}
    assert len(a_ids) == len(b_ids) == 1 and a_ids | b_ids == {1, 2}, ids  # kept through motion and drop-outs
    (a_id,), (b_id,) = a_ids, b_ids
    # a third source appears: a new id; then a source gone for longer than max_gap comes back: a new id too
    ps = tracker.update(find_peaks(blobs([(0.15 + 0.6, 0.3), (0.35, 0.75), (0.5, 0.1)]), threshold=0.5), 2.0)
    got = {round(p.y, 1): p.track_id for p in ps}
    assert got[0.1] == 3 and got[0.3] == a_id and got[0.8] == b_id
    ps = tracker.update(find_peaks(blobs([(0.5, 0.1)]), threshold=0.5), 3.0)  # A and B gone for 1 s: retired
    assert [p.track_id for p in ps] == [3]
    ps = tracker.update(find_peaks(blobs([(0.5, 0.1), (0.75, 0.3)]), threshold=0.5), 3.04)
    assert sorted(p.track_id for p in ps) == [3, 4]  # A back after its track ended: 4, never 1 again


def test_a_jump_beyond_the_gate_is_a_new_track():
    tracker = PeakTracker(gate=0.2, max_gap=0.5)
    assert [p.track_id for p in tracker.update(find_peaks(blobs([(0.2, 0.5)])), 0.0)] == [1]
    assert [p.track_id for p in tracker.update(find_peaks(blobs([(0.8, 0.5)])), 0.04)] == [2]
