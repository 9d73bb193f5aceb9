"""Camera maths, strips and PNG writing of ihmr.render (no OpenGL needed)."""

from __future__ import annotations

import numpy as np
import pytest

from ihmr.errors import ShapeError
from ihmr.io import read_image
from ihmr.render.camera import fit_translation, project
from ihmr.render.predictions import IMAGES_HINT
from ihmr.render.strip import comparison_strip, grid, label_panel, save_png
from ihmr.spin import crop_intrinsics, weak_perspective_to_translation


def test_weak_perspective_closed_form():
    t = weak_perspective_to_translation([[0.5, 0.1, -0.2], [0.9, 0.0, 0.0]])
    np.testing.assert_allclose(t, [[0.1, -0.2, 2 * 5000 / (224 * 0.5)], [0.0, 0.0, 10000 / 201.6]])


def test_weak_perspective_is_a_scaled_orthographic_projection(rng):
    # a point near depth tz projects to img_res/2 * (1 + s (X + tx)) (SPIN's weak perspective)
    s, tx, ty = 0.8, 0.05, -0.1
    t = weak_perspective_to_translation([s, tx, ty])
    pts = rng.uniform(-0.01, 0.01, size=(20, 3))  # tiny depth range around the origin
    uv = project(pts, t, 5000.0, [112.0, 112.0])
    expected = 112.0 * (1 + s * (pts[:, :2] + [tx, ty]))
    np.testing.assert_allclose(uv, expected, atol=0.01)


def test_weak_perspective_rejects_bad_input():
    with pytest.raises(ValueError, match="s must be > 0"):
        weak_perspective_to_translation([0.0, 0.1, 0.1])
    with pytest.raises(ShapeError, match=r"\(\.\.\., 3\)"):
        weak_perspective_to_translation([0.9, 0.1])


def test_project_matches_naive_loop(rng):
    pts, t = rng.normal(size=(7, 3)), np.array([0.1, 0.2, 8.0])
    uv = project(pts, t, 1000.0, [50.0, 60.0])
    for p, q in zip(pts, uv, strict=True):
        x, y, z = p + t
        np.testing.assert_allclose(q, [1000 * x / z + 50, 1000 * y / z + 60])


def test_crop_intrinsics_reproduce_the_crop_in_the_full_image(rng):
    # render in the crop, map crop pixels to image pixels by hand, compare with the full camera
    center, scale = np.array([400.0, 300.0]), 1.3
    b = 200 * scale
    t = weak_perspective_to_translation([0.7, 0.02, -0.05])
    pts = rng.normal(size=(30, 3)) * 0.3
    uv_crop = project(pts, t, 5000.0, [112.0, 112.0])
    uv_image_by_hand = center + (uv_crop - 112.0) * b / 224.0
    f, pp = crop_intrinsics(center, scale)
    np.testing.assert_allclose(f, 5000 * b / 224)
    np.testing.assert_allclose(project(pts, t, f, pp), uv_image_by_hand, rtol=1e-10)


def test_fit_translation_frames_the_points(rng):
    pts = rng.uniform([-0.3, -0.9, -0.2], [0.5, 0.8, 0.3], size=(500, 3))
    t = fit_translation(pts, 1000.0, (200, 300), fill=0.8)
    uv = project(pts, t, 1000.0, [150.0, 100.0])
    assert (
        uv[:, 0].min() > 0 and uv[:, 0].max() < 300 and uv[:, 1].min() > 0 and uv[:, 1].max() < 200
    )
    assert np.ptp(uv[:, 1]) > 0.6 * 200  # the tall extent fills most of the height


def test_strip_layout_and_labels():
    a = np.zeros((40, 30, 3), np.uint8)
    b = np.full((20, 10, 3), 100, np.uint8)
    strip = comparison_strip([a, b], ["image", "method"], gap=4)
    bar = max(16, 40 // 12)
    assert strip.shape == (40 + bar, 30 + 4 + 20, 3)  # b resized to height 40 -> width 20
    assert (strip[bar:, 30:34] == 255).all()  # the white gap
    assert (strip[:bar] < 128).any()  # some dark text in the label bar
    with pytest.raises(ValueError, match="one per panel"):
        comparison_strip([a, b], ["only one"])
    with pytest.raises(ShapeError, match="uint8"):
        comparison_strip([a.astype(np.float32)])
    assert label_panel(a, "x").shape == (40 + bar, 30, 3)
    stacked = grid([np.zeros((10, 20, 3), np.uint8), np.zeros((5, 8, 3), np.uint8)], gap=2)
    assert stacked.shape == (10 + 2 + 5, 20, 3) and (stacked[12:, 8:] == 255).all()


def test_save_png_round_trip_and_no_partial_file(tmp_path, rng):
    img = rng.integers(0, 256, size=(12, 9, 3), dtype=np.uint8)
    path = save_png(tmp_path / "a.png", img)
    np.testing.assert_array_equal(read_image(path), img)  # lossless, RGB order kept
    with pytest.raises(ShapeError):
        save_png(tmp_path / "b.png", img[..., 0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    with pytest.raises(FileNotFoundError, match="--images"):
        read_image(tmp_path / "missing.png", hint=IMAGES_HINT)


def test_panel_camera_cases(rng):
    from ihmr.render.predictions import panel_camera

    v = rng.normal(size=(50, 3)) * 0.3
    t, f, pp, hw, backdrop = panel_camera(v, None, None, None, 96)  # parameters alone
    assert hw == (96, 96) and backdrop is None and pp is None
    np.testing.assert_allclose(f, 5000 * 96 / 224)
    image = rng.integers(0, 256, size=(120, 200, 3), dtype=np.uint8)
    t, f, pp, hw, backdrop = panel_camera(v, [0.8, 0.1, 0.0], image, ([150.0, 60.0], 0.5), 96)
    np.testing.assert_allclose(t, [0.1, 0.0, 10000 / (224 * 0.8)])
    np.testing.assert_allclose([f, *pp], [5000 * 100 / 224, 150.0, 60.0])  # full image, Eq. (3)
    assert hw == (120, 200) and backdrop is image
    t, f, pp, hw, backdrop = panel_camera(v, [0.8, 0.1, 0.0], image, None, 96)  # image = crop
    assert hw == (96, 96) and backdrop.shape == (96, 96, 3) and pp is None
