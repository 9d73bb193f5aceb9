"""Offscreen mesh rendering: pixels of small renders (skipped without an OpenGL backend)."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pytest

from ihmr.render import backend_problem
from ihmr.render.camera import project
from ihmr.spin import crop_intrinsics, weak_perspective_to_translation

pytestmark = pytest.mark.render
_problem = backend_problem()
needs_gl = pytest.mark.skipif(_problem is not None, reason=str(_problem))
RES = 128


@pytest.fixture(scope="module")
def body():
    path = importlib.resources.files("ihmr.assets") / "open_body" / "open_body.npz"
    with path.open("rb") as f:
        d = np.load(f)
        # SPIN's camera frame has y down: turn the template 180 degrees about x to stand upright
        return d["v_template"].astype(np.float64) * [1.0, -1.0, -1.0], d["f"]


@pytest.fixture(scope="module")
def renderer():
    if _problem is not None:
        pytest.skip(_problem)
    from ihmr.render import MeshRenderer

    r = MeshRenderer(RES, RES)
    yield r
    r.close()


def _mask(img, background):
    return np.abs(img.astype(int) - np.asarray(background, int)).max(-1) > 8


@needs_gl
def test_silhouette_covers_the_projected_body(body, renderer):
    from ihmr.render import render_mesh

    v, f = body
    cam = np.array([0.9, 0.05, -0.02])
    img = render_mesh(v, f, cam, size=RES, renderer=renderer)
    assert img.shape == (RES, RES, 3) and img.dtype == np.uint8
    mask = _mask(img, 255)
    uv = project(v, weak_perspective_to_translation(cam), 5000 * RES / 224, [RES / 2, RES / 2])
    ys, xs = np.nonzero(mask)
    # the silhouette's bounding box is the projected vertices' bounding box (pixel centres)
    np.testing.assert_allclose(
        [xs.min(), xs.max() + 1, ys.min(), ys.max() + 1],
        [uv[:, 0].min(), uv[:, 0].max(), uv[:, 1].min(), uv[:, 1].max()],
        atol=1.5,
    )
    inside = mask[
        np.clip(uv[:, 1].astype(int), 0, RES - 1), np.clip(uv[:, 0].astype(int), 0, RES - 1)
    ]
    assert inside.mean() > 0.97  # (almost) every vertex lands on a body pixel
    # the background stays white away from the body, the body is shaded, not white
    assert (img[~mask] == 255).all()
    assert mask.sum() > 500 and (img[mask].mean(-1) < 240).mean() > 0.9
    # upright: the head (top rows) is narrow, the outstretched arms are wide
    rows = np.nonzero(mask.any(1))[0]
    assert mask[rows[0] + 2].sum() < 0.2 * mask[int(rows[0] + 0.2 * len(rows))].sum()


@needs_gl
def test_overlay_keeps_the_image_where_the_body_is_not(body, renderer, rng):
    from ihmr.render import render_mesh

    v, f = body
    image = rng.integers(0, 256, size=(RES, RES, 3), dtype=np.uint8)
    out = render_mesh(v, f, [0.9, 0.0, 0.0], image=image, renderer=renderer)
    white = render_mesh(v, f, [0.9, 0.0, 0.0], size=RES, renderer=renderer)
    mask = _mask(white, 255)
    np.testing.assert_array_equal(out[~mask], image[~mask])
    assert (out[mask] != image[mask]).any(-1).mean() > 0.9


@needs_gl
def test_side_view_differs_from_front(body, renderer):
    from ihmr.render import render_mesh

    v, f = body
    front = _mask(render_mesh(v, f, [0.9, 0.0, 0.0], size=RES, renderer=renderer), 255)
    side = _mask(render_mesh(v, f, [0.9, 0.0, 0.0], size=RES, side=True, renderer=renderer), 255)
    iou = (front & side).sum() / (front | side).sum()
    assert iou < 0.6
    width = lambda m: np.ptp(np.nonzero(m.any(0))[0])  # noqa: E731
    height = lambda m: np.ptp(np.nonzero(m.any(1))[0])  # noqa: E731
    assert width(side) < 0.5 * width(front)  # T-pose arms point at the camera from the side
    assert abs(height(side) - height(front)) <= 3  # same body height, same depth


@needs_gl
def test_full_image_camera_places_the_body_at_the_crop(body, renderer):
    v, f = body
    center, scale = np.array([150.0, 60.0]), 0.5  # a 100 px crop in a 200 x 120 image
    focal, pp = crop_intrinsics(center, scale)
    t = weak_perspective_to_translation([0.9, 0.0, 0.0])
    img = renderer.render(v, f, t, focal_length=focal, principal_point=pp, size=(120, 200))
    ys, xs = np.nonzero(_mask(img, 255))
    uv = project(v, t, focal, pp)
    assert abs(xs.mean() - center[0]) < 10 and abs(ys.mean() - center[1]) < 10
    assert xs.min() >= uv[:, 0].min() - 2 and xs.max() <= uv[:, 0].max() + 2


@needs_gl
def test_bad_inputs_raise_clear_errors(body, renderer):
    from ihmr.errors import ShapeError
    from ihmr.render import render_mesh

    v, f = body
    with pytest.raises(ValueError, match="floats in"):
        render_mesh(v, f, [0.9, 0, 0], color=(200, 100, 50), renderer=renderer)
    with pytest.raises(ShapeError, match="faces index"):
        render_mesh(v[:100], f, [0.9, 0, 0], renderer=renderer)
    with pytest.raises(ShapeError, match="uint8"):
        render_mesh(v, f, [0.9, 0, 0], image=np.zeros((8, 8)), renderer=renderer)
