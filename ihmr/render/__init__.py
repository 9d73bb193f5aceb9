"""Mesh rendering (pyrender, offscreen): overlays with SPIN's camera, side views, comparison strips.

Importing this package is cheap: pyrender and OpenGL are imported on the first render, after
:func:`ihmr.render.backend.setup_backend` has chosen EGL or OSMesa.
"""

from ihmr.render.backend import RenderBackendError, backend_problem, render_available, setup_backend
from ihmr.render.camera import fit_translation, project
from ihmr.render.mesh import MeshRenderer, render_mesh, side_view
from ihmr.render.strip import comparison_strip, grid, label_panel, save_png

__all__ = [
    "MeshRenderer",
    "RenderBackendError",
    "backend_problem",
    "comparison_strip",
    "fit_translation",
    "grid",
    "label_panel",
    "project",
    "render_available",
    "render_mesh",
    "save_png",
    "setup_backend",
    "side_view",
]
