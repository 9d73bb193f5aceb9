"""DIR CSV reader, image check, transforms, demo generator."""

from __future__ import annotations

import numpy as np
import pytest

from ihmr.age.data import check_images, read_age_csv, transform
from ihmr.errors import DataError


def _csv(tmp_path, body):
    p = tmp_path / "s.csv"
    p.write_text("age,path,split\n" + body)
    return p


def test_reader_validates_columns_ages_and_splits(tmp_path):
    ok = read_age_csv(_csv(tmp_path, "30,a.jpg,train\n40,b.jpg,val\n50,c.jpg,test\n"))
    assert ok.counts() == {"train": 1, "val": 1, "test": 1}
    assert ok.subset("val").paths.tolist() == ["b.jpg"]
    with pytest.raises(DataError, match="lines \\[3\\]"):
        read_age_csv(_csv(tmp_path, "30,a.jpg,train\n-4,b.jpg,val\n50,c.jpg,test\n"))
    with pytest.raises(DataError, match="split other than"):
        read_age_csv(_csv(tmp_path, "30,a.jpg,train\n40,b.jpg,valid\n50,c.jpg,test\n"))
    with pytest.raises(DataError, match="no rows for split"):
        read_age_csv(_csv(tmp_path, "30,a.jpg,train\n"))
    bad = tmp_path / "b.csv"
    bad.write_text("age,file,split\n1,a,train\n")
    with pytest.raises(DataError, match="missing \\['path'\\]"):
        read_age_csv(bad)


def test_missing_images_reports_count_and_first_paths(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    paths = ["a.jpg"] + [f"m{i}.jpg" for i in range(7)]
    with pytest.raises(DataError) as err:
        check_images(tmp_path, paths)
    msg = str(err.value)
    assert "7 of 8" in msg and "m0.jpg" in msg and "m4.jpg" in msg and "m5.jpg" not in msg


def test_transform_normalisation_crop_and_flip():
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :4] = 255  # left half white
    x = transform(img, 8, train=False)
    assert x.shape == (3, 8, 8) and x.dtype == np.float32
    assert x[0, 0, 0] == 1.0 and x[0, 0, 7] == -1.0
    seen = set()
    for seed in range(40):
        y = transform(img, 8, train=True, rng=np.random.default_rng(seed))
        assert y.shape == (3, 8, 8) and y.min() >= -1 and y.max() <= 1
        seen.add(y.tobytes())
    # independent check of one draw: pad 16 with zeros (-> -1), crop at (top, left), maybe flip
    rng = np.random.default_rng(3)
    top, left = rng.integers(0, 33, size=2)
    flip = rng.random() < 0.5
    pad = np.full((40, 40, 3), -1.0, np.float32)
    pad[16:24, 16:24] = (img / 255.0 - 0.5) / 0.5
    ref = pad[top : top + 8, left : left + 8]
    ref = ref[:, ::-1] if flip else ref
    np.testing.assert_array_equal(
        transform(img, 8, True, np.random.default_rng(3)), ref.transpose(2, 0, 1)
    )
    assert len(seen) > 3  # many crops of an 8-pixel image lie wholly in the padding


def test_demo_data_long_tailed_and_readable(tmp_path):
    from ihmr.age.demo_data import age_pool_counts, make_demo
    from ihmr.io import read_image

    counts = (
        age_pool_counts()
    )  # the default demo's images per age: many adults, few children/elderly
    assert (
        counts[25:45].mean() > 10 * counts[:8].mean()
        and counts[25:45].mean() > 10 * counts[70:].mean()
    )
    s = make_demo(tmp_path, total=300, size=16, cap=3)
    t = read_age_csv(s["csv"])
    check_images(tmp_path, list(t.paths))
    assert read_image(tmp_path / t.paths[0]).shape == (16, 16, 3)
    # visible content determines the label: mean brightness grows with age
    imgs = np.array([read_image(tmp_path / p).mean() for p in t.paths])
    assert np.corrcoef(imgs, t.ages)[0, 1] > 0.8
