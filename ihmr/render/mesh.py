"""Render a body mesh with pyrender: over an image, on white, and from the side.

Vertices are in camera coordinates (OpenCV convention, see :mod:`ihmr.render.camera`); the
renderer flips y and z for OpenGL. Colours are floats in [0, 1] (pyrender reads integers as
0-255). Every function returns an ``uint8`` (H, W, 3) RGB array.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ihmr.errors import ConfigError, ShapeError, check_shape
from ihmr.render.backend import import_pyrender, shared_offscreen_renderer
from ihmr.render.camera import _np
from ihmr.spin import FOCAL_LENGTH, crop_focal_length, weak_perspective_to_translation

BODY_COLOR = (0.55, 0.66, 0.85)  # blue-grey
GT_COLOR = (0.50, 0.78, 0.55)  # green
METHOD_COLORS = ((0.55, 0.66, 0.85), (0.90, 0.55, 0.50), (0.88, 0.75, 0.40), (0.68, 0.55, 0.85))
_OPENCV_TO_GL = np.array([1.0, -1.0, -1.0])


def _check_color(color: Sequence[float], name: str = "color") -> tuple[float, float, float]:
    c = tuple(float(x) for x in color)
    if len(c) != 3 or not all(0.0 <= x <= 1.0 for x in c):
        raise ConfigError(
            f"{name} must be 3 floats in [0, 1] (RGB), got {tuple(color)}; "
            "divide 0-255 colours by 255"
        )
    return c  # type: ignore[return-value]


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ShapeError(
            f"image must be an uint8 (H, W, 3) RGB array, got {image.dtype} {image.shape}"
        )
    return image


def side_view(vertices, degrees: float = 90.0) -> np.ndarray:
    """Rotate ``vertices`` (N, 3) by ``degrees`` about the camera's y axis through the mesh's
    bounding-box centre. With an upright body facing the camera, +90 turns the subject's left
    side towards the camera."""
    v = _np(vertices)
    t = np.deg2rad(degrees)
    rot = np.array([[np.cos(t), 0.0, np.sin(t)], [0.0, 1.0, 0.0], [-np.sin(t), 0.0, np.cos(t)]])
    centre = 0.5 * (v.min(0) + v.max(0))
    return (v - centre) @ rot.T + centre


class MeshRenderer:
    """Renders meshes offscreen; reuse one for many renders (the OpenGL context is shared by the
    whole process, see :func:`ihmr.render.backend.shared_offscreen_renderer`)."""

    def __init__(self, width: int = 512, height: int = 512) -> None:
        self._pyrender = import_pyrender()
        self._renderer = shared_offscreen_renderer()
        self._size = (int(height), int(width))

    def close(self) -> None:
        """Drop this handle (the shared context lives on until exit, see the class docstring)."""
        self._renderer = None

    def __enter__(self) -> "MeshRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def render(
        self,
        vertices,
        faces,
        translation=(0.0, 0.0, 0.0),
        *,
        focal_length: float = FOCAL_LENGTH,
        principal_point=None,
        image=None,
        size: tuple[int, int] | None = None,
        color: Sequence[float] = BODY_COLOR,
        background: Sequence[float] = (1.0, 1.0, 1.0),
    ) -> np.ndarray:
        """Render ``vertices`` (V, 3) + ``translation`` (3,) with triangles ``faces`` (F, 3).

        ``image`` (H, W, 3) uint8 is the backdrop (its size is used); without it a plain
        ``background`` of ``size`` = (H, W). ``principal_point`` defaults to the image centre.
        Returns the composited (H, W, 3) uint8 RGB image.
        """
        pyrender = self._pyrender
        import trimesh

        if self._renderer is None:
            raise RuntimeError("this MeshRenderer was closed; create a new one")
        v, f = _np(vertices), np.asarray(faces)
        check_shape(v, (None, 3), "vertices")
        check_shape(f, (None, 3), "faces")
        if f.size and (f.min() < 0 or f.max() >= len(v)):
            raise ShapeError(
                f"faces index vertices 0..{len(v) - 1}, got indices "
                f"{f.min()}..{f.max()}; were faces and vertices from the same body?"
            )
        color, background = _check_color(color), _check_color(background, "background")
        if image is not None:
            image = _check_image(image)
            h, w = image.shape[:2]
        else:
            h, w = size if size is not None else self._size
        pp = np.array([w / 2.0, h / 2.0]) if principal_point is None else _np(principal_point)
        pts = (v + _np(translation)) * _OPENCV_TO_GL
        mesh = trimesh.Trimesh(pts, f, process=False)
        material = pyrender.MetallicRoughnessMaterial(
            metallicFactor=0.0,
            roughnessFactor=0.6,
            alphaMode="OPAQUE",
            baseColorFactor=(*color, 1.0),
        )
        scene = pyrender.Scene(bg_color=(0.0, 0.0, 0.0, 0.0), ambient_light=(0.2, 0.2, 0.2))
        scene.add(pyrender.Mesh.from_trimesh(mesh, material=material, smooth=True))
        depth = float(np.median(pts[:, 2])) if len(pts) else -1.0
        scene.add(
            pyrender.IntrinsicsCamera(
                fx=focal_length,
                fy=focal_length,
                cx=pp[0],
                cy=pp[1],
                znear=0.01,
                zfar=max(100.0, 4.0 * abs(depth)),
            )
        )
        # key light from the camera, fill from the upper left, a weak one from the right
        lights = (((0.0, 0.3, 1.0), 1.6), ((-1.0, 1.0, 0.6), 0.9), ((1.0, 0.2, 0.2), 0.5))
        for direction, power in lights:
            light_pose = np.eye(4)
            z = np.asarray(direction) / np.linalg.norm(direction)  # light shines along -z
            x = np.cross([0.0, 1.0, 0.0], z) if abs(z[1]) < 0.99 else np.array([1.0, 0.0, 0.0])
            x /= np.linalg.norm(x)
            light_pose[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
            scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=power), pose=light_pose)
        self._renderer.viewport_width, self._renderer.viewport_height = w, h
        rgba, _ = self._renderer.render(scene, flags=pyrender.RenderFlags.RGBA)
        alpha = rgba[..., 3:4].astype(np.float32) / 255.0
        backdrop = (
            image.astype(np.float32)
            if image is not None
            else np.broadcast_to(np.asarray(background, np.float32) * 255.0, (h, w, 3))
        )
        out = rgba[..., :3].astype(np.float32) * alpha + backdrop * (1.0 - alpha)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def render_mesh(
    vertices,
    faces,
    cam=None,
    *,
    image=None,
    size: int | tuple[int, int] = 224,
    translation=None,
    focal_length: float | None = None,
    principal_point=None,
    side: bool = False,
    color: Sequence[float] = BODY_COLOR,
    renderer: MeshRenderer | None = None,
) -> np.ndarray:
    """One-call rendering with SPIN's weak-perspective camera.

    ``cam`` (3,) = [s, tx, ty] for a square crop: the translation is Eq. (1) of :mod:`ihmr.spin`
    and the focal length 5000 px scaled from 224 px to the output size (the image's width when
    ``image`` is given, else ``size``; :func:`~ihmr.spin.crop_focal_length`). Alternatively pass
    ``translation`` (3,) and ``focal_length`` directly (e.g. from :func:`~ihmr.spin.crop_intrinsics`
    for a full image). ``side=True`` renders the side view (:func:`side_view`) of the same mesh
    at the same depth. ``renderer`` (optional) is a :class:`MeshRenderer` to reuse.
    """
    if image is not None:
        image = _check_image(image)
        hw = image.shape[:2]
    else:
        hw = (size, size) if isinstance(size, int) else tuple(size)
    if translation is None:
        if cam is None:
            raise ConfigError("give cam = [s, tx, ty] or translation (and focal_length)")
        translation = weak_perspective_to_translation(cam)
    focal_length = crop_focal_length(hw[1]) if focal_length is None else focal_length
    v = side_view(vertices) if side else _np(vertices)
    renderer = MeshRenderer(hw[1], hw[0]) if renderer is None else renderer
    return renderer.render(
        v,
        faces,
        translation,
        focal_length=focal_length,
        principal_point=principal_point,
        image=image,
        size=hw,
        color=color,
    )
