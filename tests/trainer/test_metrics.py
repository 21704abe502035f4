"""Tests for hearflow.trainer.metrics (the LVS / HTF / EZ-VSL protocol) and plots.

The protocol cases below are copied from the reference set computed with a transcription of
the peers' evaluator (7×7 map → bicubic 224² → min–max → median / top-k rule; Flickr GT
summed /2 clipped at 1; VGG-SS binary union). Maps are the reference values to 4 decimals
(identical once cast to float32, which is what the protocol resizes).
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
import pytest

from hearflow.trainer import metrics as M
from hearflow.trainer import plots

N = M.SIZE


class ProtocolCase(NamedTuple):
    id: str
    fmt: str
    boxes: list
    map: list
    ciou: float | None
    ciou_adaptive: float | None
    pointing: float


# Flickr with 3 and 4 annotators and 2 annotators; VGG-SS with 2–3 boxes, one clip with a
# zero-area box among real ones, one wholly degenerate clip (None), one adaptive cIoU of 0.
PROTOCOL_CASES = [
    ProtocolCase(
        '10000130166', 'flickr',
        [[69, 1, 216, 256], [85, 1, 186, 203], [40, 1, 221, 254]],
        [
            [-0.7931, 0.2406, -1.8963, 1.3958, 0.6383, -0.2920, -0.3119],
            [0.3038, -0.2677, -0.2259, 0.7201, 0.5147, -0.0641, -0.0855],
            [0.1609, -0.6140, -0.4038, 0.5483, -0.1305, -1.3744, -0.4773],
            [0.6566, -0.2323, -0.1487, 0.6418, 1.8246, -0.7132, 1.3482],
            [-1.2300, 0.1750, -1.1695, 1.3515, 0.8339, 1.1377, -0.8855],
            [0.6846, -0.5190, -0.4574, 0.5065, 0.8767, 0.2044, -0.6280],
            [-0.8258, 1.4443, 0.5939, 0.7197, 2.1835, -0.8159, 2.5595],
        ],
        ciou=0.4766810708263069, ciou_adaptive=0.5633178860422119, pointing=0.0,
    ),
    ProtocolCase(
        '10007936344', 'flickr',
        [[31, 30, 217, 202], [149, 35, 217, 209], [36, 39, 126, 198], [36, 29, 217, 215]],
        [
            [3.1509, 1.6184, 0.8271, -0.6638, 0.9945, -0.4427, -0.0217],
            [-0.2904, 0.2838, 1.2881, -0.5556, -0.9854, -1.0030, -0.9683],
            [-1.4311, -0.9129, 1.2933, -0.5933, 0.2571, -1.2169, 0.1697],
            [-1.7408, -0.6988, 2.2545, -0.5830, 1.1200, 0.4551, -0.1530],
            [-0.6521, 1.2869, -0.1774, 1.5274, -0.7191, 0.0573, 0.4655],
            [0.3732, -1.2338, -0.6641, -0.1960, -0.8537, 0.6773, 0.5880],
            [-1.9571, -1.8053, -1.2816, 0.1173, 2.0332, -0.3824, 0.2507],
        ],
        ciou=0.3580429646125852, ciou_adaptive=0.36621877416086807, pointing=0.0,
    ),
    ProtocolCase(
        '10008553263', 'flickr',
        [[88, 18, 161, 136], [76, 19, 192, 256]],
        [
            [-1.0631, -1.0468, -1.9572, -0.0283, 0.9472, -0.3567, 1.3965],
            [0.1979, -0.0364, 0.5173, 0.4874, 1.1478, -0.8020, -2.2880],
            [0.1147, -0.6117, -0.0272, 1.6643, -1.1028, 0.7648, 0.9459],
            [0.4607, 1.1185, -0.4584, -0.6815, 1.0390, 0.7203, 1.3904],
            [0.2123, 1.6236, -0.2821, -1.0603, -2.0371, -1.1014, 0.8185],
            [-1.4649, -0.4524, 2.1066, 0.8468, 1.7910, -0.9916, -2.4600],
            [1.5164, -1.4169, 0.0909, 0.2171, -0.9489, 1.5526, 1.5493],
        ],
        ciou=0.2872340425531915, ciou_adaptive=0.2649250788643533, pointing=0.0,
    ),
    ProtocolCase(
        '10035917404', 'flickr',
        [[2, 106, 256, 255], [1, 99, 256, 256], [2, 88, 256, 255]],
        [
            [0.4292, -0.3278, -0.2272, 0.8323, -0.1357, -2.3030, 1.0200],
            [-1.0777, 1.3753, 1.6941, 0.7624, 0.9041, 1.8578, -1.1021],
            [0.2539, 0.2391, -0.9671, 2.0118, -0.5807, -0.7312, 0.2677],
            [1.0311, -0.6010, -0.5996, 0.5041, -1.4256, -0.7726, -0.8382],
            [-0.4343, -0.1423, 1.8442, 0.9074, 0.0224, -0.2247, 0.8744],
            [0.4284, 0.8912, 1.3810, -1.0082, -2.2529, -0.0218, 0.0795],
            [0.2868, -0.5988, -0.2326, 0.5587, 0.6126, 1.3310, -2.1663],
        ],
        ciou=0.3428469070933843, ciou_adaptive=0.43161655988171516, pointing=1.0,
    ),
    ProtocolCase(
        'ORaz32CQ29k_000130', 'vggss',
        [[0.121875, 0.171875, 0.6, 0.853125], [0.765625, 0.275, 0.984375, 0.565625]],
        [
            [0.7681, 1.1209, 0.3636, 1.4274, -1.0396, 1.2789, 0.2098],
            [0.6760, -2.8604, 0.8925, 0.2330, 1.9083, 0.1882, -0.9733],
            [-0.8032, 0.4056, 0.3078, -0.6341, -1.0680, 1.5160, -0.2387],
            [-0.0685, -0.5333, 1.3984, 1.1155, -1.0216, -0.0766, -0.9221],
            [1.8543, 0.4433, -0.2802, -0.3375, 0.5442, -0.2460, 1.5427],
            [-0.9262, -1.2347, 1.4105, -0.4257, 1.4199, 0.8799, -1.3581],
            [-0.6095, 0.0493, -0.2204, 0.3029, -0.6125, -0.0849, 1.0015],
        ],
        ciou=0.24739445080890776, ciou_adaptive=0.20426763555747143, pointing=0.0,
    ),
    ProtocolCase(
        'RDG7jY7P_8M_000088', 'vggss',
        [
            [0.771875, 0.478125, 0.99375, 0.74375],
            [0.4625, 0.00625, 0.55, 0.19375],
            [0.634375, 0.003125, 0.725, 0.140625],
        ],
        [
            [1.3329, -0.7900, -0.2320, -0.1268, -1.3499, 0.9380, 0.5647],
            [0.5214, -0.1103, 0.8703, 0.9634, 1.1600, -0.1701, 0.3494],
            [-0.3888, -0.3229, 0.9815, 0.0537, -0.1537, 0.6032, 0.6655],
            [-0.7543, -0.6477, 0.7123, 0.5261, -0.2096, 1.1959, -0.0991],
            [-1.9314, -0.7959, -1.4748, 1.1456, 0.5052, 0.1187, -2.3176],
            [-1.4772, -0.1507, -1.7802, 0.9418, -0.1030, -0.1431, -0.0634],
            [-0.9501, -1.0432, -1.8987, 0.0235, 0.4063, -0.2376, -0.2825],
        ],
        ciou=0.04654958311158418, ciou_adaptive=0.022492753623188404, pointing=0.0,
    ),
    ProtocolCase(
        'UyCw7pCgYg8_000055', 'vggss',
        [
            [0.503125, 0.403125, 0.646875, 0.6625],
            [0.253125, 0.065625, 0.375, 0.259375],
            [0.00625, 0.015625, 0.00625, 0.015625],
        ],
        [
            [-0.9401, 0.2507, -2.4514, -1.1044, -0.6584, -0.5085, 0.2179],
            [-0.1924, 0.1555, 1.2458, 1.3721, 0.6476, 1.2486, 1.7296],
            [0.3704, -1.3983, 1.0053, -0.9949, 1.8619, 1.7250, -0.5182],
            [-1.0998, -0.6887, -0.0651, 1.2813, -1.2354, 0.8819, -2.0697],
            [1.2137, -0.0620, 0.1997, -0.1061, 0.9357, 0.3713, 1.6879],
            [-1.7763, -0.9051, -1.3460, 0.7178, -1.6876, 2.4310, 0.0918],
            [1.2219, -0.9663, 0.1963, 0.6242, -0.7063, -0.2278, 1.5574],
        ],
        ciou=0.06658843125378558, ciou_adaptive=0.0034124146896327592, pointing=0.0,
    ),
    ProtocolCase(
        'eu_Ehoag0Vg_000244', 'vggss',
        [
            [0.015625, 0.26875, 0.978125, 0.484375],
            [0.503125, 0.509375, 0.975, 0.659375],
            [0.0, 0.83125, 0.496875, 1.0],
        ],
        [
            [-0.2908, -0.2360, -0.0023, -0.7081, 0.1874, -1.0799, -0.1154],
            [-0.2814, -1.7083, -1.2120, -0.5925, -0.5624, 0.2592, -0.4050],
            [-0.0512, -0.4088, -2.5901, -0.1234, -0.8422, -0.1598, -0.7661],
            [0.6557, -0.0459, 0.7083, 0.7814, -0.5666, 0.8153, 0.2287],
            [-1.0579, -0.1160, 0.0941, 1.2699, -0.3486, 1.5709, 0.7699],
            [-2.1143, -1.0356, 0.5865, -1.4553, 0.4762, 1.3826, -0.2682],
            [1.4077, 1.3239, -0.0563, -0.0334, 0.1812, 0.4449, -1.5575],
        ],
        ciou=0.29428871233698095, ciou_adaptive=0.2518864659051575, pointing=1.0,
    ),
    ProtocolCase(
        'M1P1xla8rg0_000000', 'vggss',
        [[0.26875, 1.0, 0.753125, 1.0]],
        [
            [-0.1449, -1.6733, -0.3451, -0.2194, -1.8174, -1.2635, -0.3981],
            [2.1603, -1.3867, 0.1246, -0.8935, -0.3750, 0.9852, 0.3105],
            [0.4258, 0.4888, 0.5755, -2.1616, 0.3860, -0.0851, 0.3975],
            [0.8364, 0.4157, 0.6904, -1.1715, 0.4478, -0.1093, -0.0865],
            [1.3001, -0.4887, -0.6666, -1.3136, -0.2956, 1.0707, -1.6678],
            [0.2512, -2.5328, -0.6903, 0.4375, -0.5386, -1.2020, -0.3682],
            [0.9891, 1.4919, 1.5122, 0.6823, 0.3606, 0.9858, -1.1564],
        ],
        ciou=None, ciou_adaptive=None, pointing=0.0,
    ),
    ProtocolCase(
        'gEvCUcZ6w88_000030', 'vggss',
        [[0.45, 0.190625, 0.584375, 0.478125]],
        [
            [0.4227, -0.1336, -0.3411, 0.0668, 0.7537, 0.8135, -0.4303],
            [-0.1645, -0.8594, -1.4615, 0.9509, -1.0973, -0.7353, 0.3794],
            [-1.3477, 0.4801, -0.8437, -1.1364, -0.5807, -0.8511, 0.2361],
            [1.4181, 0.6741, 0.4649, -0.6153, -0.2411, 0.0924, -0.0759],
            [0.1246, -1.2218, 1.7394, -1.3708, -0.1850, 0.7865, -0.7878],
            [1.0069, -1.4557, -0.7892, -2.3982, 0.9851, -1.2439, -0.7440],
            [0.7120, 0.2882, 1.0069, 0.5891, 0.8319, -0.5406, -0.1464],
        ],
        ciou=0.023043741486302408, ciou_adaptive=0.0, pointing=0.0,
    ),
    ProtocolCase(
        'gg6yoeBoYxg_000000', 'vggss',
        [[0.13125, 0, 1.0, 0.31875]],
        [
            [0.6802, 2.0239, -0.1272, -1.1220, 0.4135, 0.5930, -0.2666],
            [-0.2998, 2.0360, -0.3635, -0.9973, -2.7847, 0.7143, 1.1688],
            [-1.2696, 0.4815, -0.4368, -0.0310, -0.6828, -0.1048, 0.7717],
            [-0.5996, -0.7669, -1.0960, 1.0353, -0.9201, 0.5340, -1.3290],
            [-2.2138, -0.6467, 0.1478, 0.9957, 0.7084, 0.2354, -2.5717],
            [0.3952, -1.5593, -0.7804, 1.6990, 0.9166, -1.1580, -0.4261],
            [0.7054, -0.2252, -0.2930, -1.1963, 0.4596, 0.5927, -0.8701],
        ],
        ciou=0.26222279859940345, ciou_adaptive=0.26122802222829555, pointing=1.0,
    ),
]


@pytest.mark.parametrize("case", PROTOCOL_CASES, ids=[c.id for c in PROTOCOL_CASES])
def test_protocol_cases_match_the_peers(case):
    gt = M.gt_map_from_boxes(case.boxes, case.fmt)
    r = M.score_clip(np.array(case.map), gt)
    assert r["pointing"] == case.pointing
    if case.ciou is None:
        assert r["skipped"] and r["ciou"] is None and r["ciou_adaptive"] is None
        return
    assert not r["skipped"]
    assert r["ciou"] == pytest.approx(case.ciou, abs=1e-6)
    assert r["ciou_adaptive"] == pytest.approx(case.ciou_adaptive, abs=1e-6)


# --- ground truth -----------------------------------------------------------------------


def test_flickr_two_agreeing_annotators_weigh_one_and_an_outlier_half():
    # 128 px on the 256 frame -> int(224*128/256) = 112
    gt = M.gt_map_flickr([[0, 0, 128, 128], [0, 0, 128, 128], [128, 128, 256, 256]])
    assert gt.dtype == np.float32 and gt.shape == (N, N)
    assert (gt[:112, :112] == 1).all()
    assert (gt[112:, 112:] == 0.5).all()
    assert (gt[:112, 112:] == 0).all() and (gt[112:, :112] == 0).all()


def test_flickr_three_annotators_clip_at_one_and_boxes_end_exclusive():
    gt = M.gt_map_flickr([[1, 1, 255, 255]] * 3)
    # int(224/256) = 0, int(224*255/256) = 223: the slice [0:223] leaves the last row/col out
    assert gt.max() == 1 and gt[:223, :223].min() == 1
    assert gt[223].max() == 0 and gt[:, 223].max() == 0


def test_vggss_union_of_overlapping_boxes_is_binary():
    gt = M.gt_map_vggss([[0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]])
    assert set(np.unique(gt)) == {0.0, 1.0}
    assert gt.sum() == 2 * 112 * 112 - 56 * 56
    # negative coordinates are clamped at 0
    clamped = M.gt_map_vggss([[-0.1, -2e16, 0.5, 0.5]])
    np.testing.assert_array_equal(clamped, M.gt_map_vggss([[0, 0, 0.5, 0.5]]))


def test_gt_dispatch_rejects_unknown_format():
    with pytest.raises(ValueError, match="unknown box format"):
        M.gt_map_from_boxes([[0, 0, 1, 1]], "coco")


def test_degenerate_box_is_skipped_everywhere():
    gt = M.gt_map_vggss([[0.26875, 1.0, 0.753125, 1.0]])  # zero height
    assert gt.sum() == 0
    r = M.score_clip(M.center_prior_map(), gt)
    assert r["skipped"]
    assert r["ciou"] is None and r["ciou_adaptive"] is None and r["ceiling"] is None
    ok = M.score_clip(M.center_prior_map(), M.gt_map_vggss([[0.25, 0.25, 0.75, 0.75]]))
    s = M.summarize([r, ok])
    assert s["n"] == 1 and s["skipped"] == 1
    assert s["pointing"] == 1.0  # the skipped clip's pointing 0 is not counted


# --- binarisation, cIoU, pointing --------------------------------------------------------


def test_binarize_rules_keep_strictly_above_the_sorted_index():
    heat = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert M.binarize_median(heat).sum() == 7  # > sorted[8] = 8
    top = M.binarize_topk(heat, 4).ravel().nonzero()[0]
    np.testing.assert_array_equal(top, [13, 14, 15])  # > sorted[12]: k - 1 pixels, as the peers
    assert M.binarize_topk(heat, 0).sum() == 0
    rng = np.random.default_rng(0)
    kept = M.binarize_median(rng.random((N, N), np.float32)).sum()
    assert kept == M.median_rule_count(N * N) == 25087


def test_flat_map_is_the_whole_frame():
    gt = M.gt_map_vggss([[0, 0, 1, 0.5]])  # top half
    r = M.score_clip(M.whole_image_map(), gt)
    assert r["ciou"] == r["ciou_adaptive"] == 0.5


def test_ciou_by_hand():
    pred = np.array([1, 1, 0, 0], np.float32)
    assert M.ciou(pred, np.array([1, 0.5, 0.5, 0])) == pytest.approx(1.5 / 2)
    assert M.ciou(pred, np.array([1, 0, 0, 0])) == pytest.approx(0.5)  # 1 / (1 + 1 false positive)
    assert M.ciou(pred, np.array([0, 0, 1, 1])) == 0.0


def test_pointing_inside_and_outside():
    gt = M.gt_map_vggss([[0, 0, 0.25, 0.25]])  # [0:56, 0:56]
    heat = np.zeros((N, N), np.float32)
    heat[10, 20] = 1
    assert M.score_clip(heat, gt)["pointing"] == 1.0
    heat[10, 20], heat[100, 20] = 0, 1
    assert M.score_clip(heat, gt)["pointing"] == 0.0
    coarse = np.zeros((7, 7), np.float32)
    coarse[0, 0] = 1  # top-left cell: the bicubic peak stays in the top-left corner
    assert M.score_clip(coarse, gt)["pointing"] == 1.0


# --- ceiling ----------------------------------------------------------------------------


def test_ceiling_binary_box_and_whole_frame():
    p = M.median_rule_count(N * N)
    box = M.gt_map_vggss([[0, 0, 0.5, 0.25]])  # 112 × 56 px
    assert M.ciou_ceiling(box) == pytest.approx(112 * 56 / p)
    whole = np.ones((N, N), np.float32)
    assert M.ciou_ceiling(whole) == pytest.approx(p / (N * N)) and M.ciou_ceiling(whole) < 0.5


def test_ceiling_weighted_gt_by_hand():
    gt = np.array([1, 0.5, 0.5, 0, 0, 0], np.float32)
    assert M.ciou_ceiling(gt, n_pred=2) == pytest.approx(1.5 / 2)  # the 1 and one 0.5
    assert M.ciou_ceiling(gt, n_pred=4) == pytest.approx(2 / 3)  # all gt + 1 false positive


def test_ceiling_is_reached_by_a_map_covering_the_box():
    gt = M.gt_map_vggss([[0, 0, 0.5, 0.25]])
    ramp = np.linspace(0, 1, N * N, endpoint=False, dtype=np.float32).reshape(N, N)
    heat = 2 * gt + ramp  # the box first, then the ramp fills the rest of the median rule
    r = M.score_clip(heat, gt)
    assert r["ciou"] == pytest.approx(r["ceiling"], abs=1e-9)


# --- summarize --------------------------------------------------------------------------


def _clip(c, a=None, pointing=1.0, area=0.2, ceiling=1.0):
    return dict(ciou=c, ciou_adaptive=c if a is None else a, pointing=pointing, gt_area=area,
                ceiling=ceiling, skipped=False)


def test_summarize_auc_with_default_thresholds():
    # s(t) = 1 for t <= 0.5, 0 after: trapezoids give 0.5 + 0.05 * (1 + 0) / 2
    s = M.summarize([_clip(0.5)] * 3)
    assert s["auc"] == pytest.approx(0.525)
    assert s["ciou@0.5"] == 1.0 and s["mean_ciou"] == pytest.approx(0.5)
    assert len(s["success"]) == len(s["thresholds"]) == 21


def test_summarize_by_hand():
    clips = [
        _clip(0.2, a=0.6, pointing=0.0, area=0.05, ceiling=0.4),
        _clip(0.6, a=0.7, pointing=1.0, area=0.30, ceiling=0.9),
        dict(ciou=None, ciou_adaptive=None, pointing=0.0, gt_area=0.0, ceiling=None, skipped=True),
    ]
    s = M.summarize(clips, thresholds=[0, 0.5, 1])
    assert s["n"] == 2 and s["skipped"] == 1
    assert s["success"] == [1.0, 0.5, 0.0]
    assert s["auc"] == pytest.approx(0.5 * (1 + 0.5) / 2 + 0.5 * (0.5 + 0) / 2)
    assert s["success_adap"] == [1.0, 1.0, 0.0]
    assert s["auc_adap"] == pytest.approx(0.75)
    assert s["ciou@0.5"] == 0.5 and s["ciou_adap@0.5"] == 1.0
    assert s["mean_ciou"] == pytest.approx(0.4) and s["mean_ciou_adap"] == pytest.approx(0.65)
    assert s["pointing"] == 0.5 and s["ceiling_ciou@0.5"] == 0.5
    small, medium, large = (s["by_size"][k] for k in ("small", "medium", "large"))
    assert small["n"] == 1 and small["pointing"] == 0.0 and small["ciou_adap@0.5"] == 1.0
    assert medium["n"] == 0 and medium["pointing"] is None  # empty bucket: None, not NaN
    assert large["n"] == 1 and large["ciou@0.5"] == 1.0  # 0.30 goes to "large" (lo <= a < hi)


def test_summarize_of_nothing():
    s = M.summarize([])
    assert s["n"] == 0 and s["skipped"] == 0 and s["auc"] is None


# --- baseline maps ----------------------------------------------------------------------


def test_center_prior_map():
    g = M.center_prior_map()
    assert g.shape == (7, 7) and g.dtype == np.float32
    assert np.unravel_index(np.argmax(g), g.shape) == (3, 3)
    np.testing.assert_allclose(g, g.T)
    np.testing.assert_allclose(g, g[::-1, ::-1])
    assert M.center_prior_map(9, sigma_frac=1 / 9)[4, 5] == pytest.approx(np.exp(-0.5))
    big = M.center_prior_map(224)  # σ = 60 px; the 4 central pixels tie for the peak
    assert big[111, 111] == big[112, 112] == big.max()
    ratio = np.exp(-(59.5**2 - 0.5**2) / (2 * 60**2))  # centre at 111.5: dx 59.5 vs 0.5
    assert big[111, 171] / big[111, 111] == pytest.approx(ratio, rel=1e-5)


def test_upsample_rejects_bad_maps():
    with pytest.raises(ValueError):
        M.upsample(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError):
        M.upsample(np.zeros((2, 2, 2)))


# --- plots ------------------------------------------------------------------------------


def _read_png(path):
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_success_curve_png(tmp_path):
    th = np.linspace(0, 1, 21).tolist()
    s = M.summarize([_clip(0.3, a=0.6), _clip(0.7, a=0.8)])
    curves = {"cIoU": (th, s["success"]), "adaptive cIoU": (th, s["success_adap"])}
    out = plots.success_curve_png(curves, tmp_path / "curve.png", figsize=(5, 4), dpi=100)
    assert _read_png(out).shape == (400, 500, 3)


def test_overlay_grid_png(tmp_path):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    items = [dict(frame=frame, map=rng.random((7, 7)), boxes=[[10, 20, 80, 100]], title=f"clip {i}")
             for i in range(5)]
    items[4].pop("boxes")  # boxes are optional
    out = plots.overlay_grid_png(items, tmp_path / "sub" / "grid.png", cols=4, panel_in=2.0, dpi=50)
    assert _read_png(out).shape == (2 * 2 * 50, 4 * 2 * 50, 3)


def test_bar_breakdown_png(tmp_path):
    groups = {"small": {"pointing": 0.3, "ciou_adap@0.5": None},
              "large": {"pointing": 0.9, "ciou_adap@0.5": 0.7}}
    one = plots.bar_breakdown_png(groups, tmp_path / "one.png", "pointing", figsize=(6, 4), dpi=100)
    assert _read_png(one).shape == (400, 600, 3)
    both = ["pointing", "ciou_adap@0.5"]
    two = plots.bar_breakdown_png(groups, tmp_path / "two.png", both, dpi=80)
    assert _read_png(two).shape == (320, 480, 3)
