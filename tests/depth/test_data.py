"""NYUD2-DIR reading: depth decoding, resize/crop, bins and shots, CSV and mask validation."""

import json

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from ihmr.depth import data as D  # noqa: E402
from ihmr.errors import DataError, ShapeError  # noqa: E402


def test_decode_train_8bit_and_test_16bit_by_hand():
    raw8 = np.array([[0, 51, 255]], np.uint8)
    np.testing.assert_allclose(D.decode_depth(raw8, "train"), [[0.0, 2.0, 10.0]], atol=1e-6)
    raw16 = np.array([[700, 1234, 65535]], np.uint16)
    np.testing.assert_allclose(D.decode_depth(raw16, "test"), [[0.7, 1.234, 65.535]], atol=1e-6)


def test_decode_rejects_swapped_bit_depths():
    with pytest.raises(DataError, match="8-bit"):
        D.decode_depth(np.zeros((2, 2), np.uint16), "train")
    with pytest.raises(DataError, match="16-bit"):
        D.decode_depth(np.zeros((2, 2), np.uint8), "test")


def test_png_round_trip_keeps_bit_depth(tmp_path):
    raw = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    cv2.imwrite(str(tmp_path / "d.png"), raw)
    np.testing.assert_allclose(D.read_depth(tmp_path / "d.png", "test"), raw / 1000.0, atol=1e-6)


def test_resize_short_side_and_centre_crop_offsets():
    img = np.zeros((480, 640), np.float32)
    r = D.resize_short_side(img)
    assert r.shape == (240, 320)
    # Crop of a 240 x 320 index image: rows 6..233, columns 8..311 (W 304, H 228).
    idx = np.arange(240 * 320).reshape(240, 320)
    c = D.center_crop(idx)
    assert c.shape == (228, 304)
    assert c[0, 0] == 6 * 320 + 8 and c[-1, -1] == 233 * 320 + 311
    with pytest.raises(ShapeError, match="resize it first"):
        D.center_crop(np.zeros((100, 100)))


def test_portrait_image_short_side():
    assert D.resize_short_side(np.zeros((640, 480), np.uint8)).shape == (320, 240)


def test_depth_bins_by_hand():
    d = np.array([0.0, 0.69, 0.7, 0.75, 2.0, 9.95, 12.0])
    np.testing.assert_array_equal(D.depth_bins(d), [0, 6, 7, 7, 20, 99, 99])


def test_nyu_shots_partition_bins_7_to_99():
    s = D.NYU_SHOTS
    allb = sorted(s["many"] + s["medium"] + s["few"])
    assert allb == list(range(7, 100))
    assert 9 in s["many"] and 45 in s["many"] and 47 in s["many"] and 49 in s["many"]
    assert {7, 8, 46, 48, 50, 56, 58, 60, 61, 63} <= set(s["medium"])
    assert {57, 59, 62, 64, 99} <= set(s["few"]) and 46 not in s["few"]


def test_load_shots_file_and_default(tmp_path):
    assert D.load_shots(None) == D.NYU_SHOTS
    p = tmp_path / "shots.json"
    p.write_text(json.dumps({"many": [1, 2], "medium": [3], "few": [4]}))
    assert D.load_shots(p) == {"many": [1, 2], "medium": [3], "few": [4]}
    p.write_text(json.dumps({"many": [1, 2], "medium": [2], "few": [4]}))
    with pytest.raises(DataError, match="disjoint"):
        D.load_shots(p)


def test_shots_from_counts_thresholds():
    counts = np.zeros(100)
    counts[[10, 11]] = 4950  # 49.5 % each: many
    counts[20] = 95  # 0.95 %: medium
    counts[30] = 5  # 0.05 %: few
    s = D.shots_from_counts(counts)
    assert s == {"many": [10, 11], "medium": [20], "few": [30]}


def _write_split(root, split, scenes, views, kind, rng):
    rows = []
    for s in scenes:
        for v in range(views):
            rel = f"data/nyu2_{split}/{s}/{v}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(
                str(root / f"{rel}.png"), rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
            )
            if kind == "train":
                raw = rng.integers(0, 256, (240, 320)).astype(np.uint8)
            else:
                raw = rng.integers(500, 9000, (240, 320)).astype(np.uint16)
            cv2.imwrite(str(root / f"{rel}_depth.png"), raw)
            rows.append(f"{rel}.png,{rel}_depth.png")
    (root / f"data/nyu2_{split}.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture
def tiny_root(tmp_path, rng):
    _write_split(tmp_path, "train", ["a_out", "b_out", "c_out"], 2, "train", rng)
    _write_split(tmp_path, "test", ["t_out"], 2, "test", rng)
    mask = rng.random((2, 228, 304)) < 0.1
    np.save(tmp_path / "data/test_balanced_mask.npy", mask)
    return tmp_path, mask


def test_dataset_shapes_values_and_mask(tiny_root):
    root, mask = tiny_root
    layout = D.Layout(str(root))
    test = D.NYUD2DIR(layout, "test")
    item = test[1]
    assert item["image"].shape == (3, 228, 304) and item["depth"].shape == (1, 228, 304)
    np.testing.assert_array_equal(item["mask"].numpy(), mask[1])
    raw = cv2.imread(str(root / "data/nyu2_test/t_out/1_depth.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(item["depth"][0].numpy(), raw[6:234, 8:312] / 1000.0, atol=1e-6)
    train = D.NYUD2DIR(layout, "train", val_fraction=0.3)
    val = D.NYUD2DIR(layout, "val", val_fraction=0.3)
    assert len(train) == 4 and len(val) == 2
    it = train[0]
    assert it["image"].shape == (3, 228, 304) and it["depth"].shape == (1, 114, 152)
    assert float(it["depth"].max()) <= 10.0 + 1e-5
    small = D.NYUD2DIR(layout, "train", input_wh=(64, 48), augment=False)
    assert small[0]["image"].shape == (3, 48, 64) and small[0]["depth"].shape == (1, 24, 32)


def test_validation_split_is_by_scene_and_seeded(tiny_root):
    root, _ = tiny_root
    split = D.read_split_csv(root / "data/nyu2_train.csv", root, "train")
    tr, va = D.carve_validation(split, 0.3, seed=1)
    scenes_tr = {D.scene_of(split.rgb[i]) for i in tr}
    scenes_va = {D.scene_of(split.rgb[i]) for i in va}
    assert scenes_tr.isdisjoint(scenes_va) and len(scenes_va) == 1
    assert sorted(tr + va) == list(range(6))
    assert D.carve_validation(split, 0.3, seed=1) == (tr, va)


def test_csv_and_mask_validation_messages(tiny_root):
    root, _ = tiny_root
    (root / "bad.csv").write_text("a.png,b.png,c.png\n")
    with pytest.raises(DataError, match="2 columns"):
        D.read_split_csv(root / "bad.csv", root, "train")
    (root / "missing.csv").write_text("nope.png,nope_depth.png\n")
    with pytest.raises(DataError, match="missing"):
        D.read_split_csv(root / "missing.csv", root, "train")
    with pytest.raises(DataError, match="not found"):
        D.read_split_csv(root / "absent.csv", root, "train")
    np.save(root / "m.npy", np.zeros((3, 228, 304), bool))
    with pytest.raises(DataError, match="shape"):
        D.load_mask(root / "m.npy", 2)


def test_augmentation_keeps_depth_values_and_shapes(rng):
    depth = rng.choice([1.0, 2.5, 4.0], size=(240, 320)).astype(np.float32)
    rgb = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    for seed in range(3):
        r2, d2 = D.augment(rgb, depth, np.random.default_rng(seed))
        assert r2.shape == rgb.shape and d2.shape == depth.shape
        assert set(np.unique(d2)) <= {1.0, 2.5, 4.0}  # nearest neighbour: no mixed depths
    x = D.photometric(rgb.astype(np.float32) / 255, np.random.default_rng(0))
    assert x.shape == rgb.shape and x.min() >= 0 and x.max() <= 1
