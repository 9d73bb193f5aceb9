"""NYUD2-DIR files written the way DIR writes them, read and binned the way DIR reads them.

The reference pipeline is redone here with Pillow (DIR's own library for it): ``Scale(240)``
resizes depth with ``Image.NEAREST``, ``CenterCrop`` cuts 304 x 228, the 16-bit test map is divided
by 1000 in float32, and a pixel's bin is ``min(int(float32(d) * float32(10)), 99)``.
"""

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
Image = pytest.importorskip("PIL.Image")

from ihmr.depth import data as D  # noqa: E402
from ihmr.depth.metrics import DepthMetrics  # noqa: E402
from ihmr.errors import DataError  # noqa: E402


def _step_edge_depth_mm(rng) -> np.ndarray:
    """480 x 640 uint16 mm: rectangles at distinct depths, so every edge is a depth step."""
    d = np.full((480, 640), 3000, np.uint16)
    for _ in range(12):
        y, x = rng.integers(0, 440), rng.integers(0, 600)
        h, w = rng.integers(20, 200), rng.integers(20, 300)
        d[y : y + h, x : x + w] = rng.integers(700, 9900)
    return d


def _reference_test_depth(png) -> np.ndarray:
    """DIR's test ground truth with Pillow: Scale(240) NEAREST, crop (8, 6), / 1000 (float32)."""
    img = Image.open(png)
    w, h = img.size
    img = img.resize((int(240 * w / h), 240), Image.NEAREST)
    w, h = img.size
    x1, y1 = int(round((w - 304) / 2.0)), int(round((h - 228) / 2.0))
    img = img.crop((x1, y1, x1 + 304, y1 + 228))
    return np.asarray(img).astype(np.float32) / np.float32(1000)


def _write_test_split(root, depths_mm, mask):
    rows = []
    for i, d in enumerate(depths_mm):
        rel = f"data/nyu2_test/{i:05d}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / f"{rel}_colors.png"), np.zeros((480, 640, 3), np.uint8))
        Image.fromarray(d).save(root / f"{rel}_depth.png")  # 16-bit PNG, as NYUD2-DIR ships it
        rows.append(f"{rel}_colors.png,{rel}_depth.png")
    (root / "data/nyu2_test.csv").write_text("\n".join(rows) + "\n")
    np.save(root / "data/test_balanced_mask.npy", mask)  # DIR: uint8 0/1


def test_test_ground_truth_equals_pillow_nearest_pipeline(tmp_path, rng):
    depths = [_step_edge_depth_mm(rng) for _ in range(2)]
    mask = (rng.random((2, 228, 304)) < 0.2).astype(np.uint8)
    _write_test_split(tmp_path, depths, mask)
    test = D.NYUD2DIR(D.Layout(str(tmp_path)), "test")
    for i in range(2):
        ref = _reference_test_depth(tmp_path / f"data/nyu2_test/{i:05d}_depth.png")
        got = test[i]["depth"][0].numpy()
        np.testing.assert_array_equal(got, ref)  # bit-exact, no interpolated depth anywhere
        # Pillow's NEAREST at 640 x 480 -> 320 x 240 is the odd rows and columns
        np.testing.assert_array_equal(got, depths[i][1::2, 1::2][6:234, 8:312] / np.float32(1000))
        np.testing.assert_array_equal(test[i]["mask"].numpy(), mask[i].astype(bool))
    # the old bilinear resize moved many step-edge pixels by more than 1 cm
    old = D.center_crop(
        cv2.resize(depths[0].astype(np.float32) / 1000, (320, 240), interpolation=cv2.INTER_LINEAR)
    )
    assert (
        np.abs(old - _reference_test_depth(tmp_path / "data/nyu2_test/00000_depth.png")) > 0.01
    ).mean() > 0.005


@pytest.mark.parametrize(
    "src_hw,dst_wh",
    [((480, 640), (320, 240)), ((37, 53), (20, 14)), ((240, 320), (152, 114)), ((10, 7), (23, 31))],
)
def test_pil_nearest_resize_matches_pillow(rng, src_hw, dst_wh):
    img = rng.integers(0, 65535, src_hw).astype(np.uint16)
    ref = np.asarray(Image.fromarray(img).resize(dst_wh, Image.NEAREST))
    np.testing.assert_array_equal(D.pil_nearest_resize(img, dst_wh), ref)


def test_short_side_long_side_truncates_like_dir():
    assert D.short_side_size(481, 641) == (int(240 * 641 / 481), 240) == (319, 240)
    assert D.short_side_size(640, 480) == (240, 320)


def test_uint8_mask_as_published_is_read_as_bool(tmp_path, rng):
    m = (rng.random((3, 228, 304)) < 0.3).astype(np.uint8)
    np.save(tmp_path / "m.npy", m)
    got = D.load_mask(tmp_path / "m.npy", 3)
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, m.astype(bool))
    np.save(tmp_path / "i.npy", m.astype(np.int64))
    np.testing.assert_array_equal(D.load_mask(tmp_path / "i.npy", 3), m.astype(bool))
    bad = m.copy()
    bad[0, 0, 0] = 2
    np.save(tmp_path / "b.npy", bad)
    with pytest.raises(DataError, match="only 0 and 1"):
        D.load_mask(tmp_path / "b.npy", 3)
    np.save(tmp_path / "f.npy", m.astype(np.float32))
    with pytest.raises(DataError, match="dtype float32"):
        D.load_mask(tmp_path / "f.npy", 3)


def test_depth_bins_follow_float32_product_at_every_decimetre():
    mm = np.arange(700, 10000, 100)  # every exact decimetre of the test range (93 values)
    d = mm.astype(np.float32) / np.float32(1000)  # how a 16-bit test map is decoded
    want = [min(int(np.float32(v) * np.float32(10)), 99) for v in d]  # DIR's get_bin_idx
    np.testing.assert_array_equal(D.depth_bins(d), want)
    assert D.depth_bins(np.float32(0.7)) == 7  # the old float64 floor said 6 (an empty bin)
    old = np.floor(d.astype(np.float64) / 0.1 + 1e-9).astype(int)
    assert (old != np.asarray(want)).sum() > 20


def test_metrics_shot_pools_use_reference_bins():
    # 0.7 m is a medium-shot bin (7) for DIR; the old rounding put it in bin 6, in no shot.
    target = np.array([0.7, 0.7, 2.0], np.float32)
    pred = np.array([1.0, 1.0, 2.0], np.float32)
    m = DepthMetrics(D.NYU_SHOTS)
    m.update(pred, target, np.ones(3, bool))
    res = m.compute()
    assert res["pixels"]["medium"] == 2 and res["pixels"]["many"] == 1
    assert res["medium"]["mae"] == pytest.approx(0.3, abs=1e-6)
